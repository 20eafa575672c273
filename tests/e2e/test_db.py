#!/usr/bin/env python3
"""End to end, database mode (issue 16, stage 1): the real binary against a throwaway PostgreSQL
cluster (tests/pgcluster.py: initdb in a temp dir, a Unix socket, removed after) and the fake
Slack. Checks `db migrate` / `db status` (idempotent, safe when two run at once, a clear error
when the database is unreachable), that `check` refuses a password in the config file and that a
password never reaches a log, that the schema is applied at start, that incident records and
report versions are shared by instances with different data dirs (v2 made by another instance
says what changed since v1), that the bot reconnects after `pg_ctl restart`, and host.db itself
(rows, NULL, affected, SQLSTATE errors, misuse raising, db_off in file mode). No mock of the
database. Uses harness.py (BotTestCase) and pgcluster.py."""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

from harness import REPO, BotTestCase, CommandBotTestCase, bot_binary

sys.path.insert(0, os.path.join(REPO, "tests"))
import pgcluster  # noqa: E402

ALICE = "U01ALICE"
LEAD = "U0LEAD"
WAR = "C0WARROOM"
SECRET = "s3cret-Pw-4711"
CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = pgcluster.for_module()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()


def fresh_db(name):
    return pgcluster.fresh_db(CLUSTER, name)


def write_config(text):
    fd, path = tempfile.mkstemp(prefix="pmb-dbcfg-", suffix=".lua")
    with os.fdopen(fd, "w") as f:
        f.write('return { scripts_dir = "%s", templates_dir = "%s", %s }\n'
                % (os.path.join(REPO, "scripts"), os.path.join(REPO, "templates"), text))
    return path


def run_cli(args, url=None, config=None, timeout=60):
    env = dict(os.environ)
    env.pop("POSTMORTEMBOT_DATABASE_URL", None)
    if url:
        env["POSTMORTEMBOT_DATABASE_URL"] = url
    cfg = config or write_config("")
    try:
        p = subprocess.run([bot_binary()] + args + ["-c", cfg], env=env, capture_output=True,
                           text=True, timeout=timeout)
    finally:
        if not config:
            os.unlink(cfg)
    return p


