"""The audit log: append-only JSONL, each record chained to the previous one by SHA-256.

A record is one line of canonical JSON (sorted keys, no spaces):

    {"event": ..., <fields>, "hash": H, "prev": P, "seq": N, "ts": "..."}

where `seq` counts from 1, `prev` is the previous record's `hash` (64 zeros for the first), and
`H = sha256(P + canonical_json(record without "hash"))`. Beside the log, `<log>.head` holds the
last `seq` and `hash`, so a log cut at a line boundary is caught too. `verify(path)` recomputes
everything and reports the first bad line (1-based).

What it guarantees: any edit, deletion, reordering or truncation of a log written by `AuditLog`
is detected, unless the editor also recomputes every later hash and the head (the hash has no
key). To make that impossible, publish the head hash somewhere the writer of the log cannot
change (the run's span records it when the runtime closes the run).

Appends are serialised across threads (a lock per path) and processes (`fcntl.flock` on the
log file; on platforms without `fcntl` only the thread lock applies). Fields are redacted with
the default redactor before they are written. The lines are written in one `write`, then the
head is rewritten in one `write` at offset 0 (with `fsync=True`: a flushed new file renamed over
it, which survives power loss): a crash in between leaves records past the head, which the next
append adopts and `verify` reports. An `AuditLog` remembers where its own last append ended, so
while no other writer appended since, an append does not read the tail back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from pydantic import BaseModel, ConfigDict

from agentnb.core import (
    UNSET,
    AuditChainBroken,
    StoreError,
    Unset,
    UsageError,
    canonical_json,
    current_pid,
    json_data,
)
from agentnb.governance._redact import _INT_MAX, _INT_MIN, Redactor, default_redactor

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: thread lock only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "APPROVAL",
    "BUDGET_STOP",
    "GENESIS",
    "NETWORK_BLOCKED",
    "POLICY_DECISION",
    "TOOL_CALL_REQUESTED",
    "TOOL_RESULT",
    "WORKSPACE_VIOLATION",
    "AuditLog",
    "AuditReport",
    "iter_records",
    "record_hash",
    "verify",
]

TOOL_CALL_REQUESTED: Final = "tool_call_requested"
"""The model proposed a tool call: run_id, call_id, tool, arguments, reason."""
POLICY_DECISION: Final = "policy_decision"
"""The policy decided it: run_id, call_id, tool, decision, rule, reason."""
APPROVAL: Final = "approval"
"""An approver answered: run_id, call_id, tool, decision, approver, message, sticky."""
TOOL_RESULT: Final = "tool_result"
"""The call finished: run_id, call_id, tool, status (ok|error|denied|retry), error."""
BUDGET_STOP: Final = "budget_stop"
"""A budget stopped the run: run_id, limit, spent, requested, scope."""
NETWORK_BLOCKED: Final = "network_blocked"
"""A tool's request was refused by the network allow-list: run_id, tool, host, url."""
WORKSPACE_VIOLATION: Final = "workspace_violation"
"""A path argument left the workspace: run_id, call_id, tool, path, workspace."""

GENESIS: Final = "0" * 64
"""The `prev` of the first record."""
_RESERVED = frozenset({"seq", "ts", "event", "prev", "hash"})

_orjson_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_SLOT = "\x00agentnb:audit-hash\x00"
"""Stands in for the hash while a plain record is encoded once (see `_line`)."""
_SLOT_FIELD = b',' + orjson.dumps({"hash": _SLOT})[1:-1]


def _plain(obj: Any) -> bool:  # Any: whatever a caller put in a record's fields
    """True for JSON data that `json_data` would give back unchanged and without a float:
    dicts with str keys, lists, str, bool, None and ints orjson writes (64 bits)."""
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return True
    if kind is int:
        return _INT_MIN <= obj <= _INT_MAX
    # Plain loops: a third of the cost of all() over a generator.
    if kind is dict:
        for key, value in obj.items():
            vkind = type(value)
            if type(key) is not str or not (
                    vkind is str or vkind is bool or value is None or _plain(value)):
                return False
        return True
    if kind is list:
        for value in obj:  # noqa: SIM110
            if not _plain(value):
                return False
        return True
    return False


