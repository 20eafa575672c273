#!/usr/bin/env python3
"""The Socket Mode side of bench/paced_ack.py, in a process of its own.

Why a separate process: in one Python process the sender's timestamps share the GIL with the
threads of the fake's Web API, which serve the autopsy's hundreds of conversations.replies pages
while the sender paces; a write or an ack read then waits for the interpreter, not for the bot.
Here nothing else runs: one thread writes the paced envelopes, one reads the acks, both with
time.monotonic() right at the socket call.

It listens on 127.0.0.1 (the port is printed as "PORT n"), takes the bot's WebSocket (the fake
Slack's apps.connections.open hands out this address: FakeSlack.ws_url_override), sends `hello`,
prints "CONNECTED", then obeys JSON lines on stdin:
  {"cmd": "send", "envelope": {...}}          send one envelope now (e.g. an app_mention)
  {"cmd": "paced", "rate": 250, "seconds": 4, "channel": "C…"}
      send rate*seconds reaction_added envelopes, one every 1/rate s, wait for their acks, and
      print one JSON line {"latencies_ms": [...], "missing": n, "late_writes": n}
  {"cmd": "quit"}
Uses tests/fakeslack/wsproto.py for the framing. Run by bench/paced_ack.py only."""
import json
import os
import socket
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeslack"))
import wsproto  # noqa: E402


def pace(rate, seconds, late=None):
    """Yields 0 .. rate*seconds-1, each at its due time (one every 1/rate s from the first); a
    write more than one interval behind its time is counted in late[0]."""
    interval = 1.0 / rate
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -interval and late is not None:
            late[0] += 1
        yield i


class Sender:
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.sent = {}   # envelope_id -> monotonic time of the write
        self.acked = {}  # envelope_id -> monotonic time the ack was read
        self.acks_cond = threading.Condition()

    def write(self, obj):
        data = wsproto.encode_frame(wsproto.OP_TEXT, json.dumps(obj).encode("utf-8"))
        with self.lock:
            t = time.monotonic()
            self.sock.sendall(data)
        return t

    def read_loop(self):
        read_exact = wsproto.exact_reader(self.sock.makefile("rb"))
        while True:
            try:
                frame = wsproto.read_frame(read_exact)
            except (EOFError, OSError, wsproto.ProtocolError):
                return
            now = time.monotonic()
            if frame.opcode == wsproto.OP_PING:
                with self.lock:
                    self.sock.sendall(wsproto.encode_frame(wsproto.OP_PONG, frame.payload))
            elif frame.opcode == wsproto.OP_CLOSE:
                return
            elif frame.opcode == wsproto.OP_TEXT:
                try:
                    msg = json.loads(frame.payload)
                except ValueError:
                    continue
                eid = msg.get("envelope_id") if isinstance(msg, dict) else None
                if eid:
                    with self.acks_cond:
                        self.acked[eid] = now
                        self.acks_cond.notify_all()

    def paced(self, rate, seconds, channel):
        ids, late = [], [0]
        for i in pace(rate, seconds, late):
            eid = str(uuid.uuid4())
            envelope = {"envelope_id": eid, "type": "events_api", "accepts_response_payload": False,
                        "retry_attempt": 0, "retry_reason": "",
                        "payload": {"type": "event_callback", "team_id": "T0TEAM", "event_id": "EvP%07d" % i,
                                    "event_time": int(time.time()),
                                    "event": {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                              "item": {"type": "message", "channel": channel, "ts": "1.%06d" % i},
                                              "event_ts": "%.6f" % time.time()}}}
            self.sent[eid] = self.write(envelope)
            ids.append(eid)
        deadline = time.monotonic() + 30
        with self.acks_cond:
            while time.monotonic() < deadline and any(e not in self.acked for e in ids):
                self.acks_cond.wait(0.1)
        lat = [(self.acked[e] - self.sent[e]) * 1e3 for e in ids if e in self.acked]
        return {"latencies_ms": lat, "missing": len(ids) - len(lat), "late_writes": late[0]}


def handshake(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError("closed during the handshake")
        data += chunk
    headers = {}
    for line in data.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower().decode()] = v.strip().decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n\r\n" % wsproto.accept_key(headers["sec-websocket-key"])).encode())


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    print("PORT %d" % listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    handshake(conn)
    sender = Sender(conn)
    sender.write({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKEAPP"},
                  "debug_info": {"host": "paced-sender", "approximate_connection_time": 3600}})
    threading.Thread(target=sender.read_loop, daemon=True).start()
    print("CONNECTED", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "send":
            sender.write(cmd["envelope"])
            print(json.dumps({"ok": True}), flush=True)
        elif cmd["cmd"] == "paced":
            print(json.dumps(sender.paced(cmd["rate"], cmd["seconds"], cmd["channel"])), flush=True)
        elif cmd["cmd"] == "quit":
            break
    conn.close()


if __name__ == "__main__":
    main()
