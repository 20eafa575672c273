"""Self-tests of the fake Slack (tests/fakeslack) and of the harness, with urllib, http.client and
the tiny WebSocket client: if these fail, every other e2e result is suspect.
Run: python3 -m unittest discover -s tests/e2e -p 'test_fakeslack.py' (from the repo root)."""
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import FakeSlack, WebhookSink  # noqa: E402
from upload_sink import UploadSink  # noqa: E402
import wsclient  # noqa: E402
import wsproto  # noqa: E402

BOT = "xoxb-test-bot"
APP = "xapp-test-app"


def http_request(url, method="GET", body=None, headers=None, timeout=10):
    """(status, headers with lower-case names, body) without following redirects."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def api(fs, method, params=None, token=BOT, as_json=False, query=""):
    """Call the fake's Web API; returns (status, headers, decoded JSON or raw body)."""
    headers = {}
    if token:
        headers["Authorization"] = "Bearer " + token
    if as_json:
        body = json.dumps(params or {}).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    else:
        body = urllib.parse.urlencode(params or {}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, h, raw = http_request(fs.api_url + method + query, "POST", body, headers)
    try:
        return status, h, json.loads(raw)
    except ValueError:
        return status, h, raw


class FakeTestCase(unittest.TestCase):
    def setUp(self):
        self.fs = FakeSlack().start()
        self.addCleanup(self.fs.stop)
        self.fs.add_channel("C0INC", "incidents")
        self.fs.add_user("U0ALICE", "alice", "Alice Moreau")

    def connect(self):
        _, _, body = api(self.fs, "apps.connections.open", token=APP)
        ws = wsclient.WSClient(body["url"])
        self.addCleanup(ws.close_socket)
        return ws


class TestWebApi(FakeTestCase):
    def test_auth_rules(self):
        self.assertEqual(api(self.fs, "auth.test", token=None)[2]["error"], "not_authed")
        self.assertEqual(api(self.fs, "auth.test", token="xoxb-wrong")[2]["error"], "invalid_auth")
        self.assertEqual(api(self.fs, "auth.test", token=APP)[2]["error"], "invalid_auth")
        ok = api(self.fs, "auth.test")[2]
        self.assertEqual((ok["ok"], ok["user_id"], ok["bot_id"], ok["team_id"]), (True, "U0BOT", "B0BOT", "T0TEAM"))
        self.assertEqual(api(self.fs, "apps.connections.open", token=BOT)[2]["error"], "invalid_auth")
        url = api(self.fs, "apps.connections.open", token=APP)[2]["url"]
        self.assertTrue(url.startswith("ws://127.0.0.1:%d/link/?ticket=" % self.fs.port), url)
        self.assertEqual(api(self.fs, "no.such.method")[2], {"ok": False, "error": "unknown_method"})
        self.assertEqual(self.fs.token_violations, [])
        api(self.fs, "auth.test", query="?token=" + BOT)
        api(self.fs, "auth.test", {"token": BOT})
        self.assertEqual([v["where"] for v in self.fs.token_violations], ["query", "body"])

    def test_json_and_form_bodies_are_decoded_and_posts_land_in_the_thread(self):
        parent = self.fs.add_thread("C0INC", 2, users=["U0ALICE"])
        _, _, r1 = api(self.fs, "chat.postMessage", {"channel": "C0INC", "thread_ts": parent, "text": "form"})
        _, _, r2 = api(self.fs, "chat.postMessage", {"channel": "C0INC", "thread_ts": parent, "text": "json é"},
                       as_json=True)
        self.assertTrue(r1["ok"] and r2["ok"])
        self.assertEqual(r2["message"]["user"], "U0BOT")
        self.assertEqual([p["text"] for p in self.fs.posts("C0INC", parent)], ["form", "json é"])
        self.assertEqual(self.fs.calls("chat.postMessage")[1]["text"], "json é")
        texts = [m["text"] for m in api(self.fs, "conversations.replies", {"channel": "C0INC", "ts": parent})[2]["messages"]]
        self.assertEqual(texts[-2:], ["form", "json é"])
        self.assertEqual(len(texts), 5)
        self.assertEqual(api(self.fs, "chat.postMessage", {"channel": "C0NOPE", "text": "x"})[2]["error"],
                         "channel_not_found")
        self.fs.add_channel("C0OUT", "outside", member=False)
        self.assertEqual(api(self.fs, "chat.postMessage", {"channel": "C0OUT", "text": "x"})[2]["error"],
                         "not_in_channel")

    def test_users_reactions_update_permalink(self):
        self.assertEqual(api(self.fs, "users.info", {"user": "U0ALICE"})[2]["user"]["profile"]["display_name"], "alice")
        self.assertEqual(api(self.fs, "users.info", {"user": "U0NOBODY"})[2]["error"], "user_not_found")
        parent = self.fs.add_thread("C0INC", 1)
        args = {"channel": "C0INC", "timestamp": parent, "name": "eyes"}
        self.assertTrue(api(self.fs, "reactions.add", args)[2]["ok"])
        self.assertEqual(api(self.fs, "reactions.add", args)[2]["error"], "already_reacted")
        self.assertTrue(api(self.fs, "reactions.remove", args)[2]["ok"])
        self.assertEqual(api(self.fs, "reactions.remove", args)[2]["error"], "no_reaction")
        self.assertEqual([(r["action"], r["name"]) for r in self.fs.reactions], [("add", "eyes"), ("remove", "eyes")])
        ts = api(self.fs, "chat.postMessage", {"channel": "C0INC", "thread_ts": parent, "text": "working"})[2]["ts"]
        self.assertEqual(api(self.fs, "chat.update", {"channel": "C0INC", "ts": ts, "text": "done"})[2]["text"], "done")
        self.assertEqual(api(self.fs, "chat.update", {"channel": "C0INC", "ts": parent, "text": "x"})[2]["error"],
                         "cant_update_message")
        link = api(self.fs, "chat.getPermalink", {"channel": "C0INC", "message_ts": ts})[2]["permalink"]
        self.assertIn("/archives/C0INC/p" + ts.replace(".", ""), link)


class TestPagination(FakeTestCase):
    def read_all(self, parent, limit):
        seen, pages, cursor = [], [], None
        while True:
            params = {"channel": "C0INC", "ts": parent, "limit": limit}
            if cursor:
                params["cursor"] = cursor
            status, _, body = api(self.fs, "conversations.replies", params)
            self.assertEqual(status, 200)
            self.assertTrue(body["ok"], body)
            pages.append(body["messages"])
            seen.extend(m["ts"] for m in body["messages"])
            cursor = body["response_metadata"]["next_cursor"]
            self.assertEqual(body["has_more"], bool(cursor))
            if not cursor:
                return seen, pages
            self.assertTrue(cursor.endswith("="), cursor)
            self.assertLess(len(pages), 1000, "pagination does not end")

    def test_2500_messages_every_message_once(self):
        parent = self.fs.add_thread("C0INC", 2500, users=["U0ALICE", "U0BOB"])
        seen, pages = self.read_all(parent, 200)
        self.assertEqual(len(pages), 13)
        self.assertTrue(all(p[0]["ts"] == parent for p in pages), "the parent heads every page")
        replies = [ts for ts in seen if ts != parent]
        self.assertEqual(len(replies), 2500)
        self.assertEqual(len(set(replies)), 2500)
        self.assertEqual(replies, sorted(replies, key=lambda t: tuple(map(int, t.split(".")))))
        self.fs.repeat_parent = False
        self.fs.max_page = 15
        seen, pages = self.read_all(parent, 1000)
        self.assertEqual(len(seen), 2501)
        self.assertEqual(len(set(seen)), 2501)
        self.assertTrue(all(len(p) <= 15 for p in pages))
        self.assertEqual(pages[1][0]["text"], "reply 15")

    def test_bad_cursor_and_unknown_thread(self):
        parent = self.fs.add_thread("C0INC", 3)
        self.assertEqual(api(self.fs, "conversations.replies", {"channel": "C0INC", "ts": parent,
                                                                "cursor": "bm9wZQ=="})[2]["error"], "invalid_cursor")
        self.assertEqual(api(self.fs, "conversations.replies", {"channel": "C0INC", "ts": "1.000001"})[2]["error"],
                         "thread_not_found")


class TestFaults(FakeTestCase):
    def test_429_with_retry_after_then_success(self):
        self.fs.fault("auth.test", status=429, retry_after=2)
        status, headers, body = api(self.fs, "auth.test")
        self.assertEqual((status, headers.get("retry-after"), body), (429, "2", {"ok": False, "error": "ratelimited"}))
        self.assertTrue(api(self.fs, "auth.test")[2]["ok"])
        self.assertEqual(len(self.fs.calls("auth.test")), 2)

    def test_fault_kinds(self):
        self.fs.fault("auth.test", status=503)
        self.fs.fault("auth.test", html=True)
        self.fs.fault("auth.test", ok_false="ratelimited")
        self.fs.fault("auth.test", reset=True)
        self.fs.fault("auth.test", delay=0.3)
        self.assertEqual(api(self.fs, "auth.test")[0], 503)
        status, headers, raw = api(self.fs, "auth.test")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertEqual(api(self.fs, "auth.test")[2], {"ok": False, "error": "ratelimited"})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            api(self.fs, "auth.test")
        start = time.monotonic()
        self.assertTrue(api(self.fs, "auth.test")[2]["ok"])
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        self.fs.always_fail("users.info", status=500)
        self.assertEqual([api(self.fs, "users.info", {"user": "U0ALICE"})[0] for _ in range(3)], [500] * 3)
        self.fs.always_fail("users.info", None)
        self.assertEqual(api(self.fs, "users.info", {"user": "U0ALICE"})[0], 200)

    def test_fault_on_page(self):
        parent = self.fs.add_thread("C0INC", 30)
        self.fs.max_page = 10
        self.fs.fault_on_page("conversations.replies", 1, status=500)
        first = api(self.fs, "conversations.replies", {"channel": "C0INC", "ts": parent})[2]
        args = {"channel": "C0INC", "ts": parent, "cursor": first["response_metadata"]["next_cursor"]}
        self.assertEqual(api(self.fs, "conversations.replies", args)[0], 500)
        self.assertEqual(api(self.fs, "conversations.replies", args)[0], 200)


class TestFiles(FakeTestCase):
    def get(self, url, auth=True):
        return http_request(url, headers={"Authorization": "Bearer " + BOT} if auth else {})

    def test_login_page_without_bearer_and_per_mode(self):
        f = self.fs.add_file("F0LOG", "app.log", b"line 1\n", "text/plain")
        status, headers, body = self.get(f["url_private_download"], auth=False)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn(b"Sign in", body)
        self.assertEqual(self.get(f["url_private"])[2], b"line 1\n")
        self.fs.set_file_mode("F0LOG", "login_page")
        self.assertIn(b"Sign in", self.get(f["url_private"])[2])
        self.fs.set_file_mode("F0LOG", "status", status=500)
        self.assertEqual(self.get(f["url_private"])[0], 500)

    def test_redirects_same_and_other_host(self):
        same = self.fs.add_file("F0SAME", "a.png", b"\x89PNGsame", "image/png", mode="redirect_same")
        other = self.fs.add_file("F0OTHER", "b.png", b"\x89PNGother", "image/png", mode="redirect_other")
        status, headers, _ = self.get(same["url_private"])
        self.assertEqual(status, 302)
        self.assertTrue(headers["location"].startswith(self.fs.base_url), headers["location"])
        self.assertIn(b"Sign in", self.get(headers["location"], auth=False)[2])
        self.assertEqual(self.get(headers["location"])[2], b"\x89PNGsame")
        status, headers, _ = self.get(other["url_private"])
        self.assertEqual(status, 302)
        self.assertTrue(headers["location"].startswith(self.fs.other_url), headers["location"])
        self.assertEqual(self.get(headers["location"], auth=False)[2], b"\x89PNGother")
        self.assertFalse(self.fs.other_auth_seen)
        self.get(headers["location"], auth=True)
        self.assertTrue(self.fs.other_auth_seen)

    def test_hostile_names_are_served(self):
        names = ["../../etc/passwd", "a/b\\c.txt", "ctl\x01\x1b[31m\n.txt", "ü" * 300 + ".pdf", "?#%00 .png"]
        for i, name in enumerate(names):
            f = self.fs.add_file("F0H%d" % i, name, name.encode("utf-8"))
            self.assertNotIn("/../", f["url_private"])
            self.assertEqual(self.get(f["url_private_download"])[2], name.encode("utf-8"), name)

    def test_large_file_streams(self):
        size = 50 * 1024 * 1024 + 123
        f = self.fs.add_file("F0BIG", "big.bin", size)
        self.assertIsNone(self.fs.files["F0BIG"]["data"])
        u = urllib.parse.urlsplit(f["url_private_download"])
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        self.addCleanup(conn.close)
        conn.request("GET", u.path, headers={"Authorization": "Bearer " + BOT})
        r = conn.getresponse()
        self.assertEqual(int(r.getheader("Content-Length")), size)
        h, n = hashlib.sha256(), 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        self.assertEqual(n, size)
        self.assertEqual(h.hexdigest(), self.fs.file_sha256("F0BIG"))

    def test_upload_flow(self):
        parent = self.fs.add_thread("C0INC", 1)
        data = b"# Postmortem\n\xe2\x9c\x85 done\n"
        _, _, r = api(self.fs, "files.getUploadURLExternal", {"filename": "postmortem.md", "length": len(data)})
        self.assertTrue(r["ok"], r)
        self.assertTrue(r["upload_url"].startswith(self.fs.base_url))
        self.assertEqual(http_request(r["upload_url"], "POST", data)[0], 200)
        zip_bytes = b"PK\x03\x04" + bytes(range(256))
        _, _, z = api(self.fs, "files.getUploadURLExternal", {"filename": "bundle.zip", "length": len(zip_bytes)})
        boundary = "XyZ123"
        multipart = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bundle.zip\"\r\n"
                      "Content-Type: application/zip\r\n\r\n" % boundary).encode() + zip_bytes
                     + ("\r\n--%s--\r\n" % boundary).encode())
        self.assertEqual(http_request(z["upload_url"], "POST", multipart,
                                      {"Content-Type": "multipart/form-data; boundary=" + boundary})[0], 200)
        files = json.dumps([{"id": r["file_id"], "title": "Postmortem"}, {"id": z["file_id"]}])
        _, _, done = api(self.fs, "files.completeUploadExternal",
                         {"files": files, "channel_id": "C0INC", "thread_ts": parent, "initial_comment": "here"})
        self.assertTrue(done["ok"], done)
        self.assertEqual(len(self.fs.uploads), 1)
        up = self.fs.uploads[0]
        self.assertEqual((up["channel"], up["thread_ts"], up["initial_comment"]), ("C0INC", parent, "here"))
        self.assertEqual([(f["filename"], f["bytes"]) for f in up["files"]],
                         [("postmortem.md", data), ("bundle.zip", zip_bytes)])
        thread = self.fs.thread_messages("C0INC", parent)
        self.assertEqual([f["name"] for f in thread[-1]["files"]], ["postmortem.md", "bundle.zip"])
        self.assertEqual(thread[-1]["user"], "U0BOT")
        again = api(self.fs, "files.completeUploadExternal", {"files": files, "channel_id": "C0INC"})[2]
        self.assertEqual(again["error"], "file_not_found")

    def test_upload_sink_counts_bodies_without_keeping_them(self):
        """With upload_sink set (the benchmarks), uploads are received and measured, not kept: the
        completion checks the length and lists the files; two uploads at once each get the right
        first bytes; a short body is still refused."""
        self.fs.upload_sink = UploadSink(buffer_bytes=1 << 20, buffers=1)
        parent = self.fs.add_thread("C0INC", 1)
        zip_bytes = b"PK\x03\x04" + os.urandom(3 << 20)  # three passes through the 1 MiB buffer
        md = b"# Postmortem\n" * 50000
        _, _, z = api(self.fs, "files.getUploadURLExternal", {"filename": "bundle.zip", "length": len(zip_bytes)})
        _, _, m = api(self.fs, "files.getUploadURLExternal", {"filename": "p.md", "length": len(md)})
        results = []
        posts = [threading.Thread(target=lambda u=u, b=b: results.append(http_request(u, "POST", b)[0]))
                 for u, b in ((z["upload_url"], zip_bytes), (m["upload_url"], md))]
        for t in posts:
            t.start()
        for t in posts:
            t.join()
        self.assertEqual(results, [200, 200])
        files = json.dumps([{"id": m["file_id"]}, {"id": z["file_id"]}])
        _, _, done = api(self.fs, "files.completeUploadExternal", {"files": files, "channel_id": "C0INC",
                                                                   "thread_ts": parent})
        self.assertTrue(done["ok"], done)
        up = self.fs.uploads[0]
        self.assertEqual([(f["filename"], f["bytes"], f["head"]) for f in up["files"]],
                         [("p.md", None, md[:64]), ("bundle.zip", None, zip_bytes[:64])])
        self.assertEqual([self.fs.files[f["id"]]["size"] for f in up["files"]], [len(md), len(zip_bytes)])
        _, _, r = api(self.fs, "files.getUploadURLExternal", {"filename": "x.md", "length": 10})
        http_request(r["upload_url"], "POST", b"short")
        _, _, short = api(self.fs, "files.completeUploadExternal", {"files": json.dumps([{"id": r["file_id"]}])},
                          as_json=True)
        self.assertEqual(short["error"], "file_upload_size_mismatch")

    def test_upload_with_wrong_length_is_refused(self):
        _, _, r = api(self.fs, "files.getUploadURLExternal", {"filename": "x.md", "length": 10})
        http_request(r["upload_url"], "POST", b"short")
        _, _, done = api(self.fs, "files.completeUploadExternal", {"files": json.dumps([{"id": r["file_id"]}])},
                         as_json=True)
        self.assertFalse(done["ok"])
        self.assertEqual(self.fs.uploads, [])
        self.assertEqual(api(self.fs, "files.getUploadURLExternal", {"filename": "x.md"})[2]["error"],
                         "invalid_arguments")


