"""StrictRequests: a mixin for http.server request handlers that answers like a server following
RFC 9110/9112 to the letter, so the e2e tests catch what strict servers (Node's http, most
proxies) refuse: 400 for a malformed header line (no colon, space before the colon, a name with
characters outside the token set, obsolete line folding, control characters in a value) and 417
for any Expect other than 100-continue (an empty Expect too). Used by routes.py (the fake Slack)
and webhook_sink.py; the standard library only.
"""
import re

HEADER_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[ \t]*[^\x00-\x08\x0a-\x1f\x7f]*?[ \t]*\r?\n$")


class _Tap:
    """Wraps rfile while the headers are read, keeping each raw line."""

    def __init__(self, f):
        self.f = f
        self.lines = []

    def readline(self, *args):
        line = self.f.readline(*args)
        self.lines.append(line)
        return line

    def __getattr__(self, name):
        return getattr(self.f, name)


class StrictRequests:
    strict_violations = None  # a list on the server (set by the owner) to record what was refused

    def parse_request(self):
        tap = _Tap(self.rfile)
        self.rfile = tap
        try:
            ok = super().parse_request()
        finally:
            self.rfile = tap.f
        if not ok:
            return False
        for line in tap.lines:
            if line in (b"\r\n", b"\n", b""):
                break
            if not HEADER_LINE.match(line):
                self._strict_refuse(400, "malformed header line %r" % line[:80])
                return False
        for value in self.headers.get_all("Expect") or []:
            if value.strip().lower() != "100-continue":
                self._strict_refuse(417, "Expect: %r" % value)
                return False
        return True

    def _strict_refuse(self, status, why):
        violations = getattr(self.server, "strict_violations", None)
        if violations is not None:
            violations.append({"status": status, "why": why, "path": self.path})
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
