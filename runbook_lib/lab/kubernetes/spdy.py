"""SPDY/3.1 frames as Kubernetes streams speak them: a decoder for the client's frames and the server's frames.

The wire format is the SPDY Protocol Draft 3 (§2.2 frames, §2.6 control frames, §2.6.10 name/value
header blocks, zlib-compressed with the §2.6.10.1 dictionary and a sync flush after each block, one
compression context per direction for the whole session). Kubernetes uses it through moby/spdystream
(``spdy/read.go``, ``spdy/write.go``, ``spdy/dictionary.go``): no flow control is enforced (WINDOW_UPDATE
and SETTINGS are read and ignored), every stream the client opens is answered with a SYN_REPLY with
no headers (k8s.io/apimachinery ``util/httpstream/spdy/connection.go`` newSpdyStream) and data frames
on a stream that got no reply are dropped, so the reply goes first.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
#: RST_STREAM status codes (§2.6.2) the lab sends
PROTOCOL_ERROR, CANCEL = 1, 5
MAX_DATA = (1 << 24) - 1

# §2.6.10.1: the names, each after its 32-bit length, then the status and value fragments
_DICTIONARY_NAMES = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)
_DICTIONARY_TAIL = (
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack("!I", len(n)) + n.encode() for n in _DICTIONARY_NAMES) + _DICTIONARY_TAIL


class SpdyError(ValueError):
    """A frame the session cannot read (the connection is then closed, as spdystream does)."""


@dataclass
class Frame:
    """One frame: ``kind`` is DATA or a control frame type."""

    kind: int
    flags: int = 0
    stream_id: int = 0
    headers: dict[str, list[str]] = field(default_factory=dict)
    data: bytes = b""
    status: int = 0  # RST_STREAM and GOAWAY
    ping_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        return (self.headers.get(name) or [""])[0]


def _parse_block(raw: bytes) -> dict[str, list[str]]:
    """A decompressed name/value block (§2.6.10): names are lowercase, values split on NUL."""
    try:
        (count,) = struct.unpack_from("!I", raw, 0)
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from("!I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from("!I", raw, pos)
            out.setdefault(name.lower(), []).extend(raw[pos + 4:pos + 4 + n].decode().split("\0"))
            pos += 4 + n
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"bad header block: {exc}") from exc
    return out


class Decoder:
    """The client's frames from the byte stream, in order (partial frames wait for more bytes)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from("!II", self._buf, 0)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = second >> 24
            if not first & 0x80000000:
                frames.append(Frame(DATA, flags, first & 0x7FFFFFFF, data=payload))
            else:
                frames.append(self._control(first & 0xFFFF, flags, payload))
        return frames

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            return _parse_block(self._inflate.decompress(block))
        except zlib.error as exc:
            raise SpdyError(f"bad compressed header block: {exc}") from exc

    def _control(self, kind: int, flags: int, p: bytes) -> Frame:
        def word(at: int) -> int:
            if len(p) < at + 4:
                raise SpdyError(f"control frame {kind} too short ({len(p)} bytes)")
            return struct.unpack_from("!I", p, at)[0]

        if kind == SYN_STREAM:  # stream id, associated id, priority(3) unused(5) slot(8), header block
            return Frame(kind, flags, word(0) & 0x7FFFFFFF, headers=self._headers(p[10:]))
        if kind in (SYN_REPLY, HEADERS):
            return Frame(kind, flags, word(0) & 0x7FFFFFFF, headers=self._headers(p[4:]))
        if kind == RST_STREAM:
            return Frame(kind, flags, word(0) & 0x7FFFFFFF, status=word(4))
        if kind == PING:
            return Frame(kind, flags, ping_id=word(0))
        if kind == GOAWAY:
            return Frame(kind, flags, word(0) & 0x7FFFFFFF, status=word(4))
        return Frame(kind, flags, data=p)  # SETTINGS, WINDOW_UPDATE and unknown types: nothing to act on


class Encoder:
    """The server's frames (its own compression context for header blocks)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def _block(self, headers: dict[str, list[str]]) -> bytes:
        raw = struct.pack("!I", len(headers))
        for name, values in headers.items():
            n, v = name.lower().encode(), "\0".join(values).encode()
            raw += struct.pack("!I", len(n)) + n + struct.pack("!I", len(v)) + v
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, list[str]] | None = None, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack("!I", stream_id) + self._block(headers or {}))

    @staticmethod
    def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
        out = b""
        for start in range(0, max(len(payload), 1), MAX_DATA):
            chunk = payload[start:start + MAX_DATA]
            last = start + MAX_DATA >= len(payload)
            out += struct.pack("!II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin and last else 0) << 24) | len(chunk)) + chunk
        return out

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack("!II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack("!I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack("!II", last_stream_id, status))
