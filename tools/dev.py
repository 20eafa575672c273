#!/usr/bin/env python3
"""make dev: the fake Slack and the bot in the foreground, for trying a command, a filter rule or
a template by hand (README "Extending it"). Starts tests/fakeslack/fakeslack.py with the incident
thread, then bin/postmortembot with the shipped config and a pid file, prints how to mention the
bot and how to reload, and shows the bot's log until Ctrl-C, which stops both."""
import os
import signal
import subprocess
import sys
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import BIN, FIXTURE, ROOT, first_human  # noqa: E402


def main():
    data_dir = os.path.join(ROOT, "var", "dev")
    os.makedirs(data_dir, exist_ok=True)
    pidfile = os.path.join(data_dir, "postmortembot.pid")
    fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fakeslack", "fakeslack.py"),
                             "--fixture", FIXTURE, "--bot-user-id", "U0PMBOT", "--bot-id", "B0PMBOT"],
                            stdout=subprocess.PIPE, text=True)
    info = json.loads(fake.stdout.readline())
    user, name = first_human(os.path.join(FIXTURE, "users.json"))
    body = json.dumps({"channel": info["channel"], "user": user, "text": "autopsy this",
                       "thread_ts": info["thread_ts"]})
    print(f"dev: fake Slack on {info['base_url']}, thread {info['channel']}/{info['thread_ts']}\n"
          f"dev: mention the bot as {name} (change the text to try another command):\n"
          f"    curl -s -X POST -H 'Content-Type: application/json' -d '{body}' {info['base_url']}_control/mention\n"
          f"dev: what the bot posted and uploaded: curl -s {info['base_url']}_control/state\n"
          f"dev: after an edit: bin/postmortembot check && kill -HUP \"$(cat {os.path.relpath(pidfile, ROOT)})\"\n"
          f"dev: reports go to {os.path.relpath(data_dir, ROOT)}/reports/; Ctrl-C stops everything\n", flush=True)
    env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-test-bot", SLACK_APP_TOKEN="xapp-test-app",
               SLACK_API_URL=info["api_url"], POSTMORTEMBOT_DATA_DIR=data_dir)
    bot = subprocess.Popen([BIN, "-c", os.path.join(ROOT, "config", "postmortembot.lua"), "--pidfile", pidfile],
                           env=env)
    try:
        bot.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for p in (bot, fake):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
    print("dev: stopped the bot and the fake Slack")


if __name__ == "__main__":
    main()
