"""e2e: status updates reaching people outside Slack (scripts/destinations/*.lua), the real binary.

A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd, with AUTH) receives the e-mail, parsed
here with Python's `email` package; fakes in tests/fakes/ stand in for the WhatsApp Cloud API,
a Teams Workflows webhook and Atlassian Statuspage, each checking requests against the shapes in
that service's public API reference (cited in each fake's docstring) and answering with its
documented errors. Checks the incident's life on the status page across a restart, WhatsApp's
error codes as replies, retries, `check` on bad destination config, and that no secret is logged.
Uses tests/e2e/harness.py."""
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

from harness import REPO, BotTestCase, ask_and_wait, bot_binary, free_port, to_lua

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
from statuspage import FakeStatuspage  # noqa: E402
from teams import FakeTeamsWorkflow  # noqa: E402
from whatsapp import FakeWhatsApp  # noqa: E402

try:
    import aiosmtpd  # noqa: F401
except ImportError:  # a python3 other than Debian's (pyenv, venv): use the package Debian installed
    sys.path.append("/usr/lib/python3/dist-packages")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

WAR = "C0WARROOM"
INC = "C0INCIDENT"
LEAD = "U0LEAD"
WA_TOKEN = "EAAGwa-test-token-0123456789abcdef"
SP_KEY = "sp-api-key-9f8e7d6c5b4a"
TEAMS_SIG = "teams-sig-5ecret-AbCdEf012345"
SMTP_USER = "pmb-mailer"
SMTP_PASS = "smtp-pa55word-xyz"
PHONE_ID = "106540352242922"
PAGE_ID = "kctbh9vrtdwd"
COMPONENT = "8kbf7d35c070"


class Mailbox:
    """aiosmtpd handler and authenticator: keeps each message with who logged in."""

    def __init__(self):
        self.messages = []
        self.logins = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                                  "data": envelope.content, "authenticated": session.authenticated})
        return "250 Message accepted for delivery"

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASS.encode()
        with self.lock:
            self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)


class DestinationsTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.add_channel(WAR, "war-room")
        self.fs.add_channel(INC, "incidents")
        self.fs.add_user(LEAD, display_name="Lea Lead")
        self.data_dir = tempfile.mkdtemp(prefix="pmb-dest-data-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.wa = FakeWhatsApp(WA_TOKEN, PHONE_ID).start()
        self.teams = FakeTeamsWorkflow(TEAMS_SIG).start()
        self.sp = FakeStatuspage(SP_KEY, PAGE_ID).start()
        for fake in (self.wa, self.teams, self.sp):
            self.addCleanup(fake.stop)
        self.mailbox = Mailbox()
        self.smtp_port = free_port()
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=self.smtp_port,
                               authenticator=self.mailbox, auth_require_tls=False)
        self.smtp.start()
        self.addCleanup(self.smtp.stop)

    # --- helpers ----------------------------------------------------------------------------
    def destinations(self, **over):
        d = {
            "email": {"kind": "email", "name": "ops-mail", "url": "smtp://127.0.0.1:%d" % self.smtp_port,
                      "from": "Status Bot <status@example.com>", "to": ["oncall@example.com", "cto@example.com"],
                      "cc": ["support@example.com"], "username_env": "SMTP_USER", "password_env": "SMTP_PASS",
                      "starttls": "try", "retries": 1},
            "whatsapp": {"kind": "whatsapp", "name": "company group", "phone_number_id": PHONE_ID,
                         "to": ["+4915112345678", "+4917687654321"], "token_env": "WA_TOKEN",
                         "template": "outage_update", "language": "en_US",
                         "api_url": self.wa.url + "v21.0/", "retries": 1},
            "teams": {"kind": "teams", "name": "ops-teams", "url_env": "TEAMS_URL", "retries": 1},
            "statuspage": {"kind": "statuspage", "name": "public page", "page_id": PAGE_ID,
                           "api_key_env": "SP_KEY", "components": {COMPONENT: "major_outage"},
                           "impact": "major", "api_url": self.sp.url + "v1/", "retries": 1},
        }
        for k, v in over.items():
            if v is None:
                d.pop(k)
            else:
                d[k].update(v)
        return [d[k] for k in ("email", "whatsapp", "teams", "statuspage") if k in d]

    def bot(self, **over):
        cfg = {"data_dir": self.data_dir, "status": {"destinations": self.destinations(**over)},
               "incident": {"channel": INC}}
        env = {"WA_TOKEN": WA_TOKEN, "SP_KEY": SP_KEY, "TEAMS_URL": self.teams.webhook_url,
               "SMTP_USER": SMTP_USER, "SMTP_PASS": SMTP_PASS}
        return self.start_bot(cfg, env=env)

    def command(self, bot, text, channel=WAR, thread_ts=None, timeout=60):
        return ask_and_wait(self.fs, bot, channel, LEAD, text, thread_ts, timeout)

    def record(self, root_ts):
        with open(os.path.join(self.data_dir, "incidents", "%s-%s.json" % (INC, root_ts)), encoding="utf-8") as f:
            return json.load(f)

    def assert_no_secret_logged(self, *bots):
        for bot in bots:
            text = bot.log_text()
            for secret in (WA_TOKEN, SP_KEY, TEAMS_SIG, SMTP_PASS):
                self.assertNotIn(secret, text)

    def no_problems(self):
        for fake in (self.wa, self.teams, self.sp):
            self.assertEqual([], fake.problems, type(fake).__name__)

    # --- the whole life of an incident ----------------------------------------------------------
    def test_incident_reaches_every_destination_and_the_page_incident_survives_a_restart(self):
        bot = self.bot()
        _, reply = self.command(bot, "incident start Checkout returns 502")
        self.assertIn("First status update sent to 4 of 4 destinations:\n"
                      "• email ops-mail: ok\n"
                      "• whatsapp company group: ok (2 recipients)\n"
                      "• teams ops-teams: ok\n"
                      "• statuspage public page: ok (incident created)", reply)
        root_ts = [p for p in self.fs.posts(INC) if p["thread_ts"] is None][0]["ts"]

        # e-mail: one message to To and Cc, logged in with the credentials from the environment
        self.assertEqual(1, len(self.mailbox.messages))
        got = self.mailbox.messages[0]
        self.assertEqual("status@example.com", got["from"])
        self.assertEqual(["oncall@example.com", "cto@example.com", "support@example.com"], got["rcpt"])
        self.assertEqual([("PLAIN", True)], self.mailbox.logins[:1])
        self.assertTrue(got["authenticated"])
        msg = email.message_from_bytes(got["data"], policy=email.policy.default)
        self.assertEqual("[status] Incident started: Checkout returns 502", msg["Subject"])
        self.assertEqual("oncall@example.com, cto@example.com", msg["To"])
        self.assertEqual("support@example.com", msg["Cc"])
        self.assertIsNotNone(msg["Date"].datetime)
        self.assertRegex(msg["Message-ID"], r"^<[0-9a-f]{32}@example\.com>$")
        self.assertEqual("multipart/alternative", msg.get_content_type())
        plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = msg.get_body(("html",)).get_content()
        self.assertTrue(plain.startswith("Incident started: Checkout returns 502\n\nWe are investigating.\n"), plain)
        self.assertIn("By Lea Lead, ", plain)
        self.assertIn("<h2>Incident started: Checkout returns 502</h2>", html)
        self.assertIn('<a href="https://fake-workspace.slack.com/archives/%s/p%s">' % (INC, root_ts.replace(".", "")), html)

        # WhatsApp: one template message per recipient, the body parameters from the update
        self.assertEqual(["+4915112345678", "+4917687654321"], [to for to, _ in self.wa.delivered])
        body = self.wa.delivered[0][1]
        self.assertEqual("outage_update", body["template"]["name"])
        self.assertEqual({"code": "en_US"}, body["template"]["language"])
        params = [p["text"] for p in body["template"]["components"][0]["parameters"]]
        self.assertEqual(["Incident started", "Checkout returns 502", "We are investigating.", "Lea Lead"], params[:4])
        self.assertEqual("Bearer " + WA_TOKEN, self.wa.requests[0]["headers"]["authorization"])

        # Teams: an Adaptive Card with the title, the text, who and the thread link
        card = self.teams.cards[0]
        self.assertEqual("Incident started: Checkout returns 502", card["body"][0]["text"])
        self.assertEqual("We are investigating.", card["body"][1]["text"])
        self.assertEqual({"title": "By", "value": "Lea Lead"}, card["body"][2]["facts"][0])
        self.assertIn(root_ts.replace(".", ""), card["actions"][0]["url"])

        # Statuspage: created, its id kept in the incident record
        self.assertEqual(1, len(self.sp.incidents))
        (iid, incident), = self.sp.incidents.items()
        self.assertEqual("Checkout returns 502", incident["name"])
        self.assertEqual("investigating", incident["status"])
        self.assertEqual("major", incident["impact"])
        self.assertEqual({COMPONENT: "major_outage"}, incident["components"])
        self.assertEqual({PAGE_ID: iid}, self.record(root_ts)["statuspage"])

        # statusupdate: the same page incident is updated, status and impact from the words
        _, reply = self.command(bot, "statusupdate Identified: a bad deploy, partial outage only", channel=INC, thread_ts=root_ts)
        self.assertIn("Status update sent to 4 of 4 destinations", reply)
        self.assertIn("• statuspage public page: ok (incident identified)", reply)
        self.assertEqual(1, len(self.sp.incidents))
        self.assertEqual("identified", self.sp.incidents[iid]["status"])
        self.assertEqual({COMPONENT: "partial_outage"}, self.sp.incidents[iid]["components"])
        self.assertEqual("PATCH", self.sp.requests[-1]["method"])
        bot.stop()

        # after a restart, resolve finds the page incident through the record
        bot2 = self.bot()
        _, reply = self.command(bot2, "incident resolve Rolled back release 42", channel=INC, thread_ts=root_ts)
        self.assertIn("Resolution sent to 4 of 4 destinations", reply)
        self.assertEqual(1, len(self.sp.incidents))
        self.assertEqual("resolved", self.sp.incidents[iid]["status"])
        self.assertEqual({COMPONENT: "operational"}, self.sp.incidents[iid]["components"])
        self.assertEqual("Rolled back release 42", self.sp.incidents[iid]["incident_updates"][0]["body"])
        self.assertEqual(["POST", "PATCH", "PATCH"], [r["method"] for r in self.sp.handled()])
        self.assertEqual(3, len(self.mailbox.messages))
        last = email.message_from_bytes(self.mailbox.messages[-1]["data"], policy=email.policy.default)
        self.assertEqual("[status] Resolved: Checkout returns 502", last["Subject"])
        self.assertEqual(3, len(self.teams.cards))
        self.assertEqual("Resolved: Checkout returns 502", self.teams.cards[-1]["body"][0]["text"])
        self.no_problems()
        self.assert_no_secret_logged(bot, bot2)

    # --- WhatsApp's documented errors, as plain replies ---------------------------------------------
    def test_whatsapp_errors_become_plain_replies(self):
        self.wa.unreachable.add("+4917687654321")
        bot = self.bot(email=None, teams=None, statuspage=None)
        _, reply = self.command(bot, "statusupdate Payments are failing")
        self.assertEqual("Status update sent to 0 of 1 destinations:\n"
                         "• whatsapp company group: failed: 1 of 2 recipients failed: …4321: recipient not "
                         "reachable (not on WhatsApp, or an old app or unaccepted terms) (WhatsApp 131026)", reply)
        bot.stop()

        bot = self.bot(email=None, teams=None, statuspage=None, whatsapp={"template": "not_approved_yet", "to": ["+4915112345678"]})
        _, reply = self.command(bot, "statusupdate Payments are failing")
        self.assertIn("…5678: template not_approved_yet (en_US) does not exist or is not approved in that language "
                      "(WhatsApp 132001)", reply)
        bot.stop()

        self.wa.rate_limited = True
        bot = self.bot(email=None, teams=None, statuspage=None, whatsapp={"to": ["+4915112345678"]})
        _, reply = self.command(bot, "statusupdate Payments are failing")
        self.assertIn("…5678: rate limited by WhatsApp (throughput); try again later (WhatsApp 130429)", reply)
        self.no_problems()
        self.assert_no_secret_logged(bot)

    # --- retries, and failures named in the one reply -----------------------------------------------
    def test_5xx_and_connection_errors_are_retried_and_reported(self):
        self.teams.fail_next = [502]              # once: retried, delivered
        self.sp.fail_next = [503, 503]            # twice: retried once, still failing
        closed = free_port()                      # nobody listens: a connection error, retried
        bot = self.bot(whatsapp=None, email={"url": "smtp://127.0.0.1:%d" % closed})
        _, reply = self.command(bot, "statusupdate Still looking")
        self.assertIn("Status update sent to 1 of 3 destinations:", reply)
        self.assertIn("• teams ops-teams: ok", reply)
        self.assertIn("• statuspage public page: failed: HTTP 503 after 1 retry", reply)
        self.assertRegex(reply, r"• email ops-mail: failed: connect: .* after 1 retry")
        self.assertEqual([502, 202], [r["status"] for r in self.teams.requests])
        self.assertEqual(0, len(self.mailbox.messages))
        self.assertTrue(bot.wait_log(r"smtp send failed; retrying", timeout=1))
        self.no_problems()
        self.assert_no_secret_logged(bot)

    def test_a_missing_credential_is_named_and_nothing_is_sent(self):
        cfg = {"data_dir": self.data_dir, "status": {"destinations": self.destinations(email=None, whatsapp=None)}}
        bot = self.start_bot(cfg, env={"SP_KEY": SP_KEY})
        _, reply = self.command(bot, "statusupdate Still looking")
        self.assertIn("• teams ops-teams: failed: environment variable TEAMS_URL is not set (url_env)", reply)
        self.assertIn("• statuspage public page: ok", reply)
        self.assertEqual([], self.teams.requests)

    # --- check ------------------------------------------------------------------------------------
    def test_check_names_bad_destination_config(self):
        work = tempfile.mkdtemp(prefix="pmb-dest-check-")
        self.addCleanup(shutil.rmtree, work, True)
        cfg = {"scripts_dir": os.path.join(REPO, "scripts"), "templates_dir": os.path.join(REPO, "templates"),
               "data_dir": os.path.join(work, "data"),
               "status": {"destinations": [
                   {"kind": "statuspage", "api_key_env": "SP_KEY", "componets": {}},
                   {"kind": "pager"},
                   {"kind": "whatsapp", "phone_number_id": "1", "to": ["+1555"], "token_env": "not a name",
                    "template": "t"},
               ]}}
        path = os.path.join(work, "c.lua")
        with open(path, "w") as f:
            f.write("return " + to_lua(cfg) + "\n")
        p = subprocess.run([bot_binary(), "check", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        out = p.stdout + p.stderr
        self.assertEqual(1, p.returncode, out)
        self.assertIn("status.destinations[1].componets is not a known key (did you mean status.destinations[1].components?)", out)
        self.assertIn("status.destinations[1].page_id is required", out)
        self.assertIn("status.destinations[3].token_env must be the name of an environment variable", out)
        cfg["status"]["destinations"] = [{"kind": "pager"}]
        with open(path, "w") as f:
            f.write("return " + to_lua(cfg) + "\n")
        p = subprocess.run([bot_binary(), "check", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        self.assertEqual(1, p.returncode, p.stdout + p.stderr)
        self.assertIn("status.destinations[1]: no destination script scripts/destinations/pager.lua", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
