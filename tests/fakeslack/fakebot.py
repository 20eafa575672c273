#!/usr/bin/env python3
"""A stand-in for bin/postmortembot, used only by the harness self-tests in
tests/e2e/test_fakeslack.py: it does what the harness relies on (reads the environment, calls
auth.test and apps.connections.open, connects over Socket Mode, logs logfmt lines on stderr, acks
envelopes, exits 0 on SIGTERM) and nothing else. Calls wsclient.py.
FAKEBOT_LEAK=1 makes it log the bot token, to prove the harness's redaction check fires."""
import json
import os
import signal
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsclient  # noqa: E402


def log(level, msg, **fields):
    parts = ["level=%s" % level, 'msg="%s"' % msg] + ["%s=%s" % (k, json.dumps(str(v))) for k, v in fields.items()]
    sys.stderr.write(" ".join(parts) + "\n")
    sys.stderr.flush()


def api(method, token):
    req = urllib.request.Request(os.environ["SLACK_API_URL"] + method, data=b"",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def main():
    args = sys.argv[1:]
    config = args[args.index("-c") + 1] if "-c" in args else None
    signal.signal(signal.SIGTERM, lambda *_: (log("info", "stopping"), os._exit(0)))
    signal.signal(signal.SIGHUP, lambda *_: log("info", "reload requested", config=config))
    log("info", "starting", config=config, cwd=os.getcwd(), extra=" ".join(args[2:]))
    if os.environ.get("FAKEBOT_LEAK"):
        log("debug", "token " + os.environ["SLACK_BOT_TOKEN"])
    me = api("auth.test", os.environ["SLACK_BOT_TOKEN"])
    url = api("apps.connections.open", os.environ["SLACK_APP_TOKEN"])["url"]
    ws = wsclient.WSClient(url)
    hello = ws.recv_json()
    log("info", "socket mode connected", conn=1, num_connections=hello.get("num_connections"), user=me["user_id"])
    while True:
        msg = ws.recv_json(timeout=3600)
        if "envelope_id" in msg:
            ws.send_json({"envelope_id": msg["envelope_id"]})
            log("info", "event acked", envelope_id=msg["envelope_id"], type=msg["payload"]["event"]["type"])


if __name__ == "__main__":
    main()
