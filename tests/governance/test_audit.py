"""Audit log: hash chain, head file, tamper detection (property tests), concurrent appends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import AuditChainBroken, StoreError, UsageError, run_sync
from agentnb.governance import AuditLog, Redactor, audit
from agentnb.governance.audit import GENESIS, iter_records, record_hash, verify

ROOT = Path(__file__).resolve().parents[2]


def _build_log(folder: Path) -> tuple[bytes, bytes]:
    log = AuditLog(folder / "audit.jsonl", redactor=None)
    log.append(audit.TOOL_CALL_REQUESTED, run_id="run_1", call_id="c1", tool="send_email",
               arguments={"to": "bob@example.com", "body": "héllo ✓"}, reason="asked")
    log.append(audit.POLICY_DECISION, run_id="run_1", call_id="c1", tool="send_email",
               decision="approve", rule="approve:network", ctl="\x1f\x00tab\t", n=1.5)
    log.append(audit.APPROVAL, run_id="run_1", call_id="c1", decision="approve",
               approver="parameters:allow", sticky=False, message=None)
    log.append(audit.TOOL_RESULT, run_id="run_1", call_id="c1", status="ok", nested=[1, [2, {}]])
    log.append(audit.BUDGET_STOP, run_id="run_1", limit="0.10", spent="0.09", requested="0.05",
               scope="run")
    return log.path.read_bytes(), (folder / "audit.jsonl.head").read_bytes()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    return _build_log(tmp_path_factory.mktemp("audit"))


def _verify_bytes(data: bytes, head: bytes) -> audit.AuditReport:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        path.write_bytes(data)
        (Path(folder) / "audit.jsonl.head").write_bytes(head)
        return verify(path)


def test_untouched_log_verifies(pristine: tuple[bytes, bytes]) -> None:
    """A log as written verifies, with every record counted."""
    report = _verify_bytes(*pristine)
    assert (report.ok, report.records, report.line, report.problem) == (True, 5, None, None)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_detected(pristine: tuple[bytes, bytes],
                                            data: st.DataObject) -> None:
    """Changing any one byte of the log to any other value makes verify fail."""
    log, head = pristine
    position = data.draw(st.integers(0, len(log) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != log[position]), label="byte")
    changed = log[:position] + bytes([value]) + log[position + 1:]
    report = _verify_bytes(changed, head)
    assert not report.ok
    assert report.line is not None
    assert report.line <= changed.count(b"\n") + 1


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_of_the_head_is_detected(pristine: tuple[bytes, bytes],
                                                        data: st.DataObject) -> None:
    """Changing any one byte of the head file makes verify fail."""
    log, head = pristine
    position = data.draw(st.integers(0, len(head) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != head[position]))
    assert not _verify_bytes(log, head[:position] + bytes([value]) + head[position + 1:]).ok


@settings(max_examples=50, deadline=None)
@given(index=st.integers(0, 4))
def test_any_deleted_line_is_detected(pristine: tuple[bytes, bytes], index: int) -> None:
    """Removing any one record is reported at the line where the gap shows."""
    log, head = pristine
    lines = log.splitlines(keepends=True)
    del lines[index]
    report = _verify_bytes(b"".join(lines), head)
    assert not report.ok
    assert report.line == index + 1


@settings(max_examples=50, deadline=None)
@given(pair=st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True))
def test_any_swapped_lines_are_detected(pristine: tuple[bytes, bytes], pair: list[int]) -> None:
    """Swapping two records is reported at the first of them."""
    log, head = pristine
    lines = log.splitlines(keepends=True)
    i, j = sorted(pair)
    lines[i], lines[j] = lines[j], lines[i]
    report = _verify_bytes(b"".join(lines), head)
    assert not report.ok
    assert report.line == i + 1


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_truncated_tail_is_detected(pristine: tuple[bytes, bytes], data: st.DataObject) -> None:
    """Cutting the log anywhere (mid-line or at a line boundary, even to empty) is detected."""
    log, head = pristine
    cut = data.draw(st.integers(0, len(log) - 1))
    report = _verify_bytes(log[:cut], head)
    assert not report.ok
    assert report.problem is not None


def test_truncation_at_a_line_boundary_names_the_head(pristine: tuple[bytes, bytes]) -> None:
    """A log cut cleanly after record 3 is caught by the head, at line 4."""
    log, head = pristine
    lines = log.splitlines(keepends=True)
    report = _verify_bytes(b"".join(lines[:3]), head)
    assert (report.ok, report.records, report.line) == (False, 3, 4)
    assert report.problem is not None
    assert "cut" in report.problem


def test_verify_can_raise(pristine: tuple[bytes, bytes], tmp_path: Path) -> None:
    """`raise_on_error=True` raises AuditChainBroken with the path and line."""
    log, head = pristine
    lines = log.splitlines(keepends=True)
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines[0] + lines[2] + lines[1] + lines[3] + lines[4])
    (tmp_path / "a.jsonl.head").write_bytes(head)
    with pytest.raises(AuditChainBroken) as info:
        verify(path, raise_on_error=True)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert verify(path).path == str(path)


def test_record_shape_and_chain(tmp_path: Path) -> None:
    """Records carry seq, ts, event, prev and hash; hash = sha256(prev + canonical body)."""
    log = AuditLog(tmp_path / "sub" / "audit.jsonl", redactor=None)
    first = log.append("policy_decision", tool="t", decision="deny")
    second = log.append("tool_result", tool="t", status="denied")
    assert first["seq"] == 1
    assert first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    assert record_hash(second) == second["hash"]
    assert log.head() == (2, second["hash"])
    assert list(iter_records(log.path)) == [first, second]
    assert repr(log) == f"AuditLog({str(log.path)!r})"


def test_reserved_fields_and_bad_events_are_refused(tmp_path: Path) -> None:
    """Fields named like the chain's own keys, and empty events, are usage errors."""
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(UsageError, match="'hash'"):
        log.append("x", hash="abc")
    with pytest.raises(UsageError, match="non-empty"):
        log.append("")