def _line(record: dict[str, Any], prev: str) -> tuple[str, bytes] | None:
    """(hash, line) of a float-free record in one encode, or None where that cannot be done.

    The record is written with `_SLOT` as its hash: sorted, "hash" falls between "event" and
    "prev", so cutting that field out gives `canonical_json(record)` (what the hash covers)
    and putting the digest in its place gives the line. A record that holds the slot's text
    itself, or that orjson refuses, goes the general way (`_halves`)."""
    try:
        text = _orjson_dumps({**record, "hash": _SLOT}, None, _SORTED)
    except TypeError:
        return None
    at = text.find(_SLOT_FIELD)
    if at < 0 or text.find(_SLOT_FIELD, at + 1) >= 0:
        return None
    head, tail = text[:at], text[at + len(_SLOT_FIELD):]
    digest = hashlib.sha256(prev.encode() + head + tail).hexdigest()
    return digest, b"%s,\"hash\":\"%s\"%s\n" % (head, digest.encode(), tail)


def record_hash(record: dict[str, Any]) -> str:
    """The hash a record must carry: sha256(prev + canonical JSON of the record without hash).

    Example:
        >>> len(record_hash({"seq": 1, "ts": "t", "event": "e", "prev": GENESIS}))
        64
    """
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256((str(record.get("prev", "")) + canonical_json(body)).encode()).hexdigest()


class AuditReport(BaseModel):
    """The result of `verify`.

    Example:
        >>> AuditReport(ok=True, records=3, path="audit.jsonl").ok
        True
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    """True when every record and the head check out."""
    records: int
    """How many records were read and found good (before the first problem)."""
    line: int | None = None
    """The first bad line, 1-based (None when ok)."""
    problem: str | None = None
    """What is wrong with that line (None when ok)."""
    path: str = ""
    """The log that was checked."""


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    # One lock per log file in this process: flock alone would serialise threads too (each
    # append opens its own file description), but the lock keeps contention off the kernel.
    key = str(path)
    with _thread_locks_guard:
        lock = _thread_locks.get(key)
        if lock is None:
            lock = _thread_locks[key] = threading.Lock()
        return lock


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _head_text(seq: int, digest: str) -> str:
    return f'{{"hash":"{digest}","seq":{seq}}}\n'  # canonical JSON: a hex digest, an int


def _halves(record: dict[str, Any], floatless: bool = False) -> tuple[str, str]:
    """The canonical JSON of `record`'s keys before "hash" and after it, without braces.

    The chain's "event" sorts before "hash" and "prev", "seq", "ts" after, so neither half is
    empty, `{low,high}` is `canonical_json(record)` and `{low,"hash":...,high}` is the line
    once the hash is in: one encode for both. `floatless`: the record is JSON data without a
    float (`json_data`), so the fast exact encoder writes it."""
    low = canonical_json({k: v for k, v in record.items() if k < "hash"}, floatless=floatless)
    high = canonical_json({k: v for k, v in record.items() if k > "hash"}, floatless=floatless)
    return low[1:-1], high[1:-1]


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        text = _head_path(path).read_bytes().decode("utf-8")
        data = json.loads(text)
        head = int(data["seq"]), str(data["hash"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"the head file {_head_path(path).name!r} is unreadable ({exc})"
        raise AuditChainBroken(msg, path=str(path), line=None) from None
    if text != _head_text(*head):
        msg = f"the head file {_head_path(path).name!r} is not in canonical form (it was edited)"
        raise AuditChainBroken(msg, path=str(path), line=None)
    return head


def _stamp(head: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the head file: an edit of the head changes it."""
    try:
        st = os.stat(head)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _last_line(fd: int) -> bytes:
    size = os.lseek(fd, 0, os.SEEK_END)
    block = b""
    pos = size
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        block = os.pread(fd, step, pos) + block
        stripped = block.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    return block.rstrip(b"\n")


