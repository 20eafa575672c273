#!/usr/bin/env python3
"""make demo: the bot against the bundled fake Slack, ending in a report on your screen.

Starts tests/fakeslack/fakeslack.py on loopback with the incident thread in tests/fixtures/incident,
starts bin/postmortembot against it with throwaway tokens, mentions the bot with "autopsy this" in
that thread, waits for the upload, prints where the report and bundle are and the report's first
lines, shows how a reload would be done, then stops everything it started. No Slack needed."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import demo_publish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "incident")
BIN = os.environ.get("POSTMORTEMBOT_BIN", os.path.join(ROOT, "bin", "postmortembot"))


def control(base_url, action, body=None):
    if body is None:
        with urllib.request.urlopen(base_url + "_control/" + action, timeout=10) as r:
            return json.loads(r.read())
    req = urllib.request.Request(base_url + "_control/" + action, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def first_human(users_path):
    with open(users_path) as f:
        users = json.load(f)
    members = users["members"] if isinstance(users, dict) else users
    for u in members:
        if not u.get("is_bot") and u.get("id") != "USLACKBOT":
            return u["id"], (u.get("profile") or {}).get("display_name") or u.get("name")
    raise SystemExit("demo: no human user in the fixture")


def wait_for(pred, timeout, what, log_path=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main():
    work = tempfile.mkdtemp(prefix="postmortembot-demo-")
    data_dir = os.path.join(ROOT, "var", "demo")
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(data_dir, exist_ok=True)
    procs = []
    try:
        fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fakeslack", "fakeslack.py"),
                                 "--fixture", FIXTURE, "--bot-user-id", "U0PMBOT", "--bot-id", "B0PMBOT"], stdout=subprocess.PIPE, text=True)
        procs.append(fake)
        info = json.loads(fake.stdout.readline())
        print(f"demo: fake Slack on {info['base_url']} with the thread {info['channel']}/{info['thread_ts']}")

        # the shipped config, as a newcomer would run it; only the data dir is the demo's own
        config = demo_publish.config(work)  # the shipped config + publish.git to a local bare repository
        log_path = os.path.join(work, "bot.log")
        env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-test-bot", SLACK_APP_TOKEN="xapp-test-app",
                   SLACK_API_URL=info["api_url"])
        env["POSTMORTEMBOT_DATA_DIR"] = data_dir
        log = open(log_path, "w")
        bot = subprocess.Popen([BIN, "-c", config], env=env, stderr=log, stdout=log)
        procs.append(bot)
        def connected():
            if bot.poll() is not None:
                sys.stderr.write(open(log_path).read())
                raise SystemExit(f"demo: the bot exited with status {bot.returncode} (its log is above)")
            return "socket mode connected" in open(log_path).read()
        wait_for(connected, 20, "the bot to connect")
        print(f"demo: bot running (pid {bot.pid}), connected over Socket Mode")

        user, name = first_human(os.path.join(FIXTURE, "users.json"))
        control(info["base_url"], "mention", {"channel": info["channel"], "user": user,
                                              "text": "autopsy this", "thread_ts": info["thread_ts"]})
        print(f"demo: {name} typed '@postmortembot autopsy this' in the thread")
        start = time.time()
        state = wait_for(lambda: (lambda s: s if s.get("uploads") else None)(control(info["base_url"], "state")),
                         60, "the upload")
        print(f"demo: uploaded into the thread after {time.time() - start:.2f} s: "
              + ", ".join(f["filename"] for u in state["uploads"] for f in u.get("files", [])))

        md = sorted(glob.glob(os.path.join(data_dir, "reports", "*", "*", "v*", "*.md")))
        zips = sorted(glob.glob(os.path.join(data_dir, "reports", "*", "*", "v*", "*.zip")))
        if not md or not zips:
            raise SystemExit("demo: the report was not written under " + data_dir)
        print(f"\nreport: {os.path.relpath(md[-1], ROOT)}\nbundle: {os.path.relpath(zips[-1], ROOT)}\n")
        with open(md[-1]) as f:
            lines = f.read().splitlines()
        print("\n".join("    " + l for l in lines[:40]))
        print(f"    ... ({len(lines)} lines)\n")
        demo_publish.run(control, info, user, data_dir, work)
        print("To change the report's layout while the bot runs: edit templates/postmortem.md.mustache")
        print(f"(or a script in scripts/), check it, then reload without dropping the connection:\n"
              f"    bin/postmortembot check && kill -HUP \"$(cat var/postmortembot.pid)\"   (run it with --pidfile var/postmortembot.pid)")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("demo: stopped the bot and the fake Slack")


if __name__ == "__main__":
    main()