class TestSocketMode(FakeTestCase):
    def test_handshake_hello_event_and_ack(self):
        ws = self.connect()
        hello = ws.recv_json()
        self.assertEqual(hello["type"], "hello")
        self.assertEqual(hello["num_connections"], 1)
        self.assertIn("approximate_connection_time", hello["debug_info"])
        self.assertEqual(self.fs.connect_count, 1)
        eid = self.fs.send_event({"type": "app_mention", "channel": "C0INC", "ts": "1.000001"})
        env = ws.recv_json()
        self.assertEqual((env["type"], env["envelope_id"], env["retry_attempt"], env["payload"]["type"]),
                         ("events_api", eid, 0, "event_callback"))
        self.assertIsNone(self.fs.ack_for(eid))
        ws.send_json({"envelope_id": eid})
        ack = self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5)
        self.assertEqual(ack.conn_id, 1)
        self.assertGreaterEqual(ack.time_acked, ack.time_sent)

    def test_mention_posts_message_and_event(self):
        parent = self.fs.add_thread("C0INC", 2)
        ws = self.connect()
        ws.recv_json()
        ts, eid = self.fs.mention("C0INC", "U0ALICE", "autopsy this", thread_ts=parent)
        env = ws.recv_json()
        ev = env["payload"]["event"]
        self.assertEqual((ev["type"], ev["ts"], ev["thread_ts"], ev["text"]),
                         ("app_mention", ts, parent, "<@U0BOT> autopsy this"))
        thread = self.fs.thread_messages("C0INC", parent)
        self.assertEqual(thread[-1]["ts"], ts)
        self.assertGreater(float(ts), float(thread[-2]["ts"]))

    def test_frames_ping_fragments_long_and_close(self):
        ws = self.connect()
        ws.recv_json()
        ws.send_frame(wsproto.OP_PING, b"hi")
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.payload), (wsproto.OP_PONG, b"hi"))
        eid = self.fs.send_event({"type": "app_mention"})
        ws.recv_json()
        text = json.dumps({"envelope_id": eid, "pad": "x" * 70000})
        ws.send_frame(wsproto.OP_TEXT, text[:10], fin=False)
        ws.send_frame(wsproto.OP_PING, b"mid")
        ws.send_frame(wsproto.OP_CONT, text[10:], fin=True)
        self.fs.wait_for(lambda: self.fs.ack_for(eid), timeout=5)
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.payload), (wsproto.OP_PONG, b"mid"))
        self.fs.send_ping(b"srv")
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.payload), (wsproto.OP_PING, b"srv"))
        ws.send_frame(wsproto.OP_PONG, f.payload)
        self.fs.wait_for(lambda: self.fs.connections[0].pongs, timeout=5)
        self.assertEqual(len(self.fs.connections[0].pings), 2)
        self.assertEqual(ws.close(1000), 1000)
        self.fs.wait_for(lambda: not self.fs.connections[0].open, timeout=5)
        self.assertEqual(self.fs.connections[0].close_code, 1000)

    def test_unmasked_frame_is_a_protocol_error(self):
        ws = self.connect()
        ws.recv_json()
        ws.send_frame(wsproto.OP_TEXT, "{}", mask=False)
        op, payload = ws.recv_message()
        self.assertEqual((op, wsproto.parse_close_payload(payload)[0]), (wsproto.OP_CLOSE, 1002))
        self.assertEqual(self.fs.ws_errors[0]["error"], "client frame not masked")

    def test_disconnect_drop_ignore_close_and_ticket_reuse(self):
        _, _, body = api(self.fs, "apps.connections.open", token=APP)
        ws = wsclient.WSClient(body["url"])
        self.addCleanup(ws.close_socket)
        ws.recv_json()
        with self.assertRaises(ConnectionError):
            wsclient.WSClient(body["url"])
        self.fs.send_disconnect("refresh_requested")
        self.assertEqual(ws.recv_json(), {"type": "disconnect", "reason": "refresh_requested",
                                          "debug_info": {"host": "fake-applink-1"}})
        self.fs.drop()
        with self.assertRaises(EOFError):
            ws.recv_frame()
        self.assertFalse(self.fs.connections[0].open)
        self.fs.ignore_close = True
        ws2 = self.connect()
        ws2.recv_json()
        with self.assertRaises(OSError):  # socket.timeout: no close frame comes back
            ws2.close(1000, timeout=0.5)
        self.fs.wait_for(lambda: self.fs.connections[1].close_code == 1000, timeout=5)

    def test_send_raw_reaches_the_client(self):
        ws = self.connect()
        ws.recv_json()
        self.fs.send_raw(b"\xff\xfe not json")
        self.assertEqual(ws.recv_message(), (wsproto.OP_TEXT, b"\xff\xfe not json"))