class _Fds:
    """The log's and the head's descriptors, kept open between appends by one process.

    Opening and closing both files was four of an append's ten system calls. The log's is
    checked against the path under the lock at every append (a log moved away or replaced is
    opened again), the head's is used only while the head is known to be the file it names,
    and a forked child opens its own (a shared open file would share the `flock`)."""

    __slots__ = ("head", "log", "log_id", "pid")

    def __init__(self) -> None:
        self.pid = 0
        self.log = -1
        self.log_id: tuple[int, int] = (0, 0)
        self.head = -1

    def mine(self) -> bool:
        """True when the descriptors were opened by this process (else they are forgotten)."""
        if self.pid == current_pid():
            return True
        self.log = self.head = -1  # a forked child's copies: left to the parent
        self.pid = current_pid()
        return False

    def close_log(self) -> None:
        if self.log >= 0:
            with contextlib.suppress(OSError):
                os.close(self.log)
            self.log = -1

    def close_head(self) -> None:
        if self.head >= 0:
            with contextlib.suppress(OSError):
                os.close(self.head)
            self.head = -1

    def close(self) -> None:
        if self.pid == current_pid():
            self.close_log()
            self.close_head()


class AuditLog:
    """An append-only, hash-chained JSONL audit log.

    Args:
        path: The log file (created with its folder on the first append).
        redactor: Applied to every field before writing; default: `default_redactor()`;
            None: no redaction.
        fsync: Flush each record to disk before returning (slower, survives power loss).

    Example:
        >>> import tempfile
        >>> log = AuditLog(Path(tempfile.mkdtemp()) / "audit.jsonl")
        >>> log.append("policy_decision", tool="send_email", decision="deny")["seq"]
        1
        >>> verify(log.path).ok
        True
    """

    def __init__(
        self, path: str | Path, *, redactor: Redactor | Unset | None = UNSET, fsync: bool = False
    ) -> None:
        self.path = Path(path).absolute()
        self._redactor = default_redactor() if isinstance(redactor, Unset) else redactor
        self._fsync = fsync
        self._file = str(self.path)
        self._head_file = str(_head_path(self.path))
        self._lock = _thread_lock(self.path)
        # (log size, seq, hash, head stamp) right after this object's last append.
        self._known: tuple[int, int, str, tuple[int, int, int] | None] | None = None
        self._fds = _Fds()
        weakref.finalize(self, self._fds.close)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, event: str, **fields: Any) -> dict[str, Any]:  # Any: JSON-like values
        """Append one record and return it as written.

        Raises:
            UsageError: `event` is empty or a field uses a reserved name.
            AuditChainBroken: the head file is unreadable (the log was tampered with).
            StoreError: the log cannot be written.
        """
        return self.append_many([(event, fields)])[0]

    def append_many(self, records: Iterable[tuple[str, Mapping[str, Any]]]
                    ) -> list[dict[str, Any]]:  # Any: JSON-like values
        """Append several records under one lock, one tail read and one head write.

        The chain is exactly what as many `append` calls would write; all lines go out in one
        `write`, so a crash leaves either none of them or a prefix that `verify` accepts.

        Raises:
            UsageError: an event is empty or a field uses a reserved name (nothing is written).
            AuditChainBroken: the head file is unreadable (the log was tampered with).
            StoreError: the log cannot be written.
        """
        bodies: list[tuple[str, dict[str, Any], bool]] = []
        for event, fields in records:
            if not isinstance(event, str) or not event:  # pyright: ignore[reportUnnecessaryIsInstance]
                msg = f"Audit event must be a non-empty str, got {event!r}."
                raise UsageError(msg, hint="Use one of the event constants in `agentnb.audit`.")
            clash = _RESERVED & fields.keys()
            if clash:
                msg = f"Audit fields {sorted(clash)!r} are reserved for the chain."
                raise UsageError(msg, hint="Rename the field, e.g. `tool_seq=`.")
            # The fields as JSON data (what the line will say); redaction replaces strings
            # only, and the chain adds strings and an int, so a float-free body stays so.
            # Plain fields (what the runtime writes) are that data already: one walk checks
            # and redacts them (`redact_plain`), or without a redactor checks them (`_plain`).
            redactor = self._redactor
            try:
                if redactor is None:
                    plain_body = dict(fields) if _plain(fields) else None
                else:
                    plain_body = redactor.redact_plain(dict(fields) if type(fields) is not dict
                                                       else fields)
            except RecursionError:  # a cycle or deep nesting: `json_data` says what it is
                plain_body = None
            if plain_body is not None:
                bodies.append((event, plain_body, True))
                continue
            try:
                body, floatless = json_data(dict(fields))
            except (ValueError, TypeError, RecursionError) as exc:
                msg = (f"Audit record {event!r} holds a value that cannot be written as JSON "
                       f"({type(exc).__name__}: {exc}); nothing was written.")
                raise UsageError(msg, hint="Pass plain values (text, numbers, lists, dicts); "
                                 "a value must not contain itself.") from None
            if self._redactor is not None:
                body = self._redactor.redact_obj(body)
            bodies.append((event, body, floatless))
        if not bodies:
            return []
        out: list[dict[str, Any]] = []
        try:
            with self._locked() as (fd, size):
                known = self._known
                # Our own last append is still the end of the file and the head is the file we
                # wrote (no other writer appended since, nobody edited the head): the tail is
                # what we wrote, so it is not read back.
                ours = (known is not None and known[0] == size
                        and known[3] == _stamp(self._head_file))
                if ours:
                    seq, prev = known[1], known[2]  # type: ignore[index]
                else:
                    seq, prev = self._tail(fd)
                lines: list[bytes] = []
                ts = datetime.now(UTC).isoformat()
                for event, body, floatless in bodies:
                    seq += 1
                    record = {**body, "seq": seq, "ts": ts, "event": event, "prev": prev}
                    done = _line(record, prev) if floatless else None
                    if done is None:
                        low, high = _halves(record, floatless)
                        digest = hashlib.sha256(f"{prev}{{{low},{high}}}".encode()).hexdigest()
                        line = f'{{{low},"hash":"{digest}",{high}}}\n'.encode()
                    else:
                        digest, line = done
                    record["hash"] = digest
                    lines.append(line)
                    out.append(record)
                    prev = digest
                data = b"".join(lines)
                self._known = None
                os.write(fd, data)
                if self._fsync:
                    os.fsync(fd)
                self._known = (size + len(data), seq, prev,
                               self._write_head(seq, prev, reuse=ours))
        except OSError as exc:
            msg = f"Cannot append to audit log {str(self.path)!r}: {exc}."
            raise StoreError(msg, path=str(self.path),
                             hint="Check that the folder exists and is writable.") from exc
        return out

    async def aappend(self, event: str, **fields: Any) -> dict[str, Any]:  # Any: JSON-like
        """`append` in a worker thread, for use on the event loop."""
        return await asyncio.to_thread(self.append, event, **fields)

    def head(self) -> tuple[int, str]:
        """The last (seq, hash), or (0, GENESIS) for a new log."""
        return _read_head(self.path) or (0, GENESIS)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[tuple[int, int]]:
        """The log's descriptor, locked (thread lock and `flock`), and the log's size."""
        with self._lock:
            fd, size = self._lock_log()
            try:
                yield fd, size
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_log(self) -> tuple[int, int]:
        fds = self._fds
        fds.mine()
        while True:
            if fds.log < 0:
                try:
                    fd = os.open(self._file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                except FileNotFoundError:  # the folder is created on the first append
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self._file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                st = os.fstat(fd)
                fds.log, fds.log_id = fd, (st.st_dev, st.st_ino)
            if fcntl is not None:
                fcntl.flock(fds.log, fcntl.LOCK_EX)
            try:
                st = os.stat(self._file)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == fds.log_id:
                return fds.log, st.st_size
            # The path names another file now (moved away, deleted, replaced): open that one.
            fds.close_log()  # also releases the flock
            self._known = None

    def _tail(self, fd: int) -> tuple[int, str]:
        head = _read_head(self.path)
        last = _last_line(fd)
        if head is None:
            if not last:
                return 0, GENESIS
            # No head file yet (or it was lost): continue from the log; verify will say so.
            record = json.loads(last)
            return int(record["seq"]), str(record["hash"])
        if last:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(last)
                # A crash between the line and the head write: adopt the record it left.
                if (record["seq"] == head[0] + 1 and record["prev"] == head[1]
                        and record_hash(record) == record["hash"]):
                    return int(record["seq"]), str(record["hash"])
        return head

    def _write_head(self, seq: int, digest: str, *, reuse: bool = False
                    ) -> tuple[int, int, int] | None:
        """Write the head; return its stamp (see `_stamp`), None when it was renamed in.

        `reuse`: the head at the path is the one this object wrote last (its stamp matched),
        so the kept descriptor still names it."""
        head = self._head_file
        text = _head_text(seq, digest).encode()
        fds = self._fds
        if self._fsync:
            fds.close_head()
            # Survives power loss: a complete new file, flushed, then renamed over the old one.
            tmp = f"{head}.{os.getpid()}.{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, text)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, head)
            return None
        # One write at offset 0 (a process that dies cannot tear it; `seq` only grows, so the
        # new text is never shorter than the old one written here): a fifth of the cost of a
        # temporary file and a rename, which dominated an append.
        if not (reuse and fds.head >= 0 and fds.mine()):
            fds.close_head()
            fds.head = os.open(head, os.O_WRONLY | os.O_CREAT, 0o644)
        fd = fds.head
        try:
            os.pwrite(fd, text, 0)
            st = os.fstat(fd)
            if st.st_size > len(text):
                os.ftruncate(fd, len(text))
                st = os.fstat(fd)
        except OSError:
            fds.close_head()
            raise
        return st.st_ino, len(text), st.st_mtime_ns

def _check(path: Path) -> AuditReport:
    def bad(line: int, records: int, problem: str) -> AuditReport:
        return AuditReport(ok=False, records=records, line=line, problem=problem, path=str(path))

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return bad(1, 0, "the log file does not exist")
    try:
        head = _read_head(path)
    except AuditChainBroken as exc:
        head_problem: str | None = exc.message
        head = None
    else:
        head_problem = None
    lines = data.split(b"\n")
    if lines[-1] != b"":
        return bad(len(lines), len(lines) - 1 if len(lines) > 1 else 0,
                   "the last line is incomplete (no newline): the log was cut or is being "
                   "written")
    lines.pop()
    prev, seq = GENESIS, 0
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
            record = json.loads(text)
        except ValueError:
            return bad(number, seq, "not valid UTF-8 JSON")
        if not isinstance(record, dict):
            return bad(number, seq, "not a JSON object")
        if canonical_json(record) != text:
            return bad(number, seq, "not in canonical form (the line was edited)")
        missing = [k for k in ("seq", "ts", "event", "prev", "hash") if k not in record]
        if missing:
            return bad(number, seq, f"missing fields {missing!r}")
        if record["seq"] != seq + 1:
            return bad(number, seq, f"seq is {record['seq']!r}, expected {seq + 1} "
                       "(a record was removed, added or moved)")
        if record["prev"] != prev:
            return bad(number, seq, "prev does not match the previous record's hash "
                       "(a record was removed, added or moved)")
        if record_hash(record) != record["hash"]:
            return bad(number, seq, "hash does not match the record's content (it was edited)")
        prev, seq = record["hash"], record["seq"]
    if head_problem is not None:
        return bad(len(lines) + 1, seq, head_problem)
    if head is None:
        if seq == 0:
            return AuditReport(ok=True, records=0, path=str(path))
        return bad(len(lines) + 1, seq, f"the head file {_head_path(path).name!r} is missing")
    if head != (seq, prev):
        if head[0] > seq:
            problem = (f"the log ends at record {seq} but the head says {head[0]} "
                       "(records were cut from the end)")
        elif head[0] < seq:
            problem = (f"the log runs to record {seq} but the head says {head[0]} "
                       "(records were added, or a write was interrupted)")
        else:
            problem = "the last record's hash does not match the head file"
        return bad(min(seq, head[0]) + 1 if head[0] != seq else max(seq, 1), seq, problem)
    return AuditReport(ok=True, records=seq, path=str(path))


def verify(path: str | Path, *, raise_on_error: bool = False) -> AuditReport:
    """Check an audit log's chain and head; report the first bad line.

    Raises:
        AuditChainBroken: the log is bad and `raise_on_error` is true (`.line` says where).

    Example:
        >>> import tempfile
        >>> log = AuditLog(Path(tempfile.mkdtemp()) / "a.jsonl")
        >>> _ = log.append("tool_result", tool="t", status="ok")
        >>> _ = log.append("tool_result", tool="t", status="ok")
        >>> lines = log.path.read_text().splitlines()
        >>> _ = log.path.write_text(lines[1] + "\\n" + lines[0] + "\\n")
        >>> report = verify(log.path)
        >>> (report.ok, report.line)
        (False, 1)
    """
    log = Path(path)
    report = _check(log)
    if not report.ok and raise_on_error:
        msg = f"Audit log {str(log)!r} is broken at line {report.line}: {report.problem}."
        raise AuditChainBroken(msg, path=str(log), line=report.line)
    return report


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a log in order (no verification; call `verify` for that)."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