def test_fields_are_redacted_before_writing(tmp_path: Path) -> None:
    """A secret in any field never reaches the file; the default redactor is used by default."""
    secret = "sk-proj-" + "Q" * 40
    log = AuditLog(tmp_path / "a.jsonl")
    log.append("tool_call_requested", arguments={"key": secret, "headers": {"api_key": "zzz"}})
    custom = AuditLog(tmp_path / "b.jsonl", redactor=Redactor(env={}, values=["canary-123"]))
    custom.append("tool_result", output="the canary-123 sang")
    text = log.path.read_text() + custom.path.read_text()
    assert secret not in text
    assert "zzz" not in text
    assert "canary-123" not in text
    assert verify(log.path).ok
    assert verify(custom.path).ok


def test_async_append(tmp_path: Path) -> None:
    """`aappend` writes from a worker thread and chains like `append`."""
    log = AuditLog(tmp_path / "a.jsonl", fsync=True)

    async def go() -> None:
        for i in range(3):
            await log.aappend("tool_result", i=i)

    run_sync(go())
    assert verify(log.path).records == 3


def test_missing_and_empty_logs(tmp_path: Path) -> None:
    """A missing log fails; an empty new log passes; a log without its head fails."""
    assert verify(tmp_path / "nope.jsonl").problem == "the log file does not exist"
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert verify(empty).ok
    log = AuditLog(tmp_path / "a.jsonl")
    log.append("x")
    (tmp_path / "a.jsonl.head").unlink()
    report = verify(log.path)
    assert (report.ok, report.line) == (False, 2)
    assert report.problem is not None
    assert "missing" in report.problem
    log.append("y")  # continues from the log itself when the head is gone
    assert verify(log.path).records == 2


