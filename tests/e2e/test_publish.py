#!/usr/bin/env python3
"""Publishing to a Git-backed wiki, end to end: the real bot against the fake Slack and real Git
servers on loopback: a bare repository served by `git daemon` (git://) and by `git http-backend`
behind lighttpd (smart HTTP, basic auth over POSTMORTEMBOT_GIT_TOKEN). Checks what lands in the
repository (the .md and every attachment, byte for byte, the picture included), one commit per
version, the answer with the page URL, a push beaten by someone else's (re-applied on the new head,
never forced), two publishes at once, and a refused credential (a clear answer, the report still in
the thread, the token nowhere). Uses tests/e2e/harness.py and tests/fixtures/incident.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BotTestCase, free_port

ALICE = "U01ALICE"
TOKEN = "gitpat-0123456789abcdef-SECRET"
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "someone", "GIT_AUTHOR_EMAIL": "someone@example.com",
           "GIT_COMMITTER_NAME": "someone", "GIT_COMMITTER_EMAIL": "someone@example.com"}

# pre-receive: the first push from outside the test waits until the test has pushed its own commit,
# so that its ref update finds the branch moved (a push race, every time).
RACE_HOOK = """#!/bin/sh
[ -n "$PMB_TEST_OTHER" ] && exit 0
[ -e "%(dir)s/first-done" ] && exit 0
touch "%(dir)s/arrived"
i=0
while [ ! -e "%(dir)s/release" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
touch "%(dir)s/first-done"
exit 0
"""


def git(*args, cwd=None, env=None, check=True):
    e = dict(os.environ)
    e.update(GIT_ENV)
    e.update(env or {})
    p = subprocess.run(["git"] + list(args), cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("git %s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def wait_port(port, what, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited at start" % what)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s did not listen on %d" % (what, port))


class GitServers:
    """A temp dir of bare repositories with the two servers that a test starts."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pmb-git-")
        self.repos = os.path.join(self.root, "repos")
        os.makedirs(self.repos)
        self.procs = []

    def bare(self, name="wiki.git", initial=False):
        path = os.path.join(self.repos, name)
        git("init", "--quiet", "--bare", "--initial-branch=main", path)
        if initial:
            work = os.path.join(self.root, "seed")
            git("init", "--quiet", "--initial-branch=main", work)
            with open(os.path.join(work, "README.md"), "w") as f:
                f.write("# Wiki\n")
            git("add", "README.md", cwd=work)
            git("commit", "--quiet", "-m", "wiki", cwd=work)
            git("push", "--quiet", path, "main", cwd=work)
            shutil.rmtree(work)
        return path

    def start_daemon(self):
        port = free_port()
        proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
                                 "--informative-errors", "--listen=127.0.0.1", "--port=%d" % port,
                                 "--base-path=" + self.repos, self.repos],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env=dict(os.environ, **GIT_ENV))
        self.procs.append(proc)
        wait_port(port, "git daemon", proc)
        return "git://127.0.0.1:%d" % port

    def start_http(self, user="bot", password=TOKEN):
        if not shutil.which("lighttpd"):
            raise unittest.SkipTest("lighttpd is not installed (make deps)")
        port = free_port()
        users = os.path.join(self.root, "users")
        with open(users, "w") as f:
            f.write("%s:%s\n" % (user, password))
        conf = os.path.join(self.root, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write('server.document-root = "%(repos)s"\n'
                    'server.bind = "127.0.0.1"\n'
                    'server.port = %(port)d\n'
                    'server.errorlog = "%(root)s/lighttpd.log"\n'
                    'server.modules = ("mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi")\n'
                    'alias.url = ("/git/" => "%(backend)s/")\n'
                    '$HTTP["url"] =~ "^/git/" {\n'
                    '  cgi.assign = ("" => "")\n'
                    '  setenv.add-environment = ("GIT_PROJECT_ROOT" => "%(repos)s", "GIT_HTTP_EXPORT_ALL" => "1")\n'
                    '  auth.backend = "plain"\n'
                    '  auth.backend.plain.userfile = "%(users)s"\n'
                    '  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))\n'
                    '}\n' % {"repos": self.repos, "port": port, "root": self.root, "backend": GIT_HTTP_BACKEND,
                             "users": users})
        proc = subprocess.Popen(["lighttpd", "-D", "-f", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        wait_port(port, "lighttpd", proc)
        return "http://127.0.0.1:%d/git" % port

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def tree(bare, rev="main"):
    out = git("--git-dir=" + bare, "ls-tree", "-r", "--name-only", rev).decode()
    return set(out.split("\n")) - {""}


def log(bare, rev="main"):
    """[(commit, [parents], subject)] newest first."""
    out = git("--git-dir=" + bare, "log", "--format=%H %P|%s", rev).decode()
    rows = []
    for line in out.strip().split("\n"):
        hashes, subject = line.split("|", 1)
        parts = hashes.split()
        rows.append((parts[0], parts[1:], subject))
    return rows


class PublishTest(BotTestCase):
    def setUp(self):
        super().setUp()
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        self.channel, self.parent = self.load_incident()
        self.git = GitServers()
        self.addCleanup(self.git.stop)

    def bot_for(self, url, env=None, extra=None):
        cfg = {"publish": {"git": {"url": url, "branch": "main",
                                   "path": "postmortems/{{year}}/{{date}}-{{slug}}",
                                   "page_url": "https://wiki.example.com/{{path}}/{{page}}",
                                   "author_name": "Postmortem Bot", "author_email": "pmb@example.com"}}}
        cfg["publish"]["git"].update(extra or {})
        return self.start_bot(cfg, env=env)

    def ask(self, text):
        ts, _ = self.fs.mention(self.channel, ALICE, text, thread_ts=self.parent)
        return ts

    def wait_answer(self, bot, pattern=r":books: |:x: Publishing failed", after=0, timeout=90):
        import re
        rx = re.compile(pattern)

        def found():
            posts = [p for p in self.fs.posts(channel=self.channel, thread_ts=self.parent) if rx.search(p["text"])]
            return posts[after] if len(posts) > after else None
        return self.fs.wait_for(found, timeout=timeout, what="an answer matching %r (bot log:\n%s)"
                                % (pattern, bot.tail(30)))

    def kept_version(self, bot, version):
        base = os.path.join(bot.data_dir, "reports", self.channel, self.parent, "v%d" % version)
        files = {}
        for dirpath, _, names in os.walk(base):
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), base)
                if rel.endswith(".md") or rel.startswith("attachments/"):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        files[rel] = f.read()
        return files

    # --- git:// --------------------------------------------------------------------------------
    def test_autopsy_and_publish_over_git_daemon(self):
        bare = self.git.bare()
        url = self.git.start_daemon() + "/wiki.git"
        bot = self.bot_for(url)
        self.ask("autopsy this and publish")
        answer = self.wait_answer(bot)["text"]
        self.assertIn(":books: Published version 1", answer)
        folder = "postmortems/2024/2024-11-14-checkout-errors-card-payments-failing-in"
        page = "https://wiki.example.com/%s/postmortem-2024-11-14-checkout-errors-card-payments-failing-in" % folder
        self.assertIn(page, answer)
        history = log(bare)
        self.assertEqual(1, len(history))
        self.assertIn(history[0][0][:12], answer)
        self.assertEqual([], history[0][1])
        self.assertEqual("Postmortem: Checkout errors: card payments failing in eu-west (version 1)", history[0][2])
        # the report was uploaded into the thread as usual
        self.assertTrue(self.fs.uploads, "the report is uploaded before it is published")

        kept = self.kept_version(bot, 1)
        self.assertIn("attachments/incident-timeline.svg", kept)
        self.assertEqual({folder + "/" + rel for rel in kept}, tree(bare))
        for rel, data in kept.items():
            self.assertEqual(data, git("--git-dir=" + bare, "show", "main:%s/%s" % (folder, rel)), rel)
        author = git("--git-dir=" + bare, "log", "-1", "--format=%an <%ae>", "main").decode().strip()
        self.assertEqual("Postmortem Bot <pmb@example.com>", author)

        # a new version is a new commit on top; publishing it again changes nothing
        self.ask("autopsy this and publish")
        second = self.wait_answer(bot, after=1)["text"]
        self.assertIn("Published version 2", second)
        history = log(bare)
        self.assertEqual(2, len(history))
        self.assertEqual([history[1][0]], history[0][1])
        self.assertEqual({folder + "/" + rel for rel in self.kept_version(bot, 2)}, tree(bare))
        self.ask("publish")
        third = self.wait_answer(bot, after=2)["text"]
        self.assertIn("Version 2 is already published", third)
        self.assertEqual(2, len(log(bare)))

    def test_a_push_beaten_by_another_is_reapplied_on_the_new_head(self):
        bare = self.git.bare(initial=True)
        hook = os.path.join(bare, "hooks", "pre-receive")
        with open(hook, "w") as f:
            f.write(RACE_HOOK % {"dir": self.git.root})
        os.chmod(hook, 0o755)
        url = self.git.start_daemon() + "/wiki.git"
        bot = self.bot_for(url)
        self.ask("autopsy this and publish")
        self.fs.wait_for(lambda: os.path.exists(os.path.join(self.git.root, "arrived")), timeout=90,
                         what="the bot's push (bot log:\n%s)" % bot.tail(30))
        # someone else pushes while the bot's push waits in the hook
        other = os.path.join(self.git.root, "other")
        git("clone", "--quiet", bare, other)
        with open(os.path.join(other, "runbook.md"), "w") as f:
            f.write("# Runbook\n")
        git("add", "runbook.md", cwd=other)
        git("commit", "--quiet", "-m", "someone else's page", cwd=other)
        git("push", "--quiet", "origin", "main", cwd=other, env={"PMB_TEST_OTHER": "1"})
        theirs = git("rev-parse", "HEAD", cwd=other).decode().strip()
        open(os.path.join(self.git.root, "release"), "w").close()

        answer = self.wait_answer(bot)["text"]
        self.assertIn(":books: Published version 1", answer)
        bot.wait_log(r"push was beaten by another")
        history = log(bare)
        self.assertEqual(3, len(history), history)  # seed, theirs, ours: nothing lost, no merge
        self.assertEqual([theirs], history[0][1], "our commit sits on top of theirs (never forced)")
        files = tree(bare)
        self.assertIn("runbook.md", files)
        self.assertIn("README.md", files)
        self.assertTrue(any(f.endswith("/attachments/incident-timeline.svg") for f in files), files)

    def test_two_publishes_at_once_both_land(self):
        bare = self.git.bare(initial=True)
        url = self.git.start_daemon() + "/wiki.git"
        bot = self.bot_for(url)
        self.ask("autopsy this")
        self.fs.wait_for(lambda: self.fs.uploads, timeout=60, what="the report")
        # a second thread with its own report: same fixture, another channel
        other_channel, other_parent = self.load_incident_into("C0OTHER")
        self.fs.mention(other_channel, ALICE, "autopsy this", thread_ts=other_parent)
        self.fs.wait_for(lambda: len(self.fs.uploads) >= 2, timeout=60, what="the second report")
        self.ask("publish")
        self.fs.mention(other_channel, ALICE, "publish", thread_ts=other_parent)
        self.wait_answer(bot)
        self.fs.wait_for(lambda: [p for p in self.fs.posts(channel=other_channel, thread_ts=other_parent)
                                  if ":books: Published" in p["text"]], timeout=60, what="the second publish")
        history = log(bare)
        self.assertEqual(3, len(history), history)
        self.assertEqual([history[1][0]], history[0][1])
        self.assertEqual([history[2][0]], history[1][1])

    def load_incident_into(self, channel):
        """The incident fixture once more, in another channel: a copy whose channel.json names it."""
        import json
        src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "incident")
        copy = os.path.join(self.git.root, "fixture-" + channel)
        shutil.copytree(src, copy)
        with open(os.path.join(copy, "channel.json")) as f:
            info = json.load(f)
        info["id"], info["name"] = channel, channel.lower()
        with open(os.path.join(copy, "channel.json"), "w") as f:
            json.dump(info, f)
        return self.fs.load_fixture(copy)

    # --- smart HTTP with basic auth ------------------------------------------------------------
    def test_publish_over_smart_http_with_a_token(self):
        bare = self.git.bare()
        url = self.git.start_http() + "/wiki.git"
        bot = self.bot_for(url, env={"POSTMORTEMBOT_GIT_TOKEN": TOKEN}, extra={"username": "bot"})
        self.ask("autopsy this and publish")
        answer = self.wait_answer(bot)["text"]
        self.assertIn(":books: Published version 1", answer, answer)
        self.assertEqual(1, len(log(bare)))
        self.assertTrue(any(f.endswith(".md") for f in tree(bare)))
        self.assertNotIn(TOKEN, bot.log_text())

    def test_a_refused_credential_is_answered_and_nothing_is_lost(self):
        bare = self.git.bare()
        url = self.git.start_http() + "/wiki.git"
        wrong = "gitpat-WRONG-0000-not-the-token"
        bot = self.bot_for(url, env={"POSTMORTEMBOT_GIT_TOKEN": wrong}, extra={"username": "bot"})
        self.ask("autopsy this and publish")
        answer = self.wait_answer(bot)["text"]
        self.assertIn(":x: Publishing failed", answer)
        self.assertIn("refused the bot's credentials", answer)
        self.assertIn("unchanged", answer)
        self.assertNotIn(wrong, answer)
        # the report is in the thread all the same, and kept under the data dir
        self.assertEqual(1, len(self.fs.uploads))
        self.assertTrue(self.kept_version(bot, 1))
        self.assertEqual(b"", git("--git-dir=" + bare, "for-each-ref", "refs/heads"))
        for text in [bot.log_text()] + [p["text"] for p in self.fs.posts(channel=self.channel)]:
            self.assertNotIn(wrong, text)
            self.assertNotIn("V1JPTkc", text)  # nor its base64 (Basic auth) form

    def test_publish_without_a_report_or_config_says_what_to_do(self):
        bot = self.start_bot()
        self.ask("publish")
        self.assertIn("publishing is not set up", self.wait_answer(bot)["text"])


if __name__ == "__main__":
    unittest.main()
