"""Upload bodies taken without being kept, for the benchmarks (bench/autopsy_e2e.py).

The fake normally keeps every upload's bytes (tests unzip them). Keeping a 20 MB zip means
putting it in fresh Python memory, and on our VMs the kernel charges ~3 ms per MB of memory
touched for the first time: ~60 ms that a timing shows as the bot's upload although it is the
fake's. With FakeSlack.upload_sink set to an UploadSink, routes.py hands it the body of each
upload POST that has a Content-Length: the sink reads it through reused buffers, each primed when
the sink is made (one transfer through a socket pair: in the bench, a sink's first 20 MB upload
took 349-367 ms end to end unprimed, 330 primed, the later ones ~320), and keeps only the body's
length and first bytes (no hash: hashing 20 MB would cost the fake as much again). The completion
then hosts the file as generated content of that size (FakeSlack.add_file with an int), so it is
listed like any upload but its bytes cannot be downloaded again.
"""
import socket
import threading

BUFFER_BYTES = 32 << 20
BUFFERS = 2  # the .md and the zip go up side by side
HEAD_BYTES = 64


class UploadSink:
    """Upload bodies read through a few reused buffers, one per upload at a time (a second
    upload while every buffer is in use gets a new one). Thread-safe: the fake serves each
    connection on a thread of its own."""

    def __init__(self, buffer_bytes=BUFFER_BYTES, buffers=BUFFERS):
        self.buffer_bytes = buffer_bytes
        self.lock = threading.Lock()
        self.free = [self._primed_buffer() for _ in range(buffers)]

    def _primed_buffer(self):
        """A buffer that has had one transfer through a socket pair, now, outside any timing."""
        view = memoryview(bytearray(self.buffer_bytes))
        ours, theirs = socket.socketpair()
        filler = bytes(self.buffer_bytes)
        sender = threading.Thread(target=theirs.sendall, args=(filler,), daemon=True)
        sender.start()
        with ours, theirs, ours.makefile("rb") as stream:
            self._read(stream, view, len(filler))
            sender.join()
        return view

    @staticmethod
    def _read(stream, view, length):
        got, head = 0, b""
        while got < length:
            n = stream.readinto(view[:min(length - got, len(view))])
            if not n:
                break
            if len(head) < HEAD_BYTES:
                head += bytes(view[:min(n, HEAD_BYTES - len(head))])
            got += n
        return got, head

    def receive(self, stream, length):
        """Read `length` bytes from `stream` (a buffered socket file); returns (bytes read, the
        first HEAD_BYTES of them). Fewer bytes than `length` means the peer closed early."""
        with self.lock:
            view = self.free.pop() if self.free else None
        if view is None:
            view = memoryview(bytearray(self.buffer_bytes))
        try:
            return self._read(stream, view, length)
        finally:
            with self.lock:
                self.free.append(view)
