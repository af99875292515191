"""One HTTP/1.1 keep-alive connection for `H1Pool`, its answers parsed by httptools (llhttp).

httpcore's `AsyncHTTP11Connection` drives h11, a pure-Python state machine: per request it
builds and validates event objects for the request line, each header and the body, and reads
the answer back through the same machinery. At 100 concurrent model calls that was ~17% of
agentnb's CPU per call (benchmarks/README.md). `H1Pool` only ever sends a whole request (one
`POST` with a `content-length`) and reads the whole answer, so this connection writes the
request as one buffer (header names and values checked as h11 checks them) and feeds the answer
to llhttp, the C parser Node.js uses, through httptools (the binding uvicorn uses).

What h11 guaranteed is kept: a malformed answer, a body cut short, or a server that closes
before answering raise httpcore's `RemoteProtocolError`; an answer that ends at the close of
the connection is read to the end and the connection is not reused; `Connection: close`,
HTTP/1.0 answers and anything left unparsed make the connection single-use; reads and writes
keep their per-phase timeouts; interim `1xx` answers are skipped.
"""

from __future__ import annotations

import re
import time
from types import ModuleType
from typing import Any

import httptools

__all__ = ["H1Connection"]

_READ_SIZE = 64 * 1024
# RFC 9110 field names (tokens) and values (visible characters, spaces and tabs), as h11 checks.
_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"[\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?|")
_CHECKED: set[tuple[bytes, bytes]] = set()
"""Header lines already found legal: a client sends the same few on every request. Lines that
carry a credential (`_SECRET_NAMES`) are checked every time and never kept here: this set lives
as long as the process, past the client that held the key."""
_SECRET_NAMES = frozenset({b"authorization", b"proxy-authorization", b"api-key", b"x-api-key",
                           b"x-goog-api-key", b"cookie"})

_IDLE, _ACTIVE, _CLOSED = 0, 1, 2


class _Answer:
    """httptools callbacks collecting one answer."""

    __slots__ = ("body", "complete", "extra", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.complete = False
        self.extra = False
        """Bytes after the answer (a second message): the connection is not reused."""
        self.keep_alive = False
        """What the answer's head says (llhttp forgets it once the message completes)."""
        self.parser: Any = None

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.complete:
            self.status = self.parser.get_status_code()
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self.headers, self.body, self.status = [], [], 0
            return
        self.complete = True


class H1Connection:
    """A keep-alive HTTP/1.1 connection over one network stream (httpcore's backend stream).

    Args:
        core: `httpcore2` or `httpcore`, whose exceptions it raises.
        stream: The connected (and, for https, TLS-wrapped) network stream.
        keepalive_expiry: Seconds an idle connection may be reused for (None: no limit).

    Example:
        >>> import httpcore2
        >>> H1Connection(httpcore2, None, 5.0).is_idle()
        True
    """

    __slots__ = ("_core", "_expire_at", "_expiry", "_state", "_stream")

    def __init__(self, core: ModuleType, stream: Any, keepalive_expiry: float | None) -> None:
        self._core = core
        self._stream = stream
        self._expiry = keepalive_expiry
        self._expire_at: float | None = None
        self._state = _IDLE

    def is_idle(self) -> bool:
        """True between requests (not in use, not closed)."""
        return self._state == _IDLE

    def has_expired(self) -> bool:
        """Past its keep-alive expiry, or closed by the server while idle (readable at EOF)."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self._state == _IDLE and bool(self._stream.get_extra_info("is_readable"))

    async def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes, timeouts: dict[str, float | None]
                      ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request and read its whole answer: (status, headers, body).

        Raises:
            LocalProtocolError: a header name or value is not allowed on the wire.
            RemoteProtocolError: the answer is malformed, cut short, or never came.
            ReadTimeout, WriteTimeout, ReadError, WriteError: from the network stream.
        """
        core = self._core
        if self._state != _IDLE:
            msg = "The connection is not idle."
            raise core.ConnectionNotAvailable(msg)
        self._state = _ACTIVE
        self._expire_at = None
        lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
        checked = _CHECKED
        for name, value in headers:
            if (name, value) in checked:
                lines.append(b"%s: %s\r\n" % (name, value))
                continue
            if not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):
                self._state = _CLOSED
                # The value is not quoted: it is often a credential.
                what = "name" if not _NAME.fullmatch(name) else "value"
                msg = (f"Illegal header {what} in {name.decode('latin-1')!r}: a line break, "
                       "control character or leading/trailing space; it was not sent.")
                raise core.LocalProtocolError(msg)
            if len(value) <= 512 and name.lower() not in _SECRET_NAMES:
                if len(checked) >= 256:
                    checked.clear()
                checked.add((name, value))
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        lines.append(body)
        stream = self._stream
        await stream.write(b"".join(lines), timeout=timeouts.get("write"))
        answer = _Answer()
        parser = answer.parser = httptools.HttpResponseParser(answer)
        read_timeout = timeouts.get("read")
        ends_at_close = False
        while not answer.complete:
            data = await stream.read(_READ_SIZE, timeout=read_timeout)
            if not data:
                # EOF: complete only for an answer whose body runs to the close.
                ends_at_close = (answer.status != 0 and not _framed(answer.headers))
                if ends_at_close:
                    break
                self._state = _CLOSED
                msg = ("Server disconnected without sending a response." if answer.status == 0
                       else "Server closed the connection before the whole response body.")
                raise core.RemoteProtocolError(msg)
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._state = _CLOSED
                msg = f"Malformed HTTP response: {exc}."
                raise core.RemoteProtocolError(msg) from None
        if ends_at_close or answer.extra or not answer.keep_alive:
            self._state = _CLOSED
        else:
            self._state = _IDLE
            if self._expiry is not None:
                self._expire_at = time.monotonic() + self._expiry
        return answer.status, answer.headers, b"".join(answer.body)

    async def aclose(self) -> None:
        """Close the network stream."""
        self._state = _CLOSED
        await self._stream.aclose()


def _framed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the answer says where its body ends (length or chunked), so EOF cuts it short."""
    for name, value in headers:
        low = name.lower()
        if low == b"content-length" or (low == b"transfer-encoding"
                                        and b"chunked" in value.lower()):
            return True
    return False
