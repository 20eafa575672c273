"""A tiny blocking WebSocket client (ws:// only) for the fake Slack's self-tests.

Owns one TCP connection: the RFC 6455 client handshake, masked frames out, frames in.
Used by tests/e2e/test_fakeslack.py; calls wsproto.py for framing.
"""
import json
import socket
import urllib.parse

import wsproto


class WSClient:
    def __init__(self, url, timeout=5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError("only ws:// URLs: " + url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.rfile = self.sock.makefile("rb")
        self._read_exact = wsproto.exact_reader(self.rfile)
        key = wsproto.new_key()
        target = parts.path + ("?" + parts.query if parts.query else "")
        request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (target, parts.netloc, key))
        self.sock.sendall(request.encode("ascii"))
        status = self.rfile.readline().decode("latin-1")
        self.status = int(status.split()[1]) if len(status.split()) > 1 else 0
        self.headers = {}
        while True:
            line = self.rfile.readline().decode("latin-1").strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            self.close_socket()
            raise ConnectionError("handshake refused with HTTP %d" % self.status)
        if self.headers.get("sec-websocket-accept") != wsproto.accept_key(key):
            self.close_socket()
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(wsproto.encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, text):
        self.send_frame(wsproto.OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def recv_frame(self, timeout=5.0):
        self.sock.settimeout(timeout)
        return wsproto.read_frame(self._read_exact)

    def recv_message(self, timeout=5.0):
        """(opcode, payload) of the next data or close frame, assembling fragments; pings are
        answered and pongs skipped."""
        parts, first_op = [], None
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == wsproto.OP_PING:
                self.send_frame(wsproto.OP_PONG, f.payload)
                continue
            if f.opcode == wsproto.OP_PONG:
                continue
            if f.opcode == wsproto.OP_CLOSE:
                return f.opcode, f.payload
            if f.opcode != wsproto.OP_CONT:
                first_op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return first_op, b"".join(parts)

    def recv_json(self, timeout=5.0):
        op, payload = self.recv_message(timeout)
        if op != wsproto.OP_TEXT:
            raise ConnectionError("expected a text frame, got opcode %d (%r)" % (op, payload[:60]))
        return json.loads(payload.decode("utf-8"))

    def close(self, code=1000, reason="", wait=True, timeout=5.0):
        """Send a close frame; with wait, read until the server's close frame and return its code."""
        self.send_frame(wsproto.OP_CLOSE, wsproto.close_payload(code, reason))
        code_back = None
        if wait:
            while True:
                op, payload = self.recv_message(timeout)
                if op == wsproto.OP_CLOSE:
                    code_back = wsproto.parse_close_payload(payload)[0]
                    break
        self.close_socket()
        return code_back

    def close_socket(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()
