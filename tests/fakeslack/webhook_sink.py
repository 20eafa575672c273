"""WebhookSink: an HTTP server on loopback that records every request and answers with scripted
statuses, standing in for an outgoing webhook (a WhatsApp bridge, say) in the e2e tests.

Owns its server thread and its records. Used by tests/e2e; calls only the standard library.
Usage: sink = WebhookSink().start(); sink.script("/hook", [500, 200]); ... sink.requests; sink.stop()
"""
import collections
import http.server
import json
import threading
import time
import urllib.parse

from strict_http import StrictRequests


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True


class WebhookSink:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []   # {"method", "path", "query", "headers" (lower-case keys), "body", "time", "status"}
        self.strict_violations = []  # requests refused as a strict server would (strict_http.py)
        self._scripts = collections.defaultdict(collections.deque)
        self._server = None
        self._thread = None

    def start(self):
        sink = self

        class Handler(StrictRequests, http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, fmt, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                url = urllib.parse.urlsplit(self.path)
                answer = sink._next_answer(url.path)
                if answer.get("delay"):
                    time.sleep(answer["delay"])
                with sink.lock:
                    sink.requests.append({"method": self.command, "path": url.path, "query": url.query,
                                          "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "time": time.monotonic(), "status": answer["status"]})
                out = answer.get("body", b'{"ok":true}')
                out = out if isinstance(out, bytes) else str(out).encode("utf-8")
                self.send_response(answer["status"])
                self.send_header("Content-Type", answer.get("content_type", "application/json"))
                self.send_header("Content-Length", str(len(out)))
                for k, v in answer.get("headers", {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.strict_violations = self.strict_violations
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self._server.server_address[1]

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def script(self, path, answers):
        """Answers for the next requests to path, in order: an int status or a dict
        {status, body, headers, delay, content_type}. After them: 200."""
        with self.lock:
            for a in answers:
                self._scripts[path].append(a if isinstance(a, dict) else {"status": int(a)})

    def _next_answer(self, path):
        with self.lock:
            q = self._scripts.get(path)
            return q.popleft() if q else {"status": 200}

    def requests_for(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def json_bodies(self, path=None):
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if path is None or r["path"] == path]

    def wait_for(self, count, path=None, timeout=10):
        """Wait until at least count requests (to path, if given) arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [r for r in self.requests if path is None or r["path"] == path]
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError("webhook sink: %d of %d requests to %s after %.1f s"
                                     % (len(got), count, path or "any path", timeout))
            time.sleep(0.02)
