"""A TCP proxy in front of a test PostgreSQL (tests/pgcluster.py's Unix socket), so that a test can
make the database unreachable for ONE bot instance: stall() stops forwarding (the server stops
answering, connections stay open), down() drops every connection and refuses new ones (accepted,
then closed), up() forwards again. Used by tests/e2e/test_ha.py and bench/ha_*.py."""
import os
import select
import socket
import threading


class PgProxy:
    def __init__(self, cluster):
        self.target = os.path.join(cluster.dir, ".s.PGSQL.5432")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        self.lock = threading.Lock()
        self.pairs = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db, user="postgres"):
        return "postgresql://%s@127.0.0.1:%d/%s?connect_timeout=5" % (user, self.port, db)

    def stall(self):
        self.mode = "stall"

    def up(self):
        self.mode = "up"

    def down(self):
        self.mode = "down"
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.closed = True
        self.down()
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "down":
                client.close()
                continue
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a, b):
        peer = {a: b, b: a}
        try:
            while True:
                if self.mode == "stall":
                    select.select([], [], [], 0.02)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    peer[s].sendall(data)
        except (OSError, ValueError):
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
