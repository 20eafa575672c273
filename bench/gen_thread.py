#!/usr/bin/env python3
"""Writes a saved thread for the offline `render` benchmark: a JSON array of conversations.replies
pages (200 messages each, as the bot reads them) and a users.list response, with the same content
as bench/autopsy_e2e.py's thread (its build_thread, run against a recorder instead of the fake).
Usage: python3 bench/gen_thread.py OUT_DIR [--messages 20000] [--unique-texts]
       (--unique-texts: every message's text made different by a number at its end; the thread
       otherwise repeats a dozen texts, which the timeline converts once each)
       then: bin/postmortembot render OUT_DIR/thread.json --users OUT_DIR/users.json -o DIR
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import autopsy_e2e  # noqa: E402


class Recorder:
    """The part of the fake Slack that build_thread calls, keeping what it is given."""

    identity = {"user_id": "U0PMBOT"}

    def __init__(self):
        self.users, self.messages = [], []

    def add_user(self, uid, display_name="", real_name="", is_bot=False):
        self.users.append({"id": uid, "name": display_name, "is_bot": is_bot, "real_name": real_name,
                           "profile": {"display_name": display_name, "real_name": real_name}})

    def add_bot(self, bid, name):
        pass

    def add_channel(self, cid, name, members=None):
        pass

    def add_message(self, channel, msg):
        self.messages.append(msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--unique-texts", action="store_true",
                    help="end every non-empty text with its message's number (no text repeats)")
    args = ap.parse_args()
    rec = Recorder()
    autopsy_e2e.build_thread(rec, args.messages, 0, 0)
    if args.unique_texts:
        for i, msg in enumerate(rec.messages):
            if msg.get("text"):
                msg["text"] += " (#%d)" % i
    pages = []
    for i in range(0, len(rec.messages), autopsy_e2e.REPLIES_PAGE):
        chunk = rec.messages[i:i + autopsy_e2e.REPLIES_PAGE]
        more = i + autopsy_e2e.REPLIES_PAGE < len(rec.messages)
        pages.append({"ok": True, "messages": chunk, "has_more": more,
                      "response_metadata": {"next_cursor": "page%d" % (i + 1) if more else ""}})
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "thread.json"), "w") as f:
        json.dump(pages, f)
    with open(os.path.join(args.out_dir, "users.json"), "w") as f:
        json.dump({"ok": True, "members": rec.users}, f)
    print("%s: %d messages in %d pages" % (os.path.join(args.out_dir, "thread.json"), len(rec.messages), len(pages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
