"""FakeService: the HTTP server under the fakes of this folder (WhatsApp Cloud API, Teams
Workflows, Statuspage). It runs on loopback in a thread, records every request, lets a test script
failures ahead (`fail_next`), and hands each request to the service's `handle`, which checks its
shape and answers. Standard library only; used by tests/e2e/test_destinations.py."""
import http.server
import json
import threading
import urllib.parse


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeService:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []   # {"method", "path", "query", "headers" (lower-case), "body", "json", "status"}
        self.problems = []   # shape violations found in requests: a test asserts this stays empty
        self.fail_next = []  # statuses answered before any handling, in order (5xx for retries)
        self._server = None

    # -- for subclasses ----------------------------------------------------------------------
    def handle(self, req):
        """Return (status, json-able body or None)."""
        raise NotImplementedError

    def problem(self, text):
        with self.lock:
            self.problems.append(text)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                url = urllib.parse.urlsplit(self.path)
                req = {"method": self.command, "path": url.path, "query": urllib.parse.parse_qs(url.query),
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw}
                try:
                    req["json"] = json.loads(raw) if raw else None
                except ValueError:
                    req["json"] = None
                with service.lock:
                    forced = service.fail_next.pop(0) if service.fail_next else None
                if forced:
                    status, body = forced, {"error": "scripted failure"}
                else:
                    status, body = service.handle(req)
                req["status"] = status
                with service.lock:
                    service.requests.append(req)
                out = b"" if body is None else json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self._server.server_address[1]

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handled(self):
        """The requests that reached handle() (not the scripted failures)."""
        with self.lock:
            return [r for r in self.requests if r["status"] < 500]
