"""The publishing part of `make demo` (tools/demo.py): a demo config that is the shipped one plus
publish.git pointing at a local bare repository, and, once the report is in the thread, the
picture's path, a `publish` in the thread and the commit that landed. Uses git and the fake Slack's
control API (through tools/demo.py's control())."""
import glob
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(work):
    """Write work/demo.lua: config/postmortembot.lua with absolute dirs and publish.git set to the
    bare repository work/wiki.git (made here). Returns its path."""
    bare = os.path.join(work, "wiki.git")
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", bare], check=True)
    with open(os.path.join(ROOT, "config", "postmortembot.lua")) as f:
        shipped = f.read()
    path = os.path.join(work, "demo.lua")
    with open(path, "w") as f:
        f.write("local cfg = (function()\n%s\nend)()\n" % shipped)
        f.write("cfg.scripts_dir, cfg.templates_dir = %r, %r\n"
                % (os.path.join(ROOT, "scripts"), os.path.join(ROOT, "templates")))
        f.write("cfg.publish = { git = { url = %r, page_url = %r } }\nreturn cfg\n"
                % ("file://" + bare, "file://" + bare + "/{{path}}/{{file}}"))
    return path


def run(control, info, user, data_dir, work):
    """Show the picture, publish the report into work/wiki.git, print the commit."""
    pics = sorted(glob.glob(os.path.join(data_dir, "reports", "*", "*", "v*", "attachments", "incident-timeline.svg")))
    if pics:
        print("picture: " + os.path.relpath(pics[-1], ROOT))
    control(info["base_url"], "mention", {"channel": info["channel"], "user": user, "text": "publish",
                                          "thread_ts": info["thread_ts"]})
    print("demo: '@postmortembot publish' typed in the thread")
    deadline = time.time() + 60
    while time.time() < deadline:
        answers = [p["text"] for p in control(info["base_url"], "state")["posts"]
                   if ":books:" in p.get("text", "") or "Publishing failed" in p.get("text", "")]
        if answers:
            print("demo: the bot answered: " + answers[-1])
            bare = os.path.join(work, "wiki.git")
            out = subprocess.run(["git", "--git-dir=" + bare, "log", "-1", "--stat", "--format=commit %H%n%s", "main"],
                                 stdout=subprocess.PIPE, text=True)
            print("demo: the wiki repository (%s) now holds:\n%s" % (bare, out.stdout))
            return
        time.sleep(0.2)
    print("demo: no answer to publish within 60 s")
