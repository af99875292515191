"""Merge one audit chain into another: a batch job's `audit.jsonl` into the batch's chain.

Each record of the source is appended to the target, in order, as a new record of the target's
chain with the same event and fields plus where it came from: `source` (a label such as the
job's key), `source_seq`, `source_ts` and `source_hash` (its place in the source chain). The
target stays one valid chain (`verify` passes), and the source hashes let an auditor check the
copy against the job's own log.

Merging is incremental and idempotent: records of a source already in the target (by
`source` and `source_seq`) are skipped, so the coordinator may merge a job's log after every
attempt. An index beside the target, `<log>.sources`, saves re-reading the target each time;
it is trusted only while the head it recorded is the log's head. The source is verified
first; only its verified prefix is copied, and a broken source adds one `audit_merge_problem`
record that says where and why (once per problem).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Final

from agentnb.core import canonical_json
from agentnb.governance._audit import GENESIS, AuditLog, iter_records, record_hash, verify

__all__ = ["AUDIT_MERGE_PROBLEM", "merge_audit"]

AUDIT_MERGE_PROBLEM: Final = "audit_merge_problem"
"""A merged source chain did not verify: source, line, problem, records (the good prefix)."""

_CHAIN = frozenset({"seq", "ts", "event", "prev", "hash"})
_PROVENANCE = ("source", "source_seq", "source_ts", "source_hash")


def _index_path(target: Path) -> Path:
    return target.with_name(target.name + ".sources")


def _scan(target: Path) -> dict[str, Any]:
    """What the target holds per source, read from the whole log."""
    sources: dict[str, Any] = {}
    if not target.is_file():
        return sources
    for record in iter_records(target):
        label = record.get("source")
        if not isinstance(label, str):
            continue
        entry = sources.setdefault(label, {"seq": 0, "problems": []})
        if record.get("event") == AUDIT_MERGE_PROBLEM:
            entry["problems"].append([record.get("line"), record.get("problem")])
        elif isinstance(record.get("source_seq"), int):
            entry["seq"] = max(entry["seq"], record["source_seq"])
    return sources


def _merged_so_far(target_log: AuditLog) -> dict[str, Any]:
    """Per source: the last `source_seq` copied and the problems noted.

    Read from `<log>.sources`, an index the merge keeps beside the target, when its recorded
    head matches the log's (so a batch of a thousand jobs does not re-read the log per job);
    otherwise from the log itself.
    """
    head = list(target_log.head())
    with contextlib.suppress(OSError, ValueError, TypeError):
        index = json.loads(_index_path(target_log.path).read_text(encoding="utf-8"))
        if index.get("head") == head and isinstance(index.get("sources"), dict):
            return index["sources"]
    return _scan(target_log.path)


def _save_index(target_log: AuditLog, sources: dict[str, Any]) -> None:
    path = _index_path(target_log.path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps({"head": list(target_log.head()), "sources": sources}),
                       encoding="utf-8")
        os.replace(tmp, path)


def _verified_records(path: Path) -> list[dict[str, Any]]:
    """The records of a log up to (not including) its first bad line."""
    good: list[dict[str, Any]] = []
    prev, seq = GENESIS, 0
    data = path.read_bytes()
    for raw in data.split(b"\n")[:-1]:  # a last line without a newline is incomplete
        try:
            text = raw.decode("utf-8")
            record = json.loads(text)
        except ValueError:
            break
        if (not isinstance(record, dict) or canonical_json(record) != text
                or record.get("seq") != seq + 1 or record.get("prev") != prev
                or record.get("hash") != record_hash(record)):
            break
        good.append(record)
        prev, seq = record["hash"], record["seq"]
    return good


def merge_audit(source_path: str | Path, target_log: AuditLog, *,
                source: str | None = None) -> int:
    """Append the records of the audit log at `source_path` to `target_log`'s chain.

    Args:
        source_path: A job's `audit/audit.jsonl`; a missing file adds nothing.
        target_log: The batch's `AuditLog`.
        source: The label stored in each copied record's `source` field; default the source
            path. Use a stable label (the job's key): it is what makes merging idempotent.

    Returns:
        How many records were appended (copied records plus any `audit_merge_problem`).

    Raises:
        AuditChainBroken: the target's head file is unreadable.
        StoreError: the target cannot be written.

    Example:
        >>> import tempfile
        >>> from agentnb.governance.audit import verify
        >>> folder = Path(tempfile.mkdtemp())
        >>> job = AuditLog(folder / "job" / "audit.jsonl")
        >>> _ = job.append("tool_result", tool="lookup", status="ok")
        >>> batch = AuditLog(folder / "batch" / "audit.jsonl")
        >>> merge_audit(job.path, batch, source="job-0001"), merge_audit(job.path, batch,
        ...                                                              source="job-0001")
        (1, 0)
        >>> verify(batch.path).ok
        True
    """
    path = Path(source_path)
    if not path.is_file():
        return 0
    label = source if source is not None else str(path.absolute())
    report = verify(path)
    records = _verified_records(path)
    sources = _merged_so_far(target_log)
    entry = sources.setdefault(label, {"seq": 0, "problems": []})
    added = 0
    for record in records[entry["seq"]:]:
        fields = {k: v for k, v in record.items() if k not in _CHAIN and k not in _PROVENANCE}
        # A source record's own provenance (a merged log merged again) is kept, renamed.
        fields.update({f"inner_{k}": record[k] for k in _PROVENANCE if k in record})
        target_log.append(str(record["event"]), **fields, source=label,
                          source_seq=record["seq"], source_ts=record.get("ts"),
                          source_hash=record["hash"])
        entry["seq"] = record["seq"]
        added += 1
    if not report.ok and [report.line, report.problem] not in entry["problems"]:
        target_log.append(AUDIT_MERGE_PROBLEM, source=label, line=report.line,
                          problem=report.problem, records=len(records))
        entry["problems"].append([report.line, report.problem])
        added += 1
    if added:
        _save_index(target_log, sources)
    return added
