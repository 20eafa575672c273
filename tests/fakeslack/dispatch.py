"""Slack's side of several Socket Mode connections of one app (issue 16): each envelope goes to ONE
open connection (round robin), and one that is not acked within ack_timeout is sent again to
another open connection with retry_attempt 1..max_retries and retry_reason "timeout" (a new
envelope_id, the same event_id), as Slack does. Used by tests/e2e/test_ha.py and bench/ha_*.py on
top of a FakeSlack (fakeslack.py): it uses its connections, its envelope log and its acks."""
import threading
import time


class Dispatcher:
    """d = Dispatcher(fs); d.mention(channel, user, text) -> (ts, event_id); d.deliveries(event_id)
    lists [(envelope_id, conn_id, retry_attempt)]; d.stop() ends the redelivery threads."""

    def __init__(self, fs, ack_timeout=3.0, max_retries=3):
        self.fs = fs
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._next = 0
        self._lock = threading.Lock()
        self._sent = {}  # event_id -> [(envelope_id, conn_id, retry_attempt)]
        self._stopped = threading.Event()
        self._threads = []
        self.paused = set()  # connection ids that get nothing (their instance is known to be dead)

    def stop(self):
        self._stopped.set()
        for t in self._threads:
            t.join(timeout=5)

    def _pick(self, avoid=()):
        live = [c for c in self.fs.open_connections() if c.id not in self.paused]
        if not live:
            return None
        fresh = [c for c in live if c.id not in avoid] or live
        with self._lock:
            self._next += 1
            return fresh[self._next % len(fresh)]

    def deliveries(self, event_id):
        with self._lock:
            return list(self._sent.get(event_id, []))

    def _send_once(self, event, event_id, attempt, avoid):
        conn = None
        deadline = time.monotonic() + 10
        while conn is None and time.monotonic() < deadline and not self._stopped.is_set():
            conn = self._pick(avoid)
            if conn is None:
                time.sleep(0.05)
        if conn is None:
            return None, None
        try:
            envelope_id = self.fs.send_event(event, retry_attempt=attempt, event_id=event_id, conn=conn)
        except (OSError, ConnectionError):
            return None, conn.id
        with self._lock:
            self._sent.setdefault(event_id, []).append((envelope_id, conn.id, attempt))
        return envelope_id, conn.id

    def _deliver(self, event, event_id, conn_id=None, first_envelope=None):
        tried = [conn_id] if conn_id else []
        envelope_id = first_envelope
        for attempt in range(0, self.max_retries + 1):
            if attempt > 0 or envelope_id is None:
                envelope_id, cid = self._send_once(event, event_id, attempt, tried)
                if cid:
                    tried.append(cid)
            if envelope_id is not None:
                deadline = time.monotonic() + self.ack_timeout
                while time.monotonic() < deadline and not self._stopped.is_set():
                    if self.fs.ack_for(envelope_id):
                        return
                    time.sleep(0.02)
            if self._stopped.is_set():
                return

    def send_event(self, event, event_id=None, conn=None):
        """Send `event` to one connection (conn, or the next in turn); redeliver in the background
        until one acks. Returns the event_id."""
        with self.fs.lock:
            self.fs._event_counter += 1
            event_id = event_id or "Ev0HA%07d" % self.fs._event_counter
        if conn is not None:
            first = self.fs.send_event(event, event_id=event_id, conn=conn)
            cid = conn.id
            with self._lock:
                self._sent.setdefault(event_id, []).append((first, cid, 0))
        else:
            first, cid = self._send_once(event, event_id, 0, ())
        t = threading.Thread(target=self._deliver, args=(event, event_id, cid, first), daemon=True)
        t.start()
        self._threads.append(t)
        return event_id

    def mention(self, channel, user, text, thread_ts=None, conn=None):
        """Post the mention in the fake's channel and dispatch its app_mention; (ts, event_id)."""
        ts, _ = self.fs.mention(channel, user, text, thread_ts=thread_ts, send=False)
        msg = self.fs._by_ts[channel][ts]
        event = {"type": "app_mention", "user": user, "text": msg["text"], "ts": ts, "channel": channel,
                 "event_ts": ts, "team": msg.get("team"), "client_msg_id": msg.get("client_msg_id"),
                 "blocks": msg.get("blocks")}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return ts, self.send_event(event, conn=conn)
