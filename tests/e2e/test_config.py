"""`check` against configs with the mistakes people make (issue 12, item 2): every one is refused
with a message that names the key, and the example config passes. The real binary, no Slack."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import REPO, bot_binary, to_lua


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="pmb-config-")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def check(self, extra, env=None):
        cfg = {"scripts_dir": os.path.join(REPO, "scripts"), "templates_dir": os.path.join(REPO, "templates"),
               "data_dir": os.path.join(self.work, "data")}
        cfg.update(extra)
        path = os.path.join(self.work, "c.lua")
        with open(path, "w") as f:
            f.write("return " + to_lua(cfg) + "\n")
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("TZ", "POSTMORTEMBOT_DATA_DIR", "POSTMORTEMBOT_LISTEN")}
        full_env.update(env or {})
        p = subprocess.run([bot_binary(), "check", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60, env=full_env)
        return p

    def refused(self, extra, *needles, env=None):
        p = self.check(extra, env)
        self.assertEqual(1, p.returncode, "check passed a broken config: %r\n%s" % (extra, p.stdout))
        self.assertNotIn("ok:", p.stdout)
        for n in needles:
            self.assertIn(n, p.stderr)
        return p.stderr

    def test_example_config_passes(self):
        env = {k: v for k, v in os.environ.items() if k != "POSTMORTEMBOT_DATA_DIR"}
        env["POSTMORTEMBOT_DATA_DIR"] = os.path.join(self.work, "data")
        p = subprocess.run([bot_binary(), "check", "-c", os.path.join(REPO, "config", "postmortembot.lua")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertIn("ok:", p.stdout)

    def test_unknown_top_level_key_suggests(self):
        self.refused({"timezon": "Europe/Berlin"}, "timezon is not a known key (did you mean timezone?)")

    def test_unknown_nested_key_suggests(self):
        self.refused({"http": {"timout": 5}}, "http.timout is not a known key (did you mean http.timeout?)")

    def test_listen_as_number(self):
        self.refused({"listen": 9102}, "listen must be \"host:port\"", "not 9102")

    def test_listen_bad_port(self):
        self.refused({"listen": "127.0.0.1:99999"}, "listen must be")

    def test_admin_channel_number(self):
        self.refused({"admin_channel": 123}, "admin_channel must be a channel id")

    def test_admin_channel_shape(self):
        self.refused({"admin_channel": "#incidents"}, "admin_channel must be a channel id")

    def test_log_level_unknown(self):
        self.refused({"log_level": "verbose"}, "log_level must be one of", "\"verbose\"")

    def test_max_frame_string(self):
        self.refused({"socket": {"max_frame": "1MB"}}, "socket.max_frame must be a number")

    def test_range(self):
        self.refused({"http": {"max_concurrent": 0}}, "http.max_concurrent must be at least 1")

    def test_integer(self):
        self.refused({"downloads": {"concurrency": 2.5}}, "downloads.concurrency must be a whole number")

    def test_report_template_missing(self):
        self.refused({"report": {"template": "postmortem"}},
                     "report.template names the template \"postmortem\"", "no postmortem.mustache")

    def test_status_template_misspelled(self):
        self.refused({"status": {"template": "statusupdat.slack"}}, "status.template names the template")

    def test_incident_template_missing(self):
        self.refused({"incident": {"template": "incident.begin.slack"}}, "incident.template names the template")

    def test_templates_by_channel(self):
        self.refused({"report": {"templates_by_channel": {"C0123": "short.md"}}},
                     "report.templates_by_channel.C0123 names the template")
        self.refused({"report": {"templates_by_channel": {"incidents": "postmortem.md"}}},
                     "report.templates_by_channel key \"incidents\" must be a channel id")

    def test_zones(self):
        self.refused({"timezone": "Europe/Berln"}, "timezone must be a known time zone")
        self.refused({"second_timezone": "Mars/Base"}, "second_timezone must be a known time zone")

    def test_tz_environment_checked_and_config_wins(self):
        self.refused({}, "timezone (from TZ) must be a known time zone", env={"TZ": "Nowhere/Land"})
        p = self.check({"timezone": "Europe/Berlin"}, env={"TZ": "Nowhere/Land"})
        self.assertEqual(0, p.returncode, p.stderr)
        p = self.check({}, env={"TZ": "Asia/Tokyo"})
        self.assertIn("timezone Asia/Tokyo", p.stdout)

    def test_webhook_url_and_fields(self):
        self.refused({"status": {"webhooks": [{"name": "x", "url": "relay.example.com/send"}]}},
                     "status.webhooks[1].url must be an http:// or https:// URL")
        self.refused({"status": {"webhooks": [{"name": "x"}]}}, "status.webhooks[1].url is required")
        self.refused({"status": {"webhooks": [{"url": "https://x.example/", "retry": 3}]}},
                     "status.webhooks[1].retry is not a known key (did you mean status.webhooks[1].retries?)")

    def test_status_channels_shape(self):
        self.refused({"status": {"channels": ["#status"]}}, "status.channels[1] must be a channel id")

    def test_workspace_url_is_a_key(self):
        p = self.check({"workspace_url": "https://acme.slack.com/"})
        self.assertEqual(0, p.returncode, p.stderr)
        self.refused({"workspace_url": "acme"}, "workspace_url must be an http:// or https:// URL")

    def test_every_problem_at_once(self):
        err = self.refused({"timezon": "UTC", "log_level": "loud", "http": {"timout": 1}}, "3 problems")
        self.assertIn("timezon", err)
        self.assertIn("log_level", err)
        self.assertIn("http.timout", err)

    def test_not_a_table(self):
        path = os.path.join(self.work, "c.lua")
        with open(path, "w") as f:
            f.write("return 42\n")
        p = subprocess.run([bot_binary(), "check", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(1, p.returncode)
        self.assertIn("the file must return a table", p.stderr)


if __name__ == "__main__":
    unittest.main()