def test_interrupted_write_is_reported_and_then_adopted(tmp_path: Path) -> None:
    """A record written without its head update is flagged, and the next append adopts it."""
    log = AuditLog(tmp_path / "a.jsonl")
    log.append("a")
    old_head = (tmp_path / "a.jsonl.head").read_bytes()
    log.append("b")
    (tmp_path / "a.jsonl.head").write_bytes(old_head)  # as if the process died before the head
    report = verify(log.path)
    assert (report.ok, report.line) == (False, 2)
    log.append("c")
    assert verify(log.path).records == 3


def test_append_after_truncation_stays_detectable(tmp_path: Path) -> None:
    """Appending to a truncated log does not hide the cut: the new record links to the head."""
    log = AuditLog(tmp_path / "a.jsonl")
    for event in "abc":
        log.append(event)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(lines[0])
    log.append("d")
    report = verify(log.path)
    assert (report.ok, report.line) == (False, 2)


def test_tampered_head_blocks_appends(tmp_path: Path) -> None:
    """An unreadable head file makes append raise AuditChainBroken instead of guessing."""
    log = AuditLog(tmp_path / "a.jsonl")
    log.append("a")
    (tmp_path / "a.jsonl.head").write_text("garbage")
    with pytest.raises(AuditChainBroken):
        log.append("b")
    assert "unreadable" in str(verify(log.path).problem)


def test_unwritable_log_is_a_store_error(tmp_path: Path) -> None:
    """A log path whose folder is a file raises StoreError naming the path."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="file"):
        AuditLog(tmp_path / "file" / "a.jsonl").append("x")


def test_concurrent_appends_from_threads(tmp_path: Path) -> None:
    """Eight threads appending at once produce one valid chain with every record."""
    log = AuditLog(tmp_path / "a.jsonl")
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(25):
            AuditLog(log.path).append("tool_result", worker=n, i=i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(log.path)
    assert (report.ok, report.records) == (True, 200)
    pairs = {(r["worker"], r["i"]) for r in iter_records(log.path)}
    assert len(pairs) == 200


CHILD = """
import sys
from agentnb.governance import AuditLog
log = AuditLog(sys.argv[1], redactor=None)
for i in range(int(sys.argv[3])):
    log.append("tool_result", proc=sys.argv[2], i=i)
