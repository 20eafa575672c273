"""The fake Slack's HTTP front: the server class and the request router.

Owns how a request becomes an answer: /api/<method> (decode, record, faults, auth, then
webapi.call), /upload/<id>, file downloads (/files-pri/, /files-origin/, and /files-cdn/ on the
"other host"), the WebSocket upgrade on /link/ (then socketmode.py), /response/<id> (response_url answers) and /_control/. Used by
fakeslack.py, whose FakeSlack holds the state it reads and records into.
"""
import http.server
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.parse

import webapi
import wsproto
from strict_http import StrictRequests

TEAM_ID = "T0TEAM"
BLOCK = 64 * 1024
LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Slack</title></head><body>"
              b"<h1>Sign in to Fake Team</h1><form action=\"/signin\"></form></body></html>")
TOKEN_SHAPE = re.compile(r"(xox[a-z]|xapp)-[A-Za-z0-9]")

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fs, role, port):
        self.fs = fs
        self.role = role
        self.strict_violations = fs.strict_violations
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request, client_address):
        # Peers that hang up (the bot being killed, injected resets) are normal here.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(StrictRequests, http.server.BaseHTTPRequestHandler):
    """Routes one HTTP request: /api/<method>, /upload/<id>, /files-pri/…, /files-origin/…,
    /link/ (WebSocket), /_control/…; on the other server only /files-cdn/…"""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small answers must not wait for the client's delayed ACK
    server_version = "FakeSlack/1.0"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKESLACK_DEBUG"):
            sys.stderr.write("fakeslack: " + (fmt % args) + "\n")

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_PUT(self):
        self._route()

    def do_HEAD(self):
        self._route()

    @property
    def fs(self):
        return self.server.fs

    # --- plumbing -------------------------------------------------------------------------
    def _send(self, status, body=b"", content_type="application/json; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj, status=200, headers=None):
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reset(self):
        """Close the TCP connection with no answer (an RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _fault_answered(self, name, params=None, latency=0.0):
        """Take the next fault queued for name, wait the latency plus its delay, then answer as it
        says; returns True when the request is finished."""
        fault = self.fs._take_fault(name, params)
        delay = latency + (fault["delay"] if fault else 0)
        if delay:
            time.sleep(delay)
        return self._apply_fault(fault)

    def _apply_fault(self, fault):
        """Answer as the fault says; returns True when the request is finished."""
        if fault is None:
            return False
        if fault["reset"]:
            self._reset()
            return True
        if fault["status"]:
            headers = {}
            if fault["retry_after"] is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            if fault["body"] is not None:
                body = fault["body"] if isinstance(fault["body"], bytes) else str(fault["body"]).encode()
            elif fault["status"] == 429:
                body = b'{"ok":false,"error":"ratelimited"}'
            elif fault["html"]:
                body = b"<html><body>upstream error</body></html>"
            else:
                body = json.dumps({"ok": False, "error": "fatal_error" if fault["status"] < 503 else
                                   "service_unavailable"}).encode()
            ctype = "text/html; charset=utf-8" if fault["html"] else "application/json; charset=utf-8"
            self._send(fault["status"], body, ctype, headers)
            return True
        if fault["html"]:
            self._send(200, fault["body"] or b"<!DOCTYPE html><html><body>Slack is down</body></html>",
                       "text/html; charset=utf-8")
            return True
        if fault["ok_false"]:
            self._send_json({"ok": False, "error": fault["ok_false"]})
            return True
        return False

    def _route(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if self.server.role == "other":
            return self._other_host(path)
        if path.startswith("/link") and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket(url)
        sink = self.fs.upload_sink
        if (sink is not None and path.startswith("/upload/") and self.headers.get("Content-Length")
                and self.headers.get("Transfer-Encoding", "").lower() != "chunked"):
            return self._upload(path[len("/upload/"):], b"", received=sink.receive(
                self.rfile, int(self.headers["Content-Length"])))
        body = self._read_body()
        if path.startswith("/_control/"):
            return self._control(path[len("/_control/"):], body)
        if path.startswith("/api/"):
            return self._api(path[len("/api/"):], url.query, body)
        if path.startswith("/upload/"):
            return self._upload(path[len("/upload/"):], body)
        if path.startswith("/response/"):
            return self._response(path[len("/response/"):], body)
        if path.startswith("/files-pri/") or path.startswith("/files-origin/"):
            return self._file(path)
        self._send(404, b"not found", "text/plain")

    # --- Web API --------------------------------------------------------------------------
    def _api(self, method, query, body):
        fs = self.fs
        params, bad = decode_params(self.headers.get("Content-Type", ""), query, body)
        fs._record_request(self, body, params, api_method=method)
        query_params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if "token" in query_params or TOKEN_SHAPE.search(urllib.parse.unquote(query)):
            fs.token_violations.append({"method": method, "where": "query", "time": time.monotonic()})
        elif isinstance(params, dict) and "token" in params:
            fs.token_violations.append({"method": method, "where": "body", "time": time.monotonic()})
        if self._fault_answered(method, params, fs.latency):
            return
        auth = self.headers.get("Authorization", "")
        want = fs.app_token if method == "apps.connections.open" else fs.bot_token
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._send_json({"ok": False, "error": "not_authed"})
        if auth[7:].strip() != want:
            return self._send_json({"ok": False, "error": "invalid_auth"})
        if bad:
            return self._send_json({"ok": False, "error": bad})
        self._send_json(webapi.call(fs, method, params))

    # --- uploads --------------------------------------------------------------------------
    def _upload(self, file_id, body, received=None):
        """An upload POST; `received` = (length, first bytes) when FakeSlack.upload_sink took the
        body instead of keeping it (then `body` is empty)."""
        fs = self.fs
        fs._record_request(self, body, {}, api_method=None)
        if self._fault_answered("upload"):
            return
        ctype = self.headers.get("Content-Type", "")
        data = body
        if received is not None:
            data = None
        elif ctype.lower().startswith("multipart/form-data"):
            parts = parse_multipart(ctype, body)
            files = [p for p in parts if p["filename"] is not None] or [p for p in parts if p["name"] == "file"]
            if not files:
                return self._send(400, b"no file part", "text/plain")
            data = files[0]["data"]
        with fs.lock:
            up = fs.pending_uploads.get(file_id)
            if up is None or up["completed"] or self.command != "POST":
                return self._send(404, b"unknown upload", "text/plain")
            up["bytes"] = data
            up["received"] = received  # (length, first bytes) from the sink, or None
            up["uploads"] += 1
            up["auth_header"] = "authorization" in {k.lower() for k in self.headers.keys()}
        self._send(200, ("OK - %d" % (len(data) if received is None else received[0])).encode(), "text/plain")

    # --- response_url (slash commands, shortcuts) ------------------------------------------
    def _response(self, rid, body):
        fs = self.fs
        fs._record_request(self, body, {}, api_method=None)
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._send_json({"ok": False, "error": "invalid_json"}, status=400)
        with fs.lock:
            fs.responses.append({"id": rid, "body": obj, "time": time.monotonic()})
        self._send(200, b"ok", "text/plain")

    # --- files ----------------------------------------------------------------------------
    def _file(self, path):
        fs = self.fs
        fs._record_request(self, b"", {}, api_method=None)
        m = re.search(r"/T[A-Z0-9]+-(F[A-Z0-9]+)(?:/|$)", path)
        entry = fs.files.get(m.group(1)) if m else None
        if self._fault_answered("download", latency=fs.latency):
            return
        auth = self.headers.get("Authorization", "")
        if entry is None:
            return self._send(404, b"<html><body>file not found</body></html>", "text/html; charset=utf-8")
        if entry["mode"] == "login_page" or auth != "Bearer " + fs.bot_token:
            return self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
        mode = entry["mode"] if path.startswith("/files-pri/") else "serve"
        quoted = urllib.parse.quote(entry["name"], safe="")
        if mode == "redirect_same":
            return self._send(302, b"", "text/plain", {"Location": "%sfiles-origin/%s-%s/%s"
                                                       % (fs.base_url, TEAM_ID, entry["id"], quoted)})
        if mode in ("redirect_other", "redirect_other_login"):
            return self._send(302, b"", "text/plain", {"Location": "%sfiles-cdn/%s/%s"
                                                       % (fs.other_url, entry["id"], quoted)})
        if mode == "status":
            return self._send(entry["status"], b"<html><body>error</body></html>", "text/html; charset=utf-8")
        if mode == "redirect_to":
            return self._send(entry.get("status") if entry.get("status") in (301, 302, 303, 307, 308) else 302,
                              b"", "text/plain", {"Location": entry["location"]})
        if mode == "truncated":
            # announces the whole size, sends half, hangs up: a Content-Length lie
            self.send_response(200)
            self.send_header("Content-Type", entry["mimetype"])
            self.send_header("Content-Length", str(entry["size"]))
            self.end_headers()
            self.wfile.write(self.fs.file_bytes(entry["id"])[: entry["size"] // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._stream(entry, slow=(mode == "slow"))

    def _stream(self, entry, slow=False):
        self.send_response(200)
        self.send_header("Content-Type", entry["mimetype"])
        self.send_header("Content-Length", str(entry["size"]))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for chunk in self.fs._file_chunks(entry, 16 * 1024 if slow else BLOCK):
                if slow:
                    time.sleep(entry["chunk_delay"])
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True

    def _other_host(self, path):
        fs = self.fs
        self._read_body()
        has_auth = "authorization" in {k.lower() for k in self.headers.keys()}
        with fs.lock:
            fs.other_requests.append({"path": path, "auth": has_auth, "time": time.monotonic()})
            if has_auth:
                fs.other_auth_seen = True
        m = re.match(r"/files-cdn/(F[A-Z0-9]+)(?:/|$)", path)
        entry = fs.files.get(m.group(1)) if m else None
        if entry is None:
            return self._send(404, b"not found", "text/plain")
        if fs.latency:
            time.sleep(fs.latency)
        if entry["mode"] == "redirect_other_login":
            # a host that wants the token too, which the bot must not send it: a sign-in page
            return self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
        self._stream(entry)

    # --- WebSocket ------------------------------------------------------------------------
    def _websocket(self, url):
        fs = self.fs
        fs._record_request(self, b"", {}, api_method=None)
        ticket = dict(urllib.parse.parse_qsl(url.query)).get("ticket")
        if self._fault_answered("link"):
            return
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Sec-WebSocket-Version") != "13" or \
                "upgrade" not in self.headers.get("Connection", "").lower():
            return self._send(400, b"bad websocket handshake", "text/plain")
        if not fs._claim_ticket(ticket):
            return self._send(401, b"invalid or used ticket", "text/plain")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", wsproto.accept_key(key))
        self.end_headers()
        self.wfile.flush()
        conn = fs._new_conn(self.connection, self.rfile, ticket)
        self.close_connection = True
        conn.run()

    # --- control (for make demo and other non-Python callers) -----------------------------
    def _control(self, action, body):
        fs = self.fs
        try:
            args = json.loads(body) if body else {}
            if action == "state":
                return self._send_json(fs.state())
            if action == "load_fixture":
                channel, ts = fs.load_fixture(args["dir"])
                return self._send_json({"ok": True, "channel": channel, "thread_ts": ts})
            if action == "mention":
                ts, eid = fs.mention(args["channel"], args["user"], args["text"], args.get("thread_ts"))
                return self._send_json({"ok": True, "ts": ts, "envelope_id": eid})
            if action == "disconnect":
                fs.send_disconnect(args.get("reason", "refresh_requested"))
                return self._send_json({"ok": True})
            if action == "fault":
                fs.fault(args.pop("method"), **args)
                return self._send_json({"ok": True})
        except (AssertionError, KeyError, TypeError, ValueError, OSError) as e:
            return self._send_json({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}, status=400)
        self._send_json({"ok": False, "error": "unknown action"}, status=404)


def decode_params(content_type, query, body):
    """(params dict, error code or None) from the query string and a form/JSON/multipart body."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return params, None
    if ctype == "application/json":
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return params, "invalid_json"
        if not isinstance(obj, dict):
            return params, "json_not_object"
        params.update(obj)
    elif ctype == "multipart/form-data":
        for part in parse_multipart(content_type, body):
            if part["filename"] is None:
                params[part["name"]] = part["data"].decode("utf-8", "replace")
    else:
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params, None


def parse_multipart(content_type, body):
    """[{name, filename (None for plain fields), headers, data}] of a multipart/form-data body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return []
    delim = b"--" + m.group(1).encode("latin-1")
    parts = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, _, data = chunk.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        parts.append({"name": name.group(1) if name else None,
                      "filename": filename.group(1) if filename else None, "headers": headers, "data": data})
    return parts