class DbCliTest(unittest.TestCase):
    def test_status_migrate_idempotent(self):
        url = fresh_db("cli1")
        p = run_cli(["db", "status"], url)
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^0001_state pending$")
        p = run_cli(["db", "migrate"], url)
        self.assertEqual(0, p.returncode, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^0001_state applied")
        self.assertNotIn("NOTICE", p.stderr)
        again = run_cli(["db", "migrate"], url)
        self.assertEqual(0, again.returncode, again.stderr)
        p = run_cli(["db", "status"], url)
        self.assertRegex(p.stdout, r"(?m)^0001_state applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
        rows = CLUSTER.psql("SELECT version, name FROM pmb_schema_migrations ORDER BY version", db="cli1")
        self.assertEqual([["1", "0001_state"], ["2", "0002_jobs"]], rows)

    def test_two_migrations_at_once_apply_it_once(self):
        url = fresh_db("cli2")
        results = []
        threads = [threading.Thread(target=lambda: results.append(run_cli(["db", "migrate"], url)))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([0, 0, 0], [p.returncode for p in results], [p.stderr for p in results])
        self.assertEqual([["2"]], CLUSTER.psql("SELECT count(*) FROM pmb_schema_migrations", db="cli2"))

    def test_unreachable_database_is_an_error(self):
        url = "postgresql://postgres:%s@/nowhere?host=/nonexistent-dir" % SECRET
        p = run_cli(["db", "status"], url)
        self.assertEqual(1, p.returncode)
        self.assertIn("database", p.stderr)
        self.assertNotIn(SECRET, p.stderr + p.stdout)

    def test_no_database_configured(self):
        p = run_cli(["db", "status"])
        self.assertEqual(2, p.returncode)
        self.assertIn("no database is configured", p.stderr)

    def test_db_takes_migrate_or_status(self):
        p = run_cli(["db", "drop"])
        self.assertEqual(2, p.returncode)
        self.assertIn("migrate, status", p.stderr)

    def test_check_refuses_a_password_in_the_config_file(self):
        for url in ("postgresql://pmb:%s@db.example.com/pmb" % SECRET,
                    "host=db.example.com dbname=pmb password=%s" % SECRET,
                    "postgresql://pmb@db.example.com/pmb?password=%s" % SECRET):
            cfg = write_config('database = { url = "%s" }' % url)
            try:
                p = run_cli(["check"], config=cfg)
            finally:
                os.unlink(cfg)
            self.assertEqual(1, p.returncode, url)
            self.assertIn("database.url holds a password", p.stdout + p.stderr)
            self.assertNotIn(SECRET, p.stdout + p.stderr)
        cfg = write_config('database = { url = "postgresql://pmb@db.example.com/pmb" }')
        try:
            self.assertEqual(0, run_cli(["check"], config=cfg).returncode)
            # the environment may carry the password (and wins over the file)
            p = run_cli(["check"], url="postgresql://pmb:%s@db.example.com/pmb" % SECRET, config=cfg)
            self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        finally:
            os.unlink(cfg)


class DbModeTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")

    def db_bot(self, url, extra_env=None, **cfg):
        env = {"POSTMORTEMBOT_DATABASE_URL": url}
        env.update(extra_env or {})
        return self.start_bot(cfg or None, env=env)

    def mention_and_wait(self, bot, channel, thread_ts, text, pattern, timeout=30):
        before = len(self.fs.posts(channel=channel, thread_ts=thread_ts))
        self.fs.mention(channel, LEAD, text, thread_ts=thread_ts)

        def reply():
            posts = self.fs.posts(channel=channel, thread_ts=thread_ts)[before:]
            return next((p for p in posts if pattern in p["text"]), None)
        return self.fs.wait_for(reply, timeout=timeout, what="%r (bot log:\n%s)" % (pattern, bot.tail(30)))

    def test_schema_applied_at_start_and_password_never_logged(self):
        url = fresh_db("mode1")
        # trust auth: the password is sent nowhere, but it is in the URL the bot was given
        bot = self.db_bot(url.replace("postgres@", "postgres:%s@" % SECRET))
        bot.wait_log(r'msg="database schema current"')
        self.assertEqual([["2"]], CLUSTER.psql("SELECT count(*) FROM pmb_schema_migrations", db="mode1"))
        bot.stop()
        self.assertNotIn(SECRET, "\n".join(bot.log_lines + bot.stdout_lines))

    def test_incident_record_is_shared_between_instances(self):
        url = fresh_db("mode2")
        self.fs.add_channel(WAR, "war-room")
        self.fs.add_user(LEAD, display_name="Lea Lead")
        root = self.fs.add_message(WAR, {"user": LEAD, "text": "Payments 500"})["ts"]
        a = self.db_bot(url)
        self.mention_and_wait(a, WAR, root, "incident resolve card processor back", "Resolved")
        a.stop()
        rows = CLUSTER.psql("SELECT record->>'resolved_by', record->>'title' FROM pmb_incidents "
                            "WHERE channel = '%s' AND thread_ts = '%s'" % (WAR, root), db="mode2")
        self.assertEqual([[LEAD, "Payments 500"]], rows)
        # another instance, another data dir: it reads the record the first one wrote
        self.fs.add_channel("C0STATUS", "status")
        b = self.db_bot(url, status={"channels": ["C0STATUS"]})
        self.assertNotEqual(a.data_dir, b.data_dir)
        self.mention_and_wait(b, WAR, root, "statusupdate all good again", "Status update")
        posted = self.fs.posts(channel="C0STATUS")
        self.assertIn("Payments 500", posted[-1]["text"])  # the title from the record a wrote
        rows = CLUSTER.psql("SELECT record->>'resolved_by', record->'status_updates'->-1->>'text' "
                            "FROM pmb_incidents WHERE channel = '%s'" % WAR, db="mode2")
        self.assertEqual([[LEAD, "all good again"]], rows)  # b kept what a wrote, added its own
        self.assertFalse(os.path.exists(os.path.join(b.data_dir, "incidents")))

    def test_report_versions_are_allocated_in_the_database(self):
        url = fresh_db("mode3")
        channel, parent = self.load_incident()

        def autopsy(bot):
            before = len(self.fs.uploads)
            self.fs.mention(channel, ALICE, "autopsy this", thread_ts=parent)
            self.fs.wait_for(lambda: len(self.fs.uploads) > before, timeout=60,
                             what="the upload (bot log:\n%s)" % bot.tail(30))
            with self.fs.lock:
                return self.fs.uploads[-1]

        a = self.db_bot(url)
        first = autopsy(a)
        a.stop()
        self.fs.add_message(channel, {"type": "message", "user": "U02BOB", "thread_ts": parent,
                                      "text": "Late note from another instance's era."})
        b = self.db_bot(url)
        second = autopsy(b)
        self.assertNotRegex(first["initial_comment"] or "", r"Since version")
        self.assertRegex(second["initial_comment"] or "", r"Version 2\. Since version 1: 1 new entry")
        # b never had v1 on its disk: the comparison came from the database
        self.assertEqual(["v2"], os.listdir(os.path.join(b.data_dir, "reports", channel, parent)))
        rows = CLUSTER.psql("SELECT version, state, md_name IS NOT NULL, length(timeline) > 0 FROM "
                            "pmb_reports ORDER BY version", db="mode3")
        self.assertEqual([["1", "complete", "t", "t"], ["2", "complete", "t", "t"]], rows)

    def test_reconnects_after_postgres_restart(self):
        url = fresh_db("mode4")
        self.fs.add_channel(WAR, "war-room")
        self.fs.add_user(LEAD, display_name="Lea Lead")
        root = self.fs.add_message(WAR, {"user": LEAD, "text": "Queue backlog"})["ts"]
        bot = self.db_bot(url)
        bot.wait_log(r'msg="database schema current"')
        mark = bot.mark()
        CLUSTER.server("restart", mode="fast")
        bot.wait_log(r'msg="database connection lost"', timeout=20, after=mark)
        bot.wait_log(r'msg="database connected"', timeout=20, after=mark)
        self.mention_and_wait(bot, WAR, root, "incident resolve consumers scaled", "Resolved")
        self.assertTrue(bot.running())
        rows = CLUSTER.psql("SELECT record->>'title' FROM pmb_incidents", db="mode4")
        self.assertEqual([["Queue backlog"]], rows)


DBPROBE = r"""
local host = require "host"
return {
  name = "dbprobe",
  help = "dbprobe — host.db results for the tests",
  run = function(ctx, _args)
    local out = {}
    local rows, err = host.db("SELECT $1::int + 1 AS n, $2::text AS s, NULL AS z, $3::boolean AS b",
                              41, "x y", true)
    out[#out + 1] = rows and string.format("n=%s s=%s z=%s b=%s count=%d affected=%d", rows[1].n,
      rows[1].s, tostring(rows[1].z), rows[1].b, #rows, rows.affected) or ("err " .. err.code)
    rows, err = host.db("SELECT * FROM no_such_table")
    out[#out + 1] = rows and "rows?" or ("err " .. err.code .. " " .. err.message)
    rows = host.db("CREATE TABLE IF NOT EXISTS probe (k text PRIMARY KEY)")
    rows = host.db("INSERT INTO probe VALUES ($1), ($2) ON CONFLICT DO NOTHING", "a", "b")
    out[#out + 1] = "inserted=" .. (rows and rows.affected or -1)
    local ok, msg = pcall(host.db, "SELECT $1", {})
    out[#out + 1] = ok and "table accepted?" or ("raised " .. tostring(msg):match("parameter 1 is a table") )
    ctx.reply("dbprobe: " .. table.concat(out, " | "))
  end,
}
"""


class DbPrimitiveTest(CommandBotTestCase):
    def test_host_db_rows_errors_and_misuse(self):
        url = fresh_db("prim1")
        self.bot_with({"dbprobe": DBPROBE}, env={"POSTMORTEMBOT_DATABASE_URL": url})
        self.ask("dbprobe")
        post = self.wait_post(r"^dbprobe: ", timeout=20)
        self.assertEqual("dbprobe: n=42 s=x y z=nil b=t count=1 affected=1 | "
                         "err 42P01 relation \"no_such_table\" does not exist | inserted=2 | "
                         "raised parameter 1 is a table", post["text"])

    def test_host_db_in_file_mode_says_db_off(self):
        self.bot_with({"dbprobe": DBPROBE})
        self.ask("dbprobe")
        post = self.wait_post(r"^dbprobe: ", timeout=20)
        self.assertTrue(post["text"].startswith("dbprobe: err db_off | err db_off"), post["text"])


if __name__ == "__main__":
    unittest.main()