"""


def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    """Two processes appending to the same log (flock) produce one valid chain."""
    path = tmp_path / "a.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), name, "60"], env=env)
             for name in ("p1", "p2")]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    report = verify(path)
    assert (report.ok, report.records) == (True, 120)
    by_proc = [json.loads(line)["proc"] for line in path.read_text().splitlines()]
    assert by_proc.count("p1") == by_proc.count("p2") == 60


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_appends_with_its_own_descriptors(tmp_path: Path) -> None:
    """A log object that appended before a fork is used by parent and child at once: the
    child opens its own file (a shared one would share the flock), so the chain holds."""
    log = AuditLog(tmp_path / "a.jsonl", redactor=None)
    log.append("x", who="parent", i=-1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 0
        try:
            for i in range(400):
                log.append("x", who="child", i=i)
        except BaseException:
            code = 1
        os._exit(code)
    for i in range(400):
        log.append("x", who="parent", i=i)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    report = verify(log.path)
    assert (report.ok, report.records) == (True, 801)


def test_a_log_moved_away_between_appends_is_not_written_through_the_old_file(
        tmp_path: Path) -> None:
    """The log and head renamed away (rotated): the next append starts a new log at the
    path; the moved files keep exactly what they had, and both chains verify."""
    log = AuditLog(tmp_path / "a.jsonl", redactor=None)
    log.append("x", i=1)
    log.append("x", i=2)
    os.replace(tmp_path / "a.jsonl", tmp_path / "old.jsonl")
    os.replace(tmp_path / "a.jsonl.head", tmp_path / "old.jsonl.head")
    assert log.append("x", i=3)["seq"] == 1
    assert [r["i"] for r in iter_records(tmp_path / "old.jsonl")] == [1, 2]
    assert [r["i"] for r in iter_records(log.path)] == [3]
    assert verify(tmp_path / "old.jsonl").ok
    assert verify(log.path).ok


def test_public_module_surface() -> None:
    """`agentnb.governance.audit.verify` exists and the event names are stable strings."""
    assert audit.verify is verify
    assert [audit.TOOL_CALL_REQUESTED, audit.POLICY_DECISION, audit.APPROVAL, audit.TOOL_RESULT,
            audit.BUDGET_STOP] == ["tool_call_requested", "policy_decision", "approval",
                                   "tool_result", "budget_stop"]
    assert audit.__all__ == sorted(audit.__all__, key=str.casefold)


def test_two_writers_on_one_log_keep_one_chain(tmp_path: Path) -> None:
    """Appends alternating between two AuditLog objects on one file (as two processes would)
    chain onto each other: a writer notices the other's records instead of trusting its own
    memory of the tail."""
    a, b = AuditLog(tmp_path / "a.jsonl"), AuditLog(tmp_path / "a.jsonl")
    for i in range(5):
        assert a.append("x", i=i)["seq"] == 2 * i + 1
        assert b.append_many([("y", {"i": i})])[0]["seq"] == 2 * i + 2
    report = verify(a.path)
    assert report.ok
    assert report.records == 10
    assert a.head() == (10, [*iter_records(a.path)][-1]["hash"])


_KEY = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6).filter(
    lambda k: k not in ("seq", "ts", "event", "prev", "hash"))
_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                      | st.floats(allow_nan=False, allow_infinity=False),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(fields=st.lists(st.dictionaries(_KEY, _VALUE, max_size=5), min_size=1, max_size=4))
def test_lines_are_the_canonical_records_with_their_hashes(fields: list[dict[str, object]]
                                                           ) -> None:
    # The line is built from two halves of the record around "hash" (keys like "has", "hashy",
    # "H" and non-ASCII sort on either side); it must be exactly canonical_json(record).
    from agentnb.core import canonical_json

    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog(Path(tmp) / "audit.jsonl", redactor=None)
        written = log.append_many([("evt", f) for f in fields])
        lines = (Path(tmp) / "audit.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
        assert lines == [canonical_json(r) for r in written]
        assert all(record_hash(r) == r["hash"] for r in written)
        assert verify(Path(tmp) / "audit.jsonl").ok


def test_a_value_that_is_not_json_is_one_usage_error(tmp_path: Path) -> None:
    """A field that contains itself is refused before anything is written."""
    log = AuditLog(tmp_path / "a.jsonl")
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(UsageError, match="'x' holds a value that cannot be written as JSON"):
        log.append_many([("ok", {"i": 1}), ("x", {"a": loop})])
    assert not log.path.exists()
    assert log.append("y", big=2**70)["big"] == 2**70  # an integer beyond 64 bits stays exact


@pytest.mark.parametrize("fields", [
    {"nested": {"hash": "\x00agentnb:audit-hash\x00"}},  # the fast path's stand-in text itself
    {"a": "\x00agentnb:audit-hash\x00", "z": ["\x00agentnb:audit-hash\x00"]},
    {"edge": [2**64 - 1, -(2**63)], "beyond": 2**64, "below": -(2**63) - 1},
    {"deep": {"hash": "", "x": [{"hash": "h"}]}, "H": 1, "has": True, "hashy": None},
    {"t": (1, 2), "s": "\u2028é\"\\"},  # a tuple is not plain: the general way writes it
])
def test_fast_and_general_lines_agree_on_edge_records(fields: dict[str, object],
                                                      tmp_path: Path) -> None:
    """Plain records are written in one encode with a stand-in for the hash; the lines must
    be the canonical records whatever the fields hold (the stand-in's own text included)."""
    from agentnb.core import canonical_json

    log = AuditLog(tmp_path / "audit.jsonl", redactor=None)
    written = log.append_many([("evt", fields), ("evt", {"k": 1})])
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == [canonical_json(r) for r in written]
    assert all(record_hash(r) == r["hash"] for r in written)
    assert verify(tmp_path / "audit.jsonl").ok
