#!/usr/bin/env python3
"""A fake Slack on loopback for the integration tests: Web API, file hosting, uploads and Socket
Mode over a real WebSocket, with scriptable faults and a record of every request.

Owns the workspace state, the records and the two HTTP servers (the main one and an "other host"
for cross-host redirects). Used by tests/e2e (through harness.py) and by `make demo` (as a CLI,
see main()). Calls routes.py (the HTTP router), webapi.py (the Web API methods) and socketmode.py
(WebSocket sessions).
"""
import argparse
import bisect
import collections
import copy
import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routes  # noqa: E402
import socketmode  # noqa: E402
import webapi  # noqa: E402
import wsproto  # noqa: E402
from routes import BLOCK, TEAM_ID  # noqa: E402

_UNSET = object()

Ack = collections.namedtuple("Ack", "envelope_id time_sent time_acked conn_id")


def ts_key(ts):
    """A Slack ts string as integer microseconds, for ordering ("1700000000.000100")."""
    sec, _, frac = str(ts).partition(".")
    return int(sec) * 1000000 + int((frac + "000000")[:6])


def ts_str(micros):
    return "%d.%06d" % (micros // 1000000, micros % 1000000)


class FakeSlack:
    """See the module docstring. Start with .start(); every attribute below is safe to read from
    tests; change state with the builder methods (they take the lock)."""

    def __init__(self, bot_token="xoxb-test-bot", app_token="xapp-test-app", latency=0.0):
        self.bot_token = bot_token
        self.app_token = app_token
        self.latency = latency
        self.lock = threading.RLock()
        self.app_id = "A0APP"
        self.identity = {"ok": True, "url": "https://fake-workspace.slack.com/", "team": "Fake Team",
                         "user": "postmortembot", "team_id": TEAM_ID, "user_id": "U0BOT", "bot_id": "B0BOT"}
        # workspace
        self.channels = {}
        self.users = {}
        self.bots = {}
        self.messages = {}   # channel id -> messages sorted by ts
        self._by_ts = {}     # channel id -> ts -> message
        self.files = {}      # file id -> entry (see add_file)
        self.usergroups = {}
        self.usergroup_handles = {}
        self.pending_uploads = {}
        self._upload_counter = 0
        # None: uploads are kept byte for byte; an upload_sink.UploadSink: only their length and
        # first bytes (the benchmarks: see upload_sink.py)
        self.upload_sink = None
        self._last_ts = ts_key("1700000000.000000")
        # settings
        self.max_page = 1000
        self.history_max_page = 1000
        self.pins = {}       # channel id -> [ts] (pins.list)
        self.responses = []  # what was POSTed to response_url endpoints: {id, body, time}
        self.repeat_parent = True
        self.ignore_close = False
        self.no_pong = False
        self.send_hello = True
        self.hello_delay = 0.0
        self.approximate_connection_time = 18060
        self.single_use_tickets = True
        # apps.connections.open hands out this URL instead of our own (a Socket Mode peer elsewhere)
        self.ws_url_override = None
        # records
        self.requests = []
        self.token_violations = []
        self.strict_violations = []  # requests a strict HTTP server would refuse (strict_http.py)
        self.uploads = []
        self.upload_errors = []
        self.updates = []
        self.reactions = []
        self._posts = []
        self.other_auth_seen = False
        self.other_requests = []
        self.connections = []
        self.acks = []
        self.envelopes = []
        self.ws_errors = []
        self._tickets = {}
        self._ticket_counter = 0
        self._event_counter = 0
        # faults
        self._faults = collections.defaultdict(collections.deque)
        self._page_faults = collections.defaultdict(collections.deque)
        self._always = {}
        self._servers = []
        self._threads = []
        self.port = None
        self.other_port = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, port=0, other_port=0):
        main = routes.Server(self, "main", port)
        other = routes.Server(self, "other", other_port)
        self._servers = [main, other]
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        self.port = main.server_address[1]
        self.other_port = other.server_address[1]
        return self

    @property
    def base_url(self):
        return "http://127.0.0.1:%d/" % self.port

    @property
    def api_url(self):
        return self.base_url + "api/"

    @property
    def other_url(self):
        return "http://127.0.0.1:%d/" % self.other_port

    def stop(self):
        for conn in list(self.connections):
            conn.drop()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers = []
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- state builders -------------------------------------------------------------------
    def set_identity(self, user_id=None, bot_id=None, user=None):
        """Change who the bot is (auth.test, the sender of chat.postMessage, <@…> in mentions)."""
        with self.lock:
            old = self.identity["user_id"]
            for key, value in (("user_id", user_id), ("bot_id", bot_id), ("user", user)):
                if value:
                    self.identity[key] = value
            for ch in self.channels.values():
                if old in ch["members"]:
                    ch["members"][ch["members"].index(old)] = self.identity["user_id"]

    def add_channel(self, channel_id, name, member=True, members=(), is_private=False):
        with self.lock:
            mem = list(members)
            if member and self.identity["user_id"] not in mem:
                mem.insert(0, self.identity["user_id"])
            self.channels[channel_id] = {"id": channel_id, "name": name, "members": mem,
                                         "is_private": is_private, "created": 1690000000}
            self.messages.setdefault(channel_id, [])
            self._by_ts.setdefault(channel_id, {})
            return self.channels[channel_id]

    def add_user(self, user_id, display_name=None, real_name=None, name=None, is_bot=False, **fields):
        with self.lock:
            name = name or (display_name or user_id).lower().replace(" ", ".")
            real_name = real_name if real_name is not None else (display_name or name)
            user = {"id": user_id, "team_id": TEAM_ID, "name": name, "deleted": False, "real_name": real_name,
                    "tz": "UTC", "tz_label": "Coordinated Universal Time", "tz_offset": 0, "is_bot": is_bot,
                    "profile": {"display_name": display_name or "", "real_name": real_name,
                                "display_name_normalized": display_name or "", "real_name_normalized": real_name,
                                "team": TEAM_ID}}
            user.update(fields)
            self.users[user_id] = user
            return user

    def add_bot(self, bot_id, name, user_id=None, app_id=None):
        with self.lock:
            bot = {"id": bot_id, "deleted": False, "name": name, "updated": 1690000000,
                   "app_id": app_id or "A" + bot_id[1:], "icons": {"image_36": "https://avatars.example.com/b.png"}}
            if user_id:
                bot["user_id"] = user_id
            self.bots[bot_id] = bot
            return bot

    def add_usergroup(self, group_id, user_ids, handle=None):
        """A user group: its members (usergroups.users.list) and its @handle (usergroups.list;
        default: the id in lower case)."""
        with self.lock:
            self.usergroups[group_id] = list(user_ids)
            self.usergroup_handles[group_id] = handle or group_id.lower()

    def add_message(self, channel, msg):
        """Store a message (a dict; ts generated when missing). Returns the stored dict."""
        with self.lock:
            return self._append_message(channel, dict(msg))

    def add_thread(self, channel, n_replies, users=("U0ALICE",), text="reply {i}",
                   parent_text="incident thread", parent_user=None):
        """A parent and n_replies replies (texts from `text` formatted with i, 1-based; users in
        turn). Returns the parent ts. Unknown channels and users are created."""
        with self.lock:
            if channel not in self.channels:
                self.add_channel(channel, channel.lower())
            for u in users:
                if u not in self.users:
                    self.add_user(u, u.lower())
            parent_user = parent_user or users[0]
            parent = self._append_message(channel, {"type": "message", "user": parent_user, "text": parent_text})
            root = parent["ts"]
            parent["thread_ts"] = root
            for i in range(1, n_replies + 1):
                self._append_message(channel, {"type": "message", "user": users[(i - 1) % len(users)],
                                               "text": text.format(i=i), "thread_ts": root,
                                               "parent_user_id": parent_user}, count_reply=False)
            parent["reply_count"] = n_replies
            return root

    def add_file(self, file_id, name, data_or_size, mimetype="application/octet-stream", mode="serve",
                 status=404, chunk_delay=0.05, user="U0ALICE", title=None, obj_fields=None):
        """Host a file. data_or_size: bytes, or an int size for generated content (streamed, never
        held in memory). mode: serve | login_page | redirect_same | redirect_other (the other host
        serves the bytes to anyone, like a pre-signed CDN) | redirect_other_login (the other host
        answers a sign-in page without a token) | status
        (answers `status`) | slow (sleeps chunk_delay per 16 KiB) | redirect_to (302 to the
        `location` setting of set_file_mode, any URL: internal hosts, file://, itself) | truncated
        (announces the whole size, sends half, closes). Returns the Slack file object."""
        with self.lock:
            if isinstance(data_or_size, int):
                data, size = None, data_or_size
                block = b"".join(hashlib.sha256(("%s:%d" % (file_id, i)).encode()).digest()
                                 for i in range(BLOCK // 32))
            else:
                data = bytes(data_or_size)
                size, block = len(data), None
            quoted = urllib.parse.quote(name, safe="")
            obj = {"id": file_id, "created": 1700000000, "timestamp": 1700000000, "name": name,
                   "title": title or name, "mimetype": mimetype, "filetype": (name.rsplit(".", 1)[-1] if "." in name else "binary")[:20],
                   "pretty_type": "File", "user": user, "editable": False, "size": size, "mode": "hosted",
                   "is_external": False, "external_type": "", "is_public": True, "public_url_shared": False,
                   "url_private": "%sfiles-pri/%s-%s/%s" % (self.base_url, TEAM_ID, file_id, quoted),
                   "url_private_download": "%sfiles-pri/%s-%s/download/%s" % (self.base_url, TEAM_ID, file_id, quoted),
                   "permalink": "%sfiles/%s/%s/%s" % (self.identity["url"], user, file_id, quoted),
                   "file_access": "visible", "has_rich_preview": False}
            obj.update(obj_fields or {})
            self.files[file_id] = {"id": file_id, "name": name, "mimetype": mimetype, "mode": mode, "data": data,
                                   "size": size, "block": block, "status": status, "chunk_delay": chunk_delay,
                                   "obj": obj}
            return copy.deepcopy(obj)

    def set_file_mode(self, file_id, mode, **settings):
        with self.lock:
            self.files[file_id]["mode"] = mode
            self.files[file_id].update(settings)

    def file_bytes(self, file_id):
        """The whole content of a hosted file (generated files too: mind the size)."""
        return b"".join(self._file_chunks(self.files[file_id]))

    def file_sha256(self, file_id):
        h = hashlib.sha256()
        for chunk in self._file_chunks(self.files[file_id]):
            h.update(chunk)
        return h.hexdigest()

    def load_fixture(self, fixture_dir):
        """Load thread.json, channel.json, users.json, bots.json and files/<ID>. Returns
        (channel id, parent ts). File URLs on https://files.slack.com/ now point at this server."""
        def read(name, default=None):
            path = os.path.join(fixture_dir, name)
            if not os.path.exists(path):
                return default
            with open(path, encoding="utf-8") as f:
                return json.load(f)

        channel = read("channel.json", {"id": "C0FIXTURE", "name": "fixture"})
        users = read("users.json", [])
        users = users.get("members", []) if isinstance(users, dict) else users
        bots = read("bots.json", [])
        bots = bots.get("bots", []) if isinstance(bots, dict) else bots
        thread = read("thread.json")
        messages = thread.get("messages", []) if isinstance(thread, dict) else thread
        with self.lock:
            for u in users:
                self.users[u["id"]] = copy.deepcopy(u)
            for b in bots:
                self.bots[b["id"]] = copy.deepcopy(b)
            members = [u["id"] for u in users if not u.get("is_bot")]
            self.add_channel(channel["id"], channel.get("name", channel["id"].lower()), members=members)
            for m in messages:
                m = json.loads(self._rewrite_file_urls(json.dumps(m)))
                for f in m.get("files") or []:
                    path = os.path.join(fixture_dir, "files", f.get("id", ""))
                    if f.get("id") and os.path.isfile(path):
                        with open(path, "rb") as fh:
                            data = fh.read()
                        self.files[f["id"]] = {"id": f["id"], "name": f.get("name") or f["id"],
                                               "mimetype": f.get("mimetype") or "application/octet-stream",
                                               "mode": "serve", "data": data, "size": len(data), "block": None,
                                               "status": 404, "chunk_delay": 0.05, "obj": copy.deepcopy(f)}
                self._append_message(channel["id"], m, count_reply=False)
            parent = messages[0]["ts"] if messages else None
            for m in messages:
                if m.get("thread_ts") and m["thread_ts"] == m["ts"]:
                    parent = m["ts"]
                    break
        return channel["id"], parent

    def _rewrite_file_urls(self, text):
        return text.replace("https://files.slack.com/", self.base_url)

    # --- faults ---------------------------------------------------------------------------
    def fault(self, method, status=None, retry_after=_UNSET, html=False, reset=False, delay=0.0,
              ok_false=None, body=None, times=1):
        """Queue a one-shot fault for the next call of `method` (an API method name, "upload" for
        the upload URL, "download" for file URLs, "link" for the WebSocket handshake)."""
        f = self._make_fault(status, retry_after, html, reset, delay, ok_false, body)
        with self.lock:
            for _ in range(times):
                self._faults[method].append(f)

    def fault_on_page(self, method, page_index, **kw):
        """Queue a one-shot fault for page `page_index` (0-based) of a paginated method."""
        f = self._make_fault(kw.pop("status", None), kw.pop("retry_after", _UNSET), **kw)
        with self.lock:
            self._page_faults[(method, page_index)].append(f)

    def always_fail(self, method, status=500, **kw):
        """Every call of `method` fails like fault(); clear with always_fail(method, None)."""
        with self.lock:
            if status is None and not kw:
                self._always.pop(method, None)
            else:
                self._always[method] = self._make_fault(status, kw.pop("retry_after", _UNSET), **kw)

    def clear_faults(self):
        with self.lock:
            self._faults.clear()
            self._page_faults.clear()
            self._always.clear()

    @staticmethod
    def _make_fault(status=None, retry_after=_UNSET, html=False, reset=False, delay=0.0, ok_false=None, body=None):
        if retry_after is _UNSET:
            retry_after = 1 if status == 429 else None
        return {"status": status, "retry_after": retry_after, "html": html, "reset": reset,
                "delay": delay, "ok_false": ok_false, "body": body}

    def _take_fault(self, method, params=None):
        with self.lock:
            if params is not None:
                q = self._page_faults.get((method, webapi.page_index(params)))
                if q:
                    return q.popleft()
            q = self._faults.get(method)
            if q:
                return q.popleft()
            return self._always.get(method)

    # --- Socket Mode ----------------------------------------------------------------------
    @property
    def connect_count(self):
        return len(self.connections)

    def open_connections(self):
        return [c for c in self.connections if c.open]

    def _issue_ws_url(self):
        with self.lock:
            self._ticket_counter += 1
            ticket = "%d-%s" % (self._ticket_counter, uuid.uuid4().hex[:8])
            self._tickets[ticket] = False
        if self.ws_url_override:
            return self.ws_url_override
        return "ws://127.0.0.1:%d/link/?ticket=%s" % (self.port, ticket)

    def _claim_ticket(self, ticket):
        with self.lock:
            if ticket not in self._tickets:
                return False
            if self._tickets[ticket] and self.single_use_tickets:
                return False
            self._tickets[ticket] = True
            return True

    def _new_conn(self, sock, rfile, ticket):
        with self.lock:
            conn = socketmode.SocketModeConn(self, len(self.connections) + 1, sock, rfile, ticket)
            self.connections.append(conn)
            return conn

    def _hello_message(self):
        return {"type": "hello", "num_connections": len(self.open_connections()),
                "connection_info": {"app_id": self.app_id},
                "debug_info": {"host": "fake-applink-1", "build_number": 1,
                               "started": time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime()),
                               "approximate_connection_time": self.approximate_connection_time}}

    def _conn(self, conn):
        if conn is not None:
            return conn
        with self.lock:
            live = self.open_connections()
        if not live:
            raise AssertionError("no open Socket Mode connection (connections so far: %r)" % self.connections)
        return live[-1]

    def _record_ack(self, conn, msg, now):
        with self.lock:
            eid = msg["envelope_id"]
            sent = next((e["time_sent"] for e in self.envelopes if e["envelope_id"] == eid), None)
            self.acks.append(Ack(eid, sent, now, conn.id))

    def _record_ws_error(self, conn, why):
        with self.lock:
            self.ws_errors.append({"conn": conn.id, "error": why, "time": time.monotonic()})

    def _build_envelope(self, event, retry_attempt=0, envelope_id=None, event_id=None):
        """An events_api envelope wrapping `event` (SLACK-FACTS 1.3), with its ids."""
        with self.lock:
            self._event_counter += 1
            envelope_id = envelope_id or str(uuid.uuid4())
            event_id = event_id or "Ev0FAKE%06d" % self._event_counter
        payload = {"token": "fake-verification", "team_id": TEAM_ID, "api_app_id": self.app_id,
                   "event": event, "type": "event_callback", "event_id": event_id,
                   "event_time": int(time.time()),
                   "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID,
                                       "user_id": self.identity["user_id"], "is_bot": True,
                                       "is_enterprise_install": False}],
                   "is_ext_shared_channel": False,
                   "event_context": "4-%s-%s-%s" % (event.get("type"), TEAM_ID, event.get("channel"))}
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": "events_api",
                    "accepts_response_payload": False, "retry_attempt": retry_attempt,
                    "retry_reason": "timeout" if retry_attempt else ""}
        return envelope_id, event_id, envelope

    def send_event(self, event, retry_attempt=0, envelope_id=None, event_id=None, conn=None):
        """Send an events_api envelope wrapping `event`; returns its envelope_id."""
        conn = self._conn(conn)
        envelope_id, event_id, envelope = self._build_envelope(event, retry_attempt, envelope_id, event_id)
        with self.lock:
            self.envelopes.append({"envelope_id": envelope_id, "event_id": event_id,
                                   "time_sent": time.monotonic(), "conn_id": conn.id, "envelope": envelope})
        conn.send_json(envelope)
        return envelope_id

    def send_burst(self, events, conn=None):
        """Send one envelope per event in ONE socket write (a real burst: every frame leaves at the
        same moment, so ack latencies measure the bot, not this process); returns the ids."""
        conn = self._conn(conn)
        built = [self._build_envelope(e) for e in events]
        data = b"".join(wsproto.encode_frame(wsproto.OP_TEXT, json.dumps(env).encode("utf-8"))
                        for _, _, env in built)
        sent = time.monotonic()
        with self.lock:
            for envelope_id, event_id, env in built:
                self.envelopes.append({"envelope_id": envelope_id, "event_id": event_id,
                                       "time_sent": sent, "conn_id": conn.id, "envelope": env})
        conn.send_bytes(data)
        return [envelope_id for envelope_id, _, _ in built]

    def mention(self, channel, user, text, thread_ts=None, send=True):
        """Post `<@BOT> text` as `user` (in thread_ts's thread if given) and send the app_mention.
        Returns (ts, envelope_id); envelope_id is None with send=False."""
        ts, event = self._mention_event(channel, user, text, thread_ts)
        eid = self.send_event(event) if send else None
        return ts, eid

    def mention_envelope(self, channel, user, text, thread_ts=None):
        """Post the mention like mention() and return its events_api envelope unsent (for a
        Socket Mode peer in another process: bench/paced_sender.py)."""
        _, event = self._mention_event(channel, user, text, thread_ts)
        return self._build_envelope(event)[2]

    def _mention_event(self, channel, user, text, thread_ts):
        me = self.identity["user_id"]
        full = "<@%s> %s" % (me, text)
        msg = {"type": "message", "user": user, "text": full, "team": TEAM_ID,
               "client_msg_id": str(uuid.uuid4()),
               "blocks": [{"type": "rich_text", "block_id": "fk" + uuid.uuid4().hex[:4],
                           "elements": [{"type": "rich_text_section",
                                         "elements": [{"type": "user", "user_id": me},
                                                      {"type": "text", "text": " " + text}]}]}]}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        with self.lock:
            stored = self._append_message(channel, msg)
        event = {"type": "app_mention", "user": user, "text": full, "ts": stored["ts"], "channel": channel,
                 "event_ts": stored["ts"], "team": TEAM_ID, "client_msg_id": msg["client_msg_id"],
                 "blocks": copy.deepcopy(msg["blocks"])}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return stored["ts"], event

    def send_envelope(self, kind, payload, envelope_id=None, conn=None):
        """Send a slash_commands or interactive envelope (SLACK-FACTS 1.3); returns its id."""
        conn = self._conn(conn)
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": kind,
                    "accepts_response_payload": kind == "slash_commands"}
        with self.lock:
            self.envelopes.append({"envelope_id": envelope_id, "event_id": None,
                                   "time_sent": time.monotonic(), "conn_id": conn.id, "envelope": envelope})
        conn.send_json(envelope)
        return envelope_id

    def response_url(self, rid):
        return "%sresponse/%s" % (self.base_url, rid)

    def shortcut(self, channel, message_ts, user="U0ALICE", callback_id="autopsy_thread",
                 trigger_id=None, envelope_id=None):
        """The message shortcut clicked on message_ts: an interactive message_action envelope.
        Returns (envelope_id, trigger_id)."""
        with self.lock:
            msg = copy.deepcopy(self._by_ts[channel][message_ts])
            ch = self.channels[channel]
        trigger_id = trigger_id or "%d.%s" % (int(time.time()), uuid.uuid4().hex[:12])
        payload = {"type": "message_action", "token": "fake-verification", "action_ts": "%.6f" % time.time(),
                   "team": {"id": TEAM_ID, "domain": "fake-workspace"},
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID, "name": user.lower()},
                   "channel": {"id": channel, "name": ch["name"]}, "is_enterprise_install": False,
                   "enterprise": None, "callback_id": callback_id, "trigger_id": trigger_id,
                   "response_url": self.response_url("shortcut-" + uuid.uuid4().hex[:8]),
                   "message_ts": message_ts, "message": msg}
        return self.send_envelope("interactive", payload, envelope_id), trigger_id

    def slash(self, channel, text, user="U0ALICE", command="/postmortem"):
        """`/postmortem text` typed in channel: a slash_commands envelope. Returns (envelope_id,
        response id: find its answers with responses_to)."""
        rid = "slash-" + uuid.uuid4().hex[:8]
        with self.lock:
            name = self.channels.get(channel, {}).get("name", channel.lower())
        payload = {"token": "fake-verification", "team_id": TEAM_ID, "team_domain": "fake-workspace",
                   "channel_id": channel, "channel_name": name, "user_id": user, "user_name": user.lower(),
                   "command": command, "text": text, "api_app_id": self.app_id, "is_enterprise_install": "false",
                   "response_url": self.response_url(rid), "trigger_id": "%d.%s" % (int(time.time()), uuid.uuid4().hex[:12])}
        return self.send_envelope("slash_commands", payload), rid

    def responses_to(self, rid):
        with self.lock:
            return [r["body"] for r in self.responses if r["id"] == rid]

    def direct_message(self, channel, user, text):
        """`text` typed by user in the DM `channel` with the bot: a message.im event."""
        msg = {"type": "message", "user": user, "text": text, "team": TEAM_ID, "client_msg_id": str(uuid.uuid4())}
        with self.lock:
            if channel not in self.channels:
                self.add_channel(channel, channel.lower(), members=[user])
            stored = self._append_message(channel, msg)
        event = {"type": "message", "channel_type": "im", "user": user, "text": text, "ts": stored["ts"],
                 "channel": channel, "event_ts": stored["ts"], "team": TEAM_ID}
        return stored["ts"], self.send_event(event)

    def send_disconnect(self, reason="refresh_requested", conn=None, drop_after=None):
        conn = self._conn(conn)
        conn.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink-1"}})
        if drop_after is not None:
            threading.Timer(drop_after, conn.drop).start()

    def send_raw(self, data, binary=False, conn=None):
        """Send `data` (str or bytes, need not be JSON or even UTF-8) as one text/binary frame."""
        self._conn(conn).send_frame(wsproto.OP_BINARY if binary else wsproto.OP_TEXT, data)

    def send_bytes(self, data, conn=None):
        """Write bytes on the socket with no framing at all (malformed frames)."""
        self._conn(conn).send_bytes(data)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, conn=None):
        self._conn(conn).send_frame(opcode, payload, fin=fin, rsv=rsv)

    def send_ping(self, payload=b"fake-ping", conn=None):
        self._conn(conn).send_ping(payload)

    def send_close(self, code=1000, reason="", conn=None):
        self._conn(conn).send_close(code, reason)

    def drop(self, conn=None):
        self._conn(conn).drop()

    def ack_for(self, envelope_id):
        with self.lock:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

    # --- records --------------------------------------------------------------------------
    def calls(self, method):
        """Decoded params of every request to /api/<method> (faulted attempts included)."""
        with self.lock:
            return [r["params"] for r in self.requests if r.get("api_method") == method]

    def posts(self, channel=None, thread_ts=None):
        with self.lock:
            return [p for p in self._posts if (channel is None or p["channel"] == channel)
                    and (thread_ts is None or p["thread_ts"] == thread_ts)]

    def uploaded_files(self, channel=None, thread_ts=None):
        """One dict per completed file (bytes, filename, length, title, channel, thread_ts, initial_comment)."""
        with self.lock:
            out = []
            for u in self.uploads:
                if (channel is None or u["channel"] == channel) and (thread_ts is None or u["thread_ts"] == thread_ts):
                    for f in u["files"]:
                        out.append(dict(f, channel=u["channel"], thread_ts=u["thread_ts"],
                                        initial_comment=u["initial_comment"]))
            return out

    def thread_messages(self, channel, ts):
        with self.lock:
            return copy.deepcopy(self._thread(channel, ts) or [])

    def wait_for(self, pred, timeout=10, interval=0.02, what=None):
        """Poll pred() until it returns something truthy (returned); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1f s waiting for %s\n%s"
                                     % (timeout, what or getattr(pred, "__name__", "condition"), self.summary()))
            time.sleep(interval)

    def summary(self):
        """A short text of what happened, for failure messages."""
        with self.lock:
            counts = collections.Counter(r.get("api_method") or r["path"].split("?")[0] for r in self.requests)
            return ("fake slack: requests %s; connections %s; acks %d; posts %r; uploads %r; ws errors %r"
                    % (dict(counts), self.connections, len(self.acks),
                       [p["text"][:80] for p in self._posts][-5:],
                       [[f["filename"] for f in u["files"]] for u in self.uploads], self.ws_errors[-3:]))

    def state(self):
        """What GET /_control/state answers (JSON-safe, no file bytes)."""
        with self.lock:
            counts = collections.Counter(r["api_method"] for r in self.requests if r.get("api_method"))
            return {"connections": [{"id": c.id, "open": c.open, "opened_at": c.opened_at,
                                     "closed_at": c.closed_at} for c in self.connections],
                    "uploads": [dict(u, files=[{k: v for k, v in f.items() if k not in ("bytes", "head")}
                                               for f in u["files"]])
                                for u in self.uploads],
                    "posts": [{k: v for k, v in p.items() if k != "params"} for p in self._posts],
                    "reactions": list(self.reactions), "calls": dict(counts),
                    "acks": [a._asdict() for a in self.acks], "connect_count": self.connect_count}

    # --- internals (lock held by callers) -------------------------------------------------
    def _next_ts(self):
        self._last_ts += 100
        return ts_str(self._last_ts)

    def _append_message(self, channel, msg, count_reply=True):
        if channel not in self.channels:
            self.add_channel(channel, channel.lower())
        msg.setdefault("type", "message")
        if not msg.get("ts"):
            msg["ts"] = self._next_ts()
        else:
            msg["ts"] = str(msg["ts"])
            self._last_ts = max(self._last_ts, ts_key(msg["ts"]))
        msgs = self.messages[channel]
        bisect.insort(msgs, msg, key=lambda m: ts_key(m["ts"]))
        self._by_ts[channel][msg["ts"]] = msg
        root = msg.get("thread_ts")
        if count_reply and root and root != msg["ts"]:
            parent = self._by_ts[channel].get(root)
            if parent is not None:
                parent.setdefault("thread_ts", root)
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = msg["ts"]
                msg.setdefault("parent_user_id", parent.get("user"))
        return msg

    def _thread(self, channel, ts):
        msg = self._by_ts.get(channel, {}).get(ts)
        if msg is None:
            return None
        root = msg.get("thread_ts") or ts
        out = [m for m in self.messages[channel] if m["ts"] == root or m.get("thread_ts") == root]
        out.sort(key=lambda m: (m["ts"] != root, ts_key(m["ts"])))
        return out

    def _channel_object(self, ch):
        return {"id": ch["id"], "name": ch["name"], "is_channel": not ch["is_private"], "is_group": False,
                "is_im": False, "is_private": ch["is_private"], "created": ch["created"], "is_archived": False,
                "is_member": self.identity["user_id"] in ch["members"], "num_members": len(ch["members"])}

    def _file_chunks(self, entry, size=BLOCK):
        if entry["data"] is not None:
            data = entry["data"]
            for off in range(0, len(data), size):
                yield data[off:off + size]
            return
        block, total = entry["block"], entry["size"]
        for off in range(0, total, BLOCK):
            yield block[:min(BLOCK, total - off)]

    def _record_request(self, handler, body, params, api_method=None):
        rec = {"method": handler.command, "path": handler.path,
               "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body,
               "params": params, "time": time.monotonic(), "port": handler.server.server_address[1],
               "server": handler.server.role}
        if api_method:
            rec["api_method"] = api_method
        with self.lock:
            self.requests.append(rec)
        return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake Slack on loopback (Web API, files, Socket Mode).")
    ap.add_argument("--fixture", help="a fixture directory (thread.json, channel.json, users.json, files/)")
    ap.add_argument("--port", type=int, default=0, help="port of the main server (default: any free one)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call and download")
    ap.add_argument("--max-page", type=int, default=1000, help="largest page of conversations.replies")
    ap.add_argument("--bot-user-id", help="the bot's user id (default U0BOT), e.g. U0PMBOT for the incident fixture")
    ap.add_argument("--bot-id", help="the bot's bot id (default B0BOT), e.g. B0PMBOT")
    args = ap.parse_args(argv)
    fs = FakeSlack(latency=args.latency)
    fs.max_page = args.max_page
    fs.set_identity(user_id=args.bot_user_id, bot_id=args.bot_id)
    fs.start(port=args.port)
    channel = thread_ts = None
    if args.fixture:
        channel, thread_ts = fs.load_fixture(args.fixture)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(json.dumps({"api_url": fs.api_url, "base_url": fs.base_url, "other_url": fs.other_url,
                      "channel": channel, "thread_ts": thread_ts}), flush=True)
    while not done.wait(0.5):
        pass
    fs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
