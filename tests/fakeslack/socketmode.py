"""The fake Slack's Socket Mode side: one SocketModeConn per accepted WebSocket on /link/.

fakeslack.py's HTTP handler does the upgrade handshake and then calls SocketModeConn.run(),
which sends `hello` and reads frames (ping -> pong, close -> close, text -> acks recorded on the
FakeSlack) until the TCP connection ends. The FakeSlack sends envelopes with conn.send_text().
Calls wsproto.py for framing.
"""
import json
import socket
import threading
import time

import wsproto


class SocketModeConn:
    """One bot connection. Attributes tests read: id, opened_at, closed_at, open, ticket,
    received (text messages, decoded), pings (monotonic times of client pings), pongs (of client
    pongs), close_code (the code of the client's close frame, if any), errors (protocol errors)."""

    def __init__(self, fs, conn_id, sock, rfile, ticket):
        self.fs = fs
        self.id = conn_id
        self.sock = sock
        self.rfile = rfile
        self.ticket = ticket
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.open = True
        self.received = []
        self.pings = []
        self.pongs = []
        self.close_code = None
        self.close_received_at = None
        self.close_sent = False
        self.errors = []
        self._send_lock = threading.Lock()

    def __repr__(self):
        return "<conn %d %s>" % (self.id, "open" if self.open else "closed")

    # --- sending (any thread) -------------------------------------------------------------
    def send_bytes(self, data):
        """Write raw bytes on the socket (frames already encoded, or deliberately malformed)."""
        with self._send_lock:
            if not self.open:
                raise ConnectionError("connection %d is closed" % self.id)
            self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0):
        self.send_bytes(wsproto.encode_frame(opcode, payload, fin=fin, rsv=rsv))

    def send_text(self, text):
        self.send_frame(wsproto.OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_ping(self, payload=b"fake-ping"):
        self.send_frame(wsproto.OP_PING, payload)

    def send_close(self, code=1000, reason=""):
        self.send_frame(wsproto.OP_CLOSE, wsproto.close_payload(code, reason))
        self.close_sent = True

    def drop(self):
        """Close the TCP connection at once, with no close frame."""
        with self._send_lock:
            self._mark_closed()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _mark_closed(self):
        if self.open:
            self.open = False
            self.closed_at = time.monotonic()

    # --- the reader loop (the HTTP handler's thread) --------------------------------------
    def run(self):
        read_exact = wsproto.exact_reader(self.rfile)
        try:
            if self.fs.hello_delay:
                time.sleep(self.fs.hello_delay)
            if self.fs.send_hello:
                self.send_json(self.fs._hello_message())
            self._read_loop(read_exact)
        except (EOFError, OSError, ConnectionError):
            pass
        finally:
            self.drop()

    def _read_loop(self, read_exact):
        fragments = None  # (opcode, [payloads]) while a fragmented message is arriving
        while True:
            try:
                frame = wsproto.read_frame(read_exact)
            except wsproto.ProtocolError as e:
                self._protocol_error(str(e))
                return
            if not frame.masked:
                self._protocol_error("client frame not masked")
                return
            if frame.rsv:
                self._protocol_error("reserved bits set without an extension")
                return
            op = frame.opcode
            if op not in wsproto.KNOWN_OPS:
                self._protocol_error("unknown opcode %d" % op)
                return
            if op == wsproto.OP_PING:
                self.pings.append(time.monotonic())
                if not self.fs.no_pong:
                    self.send_frame(wsproto.OP_PONG, frame.payload)
            elif op == wsproto.OP_PONG:
                self.pongs.append(time.monotonic())
            elif op == wsproto.OP_CLOSE:
                self.close_code, _ = wsproto.parse_close_payload(frame.payload)
                self.close_received_at = time.monotonic()
                if self.fs.ignore_close:
                    continue  # keep reading: the bot must give up on its own and close TCP
                if not self.close_sent:
                    self.send_frame(wsproto.OP_CLOSE, frame.payload[:2])
                    self.close_sent = True
                return
            elif op == wsproto.OP_CONT:
                if fragments is None:
                    self._protocol_error("continuation frame with nothing to continue")
                    return
                fragments[1].append(frame.payload)
                if frame.fin:
                    self._message(fragments[0], b"".join(fragments[1]))
                    fragments = None
            else:  # text or binary
                if fragments is not None:
                    self._protocol_error("new data frame inside a fragmented message")
                    return
                if frame.fin:
                    self._message(op, frame.payload)
                else:
                    fragments = (op, [frame.payload])

    def _protocol_error(self, why):
        self.errors.append(why)
        self.fs._record_ws_error(self, why)
        try:
            self.send_close(1002, why[:100])
        except (OSError, ConnectionError):
            pass

    def _message(self, opcode, payload):
        now = time.monotonic()
        if opcode == wsproto.OP_BINARY:
            self.received.append({"binary": payload, "time": now})
            return
        try:
            text = payload.decode("utf-8")
            msg = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            self.received.append({"invalid": payload, "time": now})
            self.fs._record_ws_error(self, "text frame that is not JSON")
            return
        self.received.append(msg)
        if isinstance(msg, dict) and "envelope_id" in msg:
            self.fs._record_ack(self, msg, now)