class TestFixtureControlAndCli(unittest.TestCase):
    def test_fixture_urls_point_here_and_serve_the_bytes(self):
        with FakeSlack() as fs:
            channel, parent = fs.load_fixture(harness.INCIDENT_FIXTURE)
            self.assertEqual(channel, "C0INCIDENT")
            thread = api(fs, "conversations.replies", {"channel": channel, "ts": parent})[2]["messages"]
            with open(os.path.join(harness.INCIDENT_FIXTURE, "thread.json")) as f:
                self.assertEqual(len(thread), len(json.load(f)["messages"]))
            files = [f for m in thread for f in m.get("files", []) if f.get("url_private_download")]
            self.assertTrue(files)
            for f in files:
                self.assertTrue(f["url_private_download"].startswith(fs.base_url))
                got = http_request(f["url_private_download"], headers={"Authorization": "Bearer " + BOT})[2]
                with open(os.path.join(harness.INCIDENT_FIXTURE, "files", f["id"]), "rb") as fh:
                    self.assertEqual(got, fh.read(), f["id"])

    def test_cli_prints_urls_answers_control_and_stops_on_sigterm(self):
        proc = subprocess.Popen([sys.executable, os.path.join(harness.FAKESLACK_DIR, "fakeslack.py"),
                                 "--fixture", harness.INCIDENT_FIXTURE], stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        info = json.loads(proc.stdout.readline())
        self.assertEqual(info["channel"], "C0INCIDENT")
        self.assertTrue(info["api_url"].endswith("/api/"))
        status, _, raw = http_request(info["base_url"] + "_control/state")
        self.assertEqual((status, json.loads(raw)["connect_count"]), (200, 0))
        status, _, raw = http_request(info["base_url"] + "_control/mention", "POST",
                                      json.dumps({"channel": "C0INCIDENT", "user": "U01ALICE", "text": "hi"}))
        self.assertEqual(status, 400)
        self.assertIn("no open Socket Mode connection", json.loads(raw)["error"])
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=10), 0)


