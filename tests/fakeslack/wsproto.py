"""RFC 6455 WebSocket framing, written by hand: the accept key, encoding a frame, reading a frame.

Owns nothing but pure helpers. Used by socketmode.py (the fake Slack's server side) and by
wsclient.py (the tiny client of the self-tests). Calls only the standard library.
"""
import base64
import collections
import hashlib
import os
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
KNOWN_OPS = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

Frame = collections.namedtuple("Frame", "fin rsv opcode masked payload")


class ProtocolError(Exception):
    """The peer broke RFC 6455 (the server answers with close code 1002)."""


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (both str)."""
    digest = hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    """A random Sec-WebSocket-Key for a client handshake."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def mask_bytes(payload, mask_key):
    """XOR payload with the 4-byte mask key (masking and unmasking are the same)."""
    if not payload:
        return b""
    n = len(payload)
    repeated = (mask_key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True, mask=False, rsv=0, mask_key=None):
    """One frame as bytes. Servers send unmasked frames, clients masked ones (mask=True)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytearray()
    head.append((0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF))
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 65536:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        head += key
        payload = mask_bytes(payload, key)
    return bytes(head) + payload


def close_payload(code=None, reason=""):
    """The payload of a close frame: 2-byte code then the UTF-8 reason (empty without a code)."""
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


def parse_close_payload(payload):
    """(code, reason) of a close frame payload; (None, "") when empty."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


def read_frame(read_exact, max_payload=64 * 1024 * 1024):
    """Read one frame with read_exact(n) -> bytes (raises EOFError when the stream ends).

    Returns a Frame with the payload unmasked. Raises ProtocolError for a frame no endpoint may
    send (bad control frame, payload over max_payload)."""
    b0, b1 = read_exact(2)
    fin = bool(b0 & 0x80)
    rsv = (b0 >> 4) & 0x7
    opcode = b0 & 0xF
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(8))[0]
    if opcode in CONTROL_OPS and (n > 125 or not fin):
        raise ProtocolError("control frame too long or fragmented")
    if n > max_payload:
        raise ProtocolError("payload of %d bytes is over the limit" % n)
    key = read_exact(4) if masked else None
    payload = read_exact(n) if n else b""
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(fin, rsv, opcode, masked, payload)


def exact_reader(fileobj):
    """read_exact(n) over a buffered binary file object (socket.makefile('rb'))."""

    def read_exact(n):
        data = fileobj.read(n)
        if data is None or len(data) < n:
            raise EOFError("connection closed after %d of %d bytes" % (len(data or b""), n))
        return data

    return read_exact