class TestWebhookSink(unittest.TestCase):
    def test_scripted_answers_and_records(self):
        with WebhookSink() as sink:
            sink.script("/hook", [500, 200])
            codes = []
            for _ in range(3):
                codes.append(http_request(sink.url + "hook", "POST", b'{"a":1}',
                                          {"Content-Type": "application/json", "X-Key": "k"})[0])
            self.assertEqual(codes, [500, 200, 200])
            self.assertEqual(len(sink.wait_for(3, "/hook")), 3)
            self.assertEqual(sink.requests[0]["headers"]["x-key"], "k")
            self.assertEqual(sink.json_bodies("/hook"), [{"a": 1}] * 3)


class TestHarness(harness.BotTestCase):
    """The harness against fakebot.py, a stand-in for the binary."""

    def make_bot(self, config_overrides=None, env=None, extra_args=None):
        bot = super().make_bot(config_overrides, env, extra_args)
        bot.binary = os.path.join(harness.FAKESLACK_DIR, "fakebot.py")
        return bot

    def test_to_lua_round_trips_through_lua(self):
        bot = self.make_bot({"http": {"timeout": 5}, "status": {"channels": ["C0S"], "note": 'a "q"\n\\ é'},
                             "report": {"upload": False}, "listen": None, "x": 1.5})
        probe = ('local c = dofile(arg[1]); io.write(c.scripts_dir, "|", c.data_dir, "|", c.timezone, "|", '
                 'c.http.timeout, "|", c.status.channels[1], "|", c.status.note, "|", tostring(c.report.upload), '
                 '"|", tostring(c.listen), "|", c.x)')
        probe_path = os.path.join(bot.tmp, "probe.lua")
        with open(probe_path, "w") as f:
            f.write(probe)
        out = subprocess.run(["lua5.4", probe_path, bot.config_path], capture_output=True, text=True)
        self.assertEqual(out.stdout.split("|"), [os.path.join(harness.REPO, "scripts"), bot.data_dir, "UTC", "5",
                                                 "C0S", 'a "q"\n\\ é', "false", "nil", "1.5"], out.stderr)

    def test_start_events_signals_stop(self):
        bot = self.start_bot(extra_args=["--flag"])
        first = bot.wait_log(r'msg="starting"')
        self.assertIn(bot.config_path, first.line)
        self.assertIn("--flag", first.line)
        eid = self.fs.mention("C0INC", "U0ALICE", "autopsy this")[1]
        bot.wait_log(r'msg="event acked".*' + eid, after=first.index)
        mark = bot.mark()
        bot.send_signal(signal.SIGHUP)
        bot.wait_log(r'msg="reload requested"', after=mark)
        self.assertEqual(bot.stop(), 0)
        self.assertFalse(bot.running())
        with open(bot.log_path) as f:
            self.assertIn("socket mode connected", f.read())

    def test_wait_log_fails_fast_when_the_bot_exits(self):
        bot = self.make_bot(env={"SLACK_API_URL": "http://127.0.0.1:1/api/"})
        start = time.monotonic()
        with self.assertRaises(AssertionError) as cm:
            bot.start(timeout=15)
        self.assertLess(time.monotonic() - start, 10)
        self.assertIn("exited", str(cm.exception))

    def test_redaction_check_catches_a_leaked_token(self):
        bot = self.start_bot(env={"FAKEBOT_LEAK": "1"})
        bot.stop()
        self.assertTrue(harness.redaction_problems(bot.log_lines))
        self.assertFalse(harness.redaction_problems(['msg="x" token=xoxb-*** app=xapp-***']))
        bot.log_lines.clear()  # the leak was deliberate; keep the after-test check for real leaks


if __name__ == "__main__":
    unittest.main()
