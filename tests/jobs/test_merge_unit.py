"""Merging job records into a batch's without a kernel: trace stores, audit chains, job env."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from agentnb.governance import AuditLog, merge_audit
from agentnb.governance.audit import AUDIT_MERGE_PROBLEM, iter_records, verify
from agentnb.jobs._collect import job_home, merge_job
from agentnb.jobs._manifest import JobRecord
from agentnb.jobs._run import job_env
from agentnb.tracing import annotate, annotations, merge_store, store, traces


def _span(span_id: str, run_id: str, kind: str = "run", start: int = 1) -> tuple[object, ...]:
    attrs = json.dumps({"agentnb.run.id": run_id})
    return (span_id, f"t-{run_id}", None, run_id, kind, kind, "internal", start, start + 5, "ok",
            None, attrs, None)


def _fill(home: Path, run_id: str, spans: int) -> None:
    rows = [_span(f"{run_id}-s{i}", run_id, "run" if i == 0 else "model_call", i + 1)
            for i in range(spans)]
    store(home).write(rows, [(f"{run_id}-s0", 0, "note", 3, "{}")])
    annotate(run_id, label="good", score=1.0, home=home)


def test_merge_store_copies_every_row_once(tmp_path: Path) -> None:
    """Spans, events and annotations of two sources land in the target; a re-merge adds 0."""
    a, b, target = tmp_path / "a", tmp_path / "b", tmp_path / "batch"
    _fill(a, "run_a", 3)
    _fill(b, "run_b", 2)
    assert merge_store(a, target) == 3 + 1 + 1
    assert merge_store(b, target) == 2 + 1 + 1
    assert merge_store(a, target) == 0
    assert merge_store(b, target) == 0
    assert store(target).count_spans() == 5
    assert set(traces(home=target)["run_id"]) == {"run_a", "run_b"}
    notes = annotations(home=target)
    assert sorted(notes["target_id"]) == ["run_a", "run_b"]
    assert store(target).query("SELECT count(*) FROM events") == [(2,)]


def test_merge_store_without_source_file_adds_nothing(tmp_path: Path) -> None:
    """A job that wrote no spans has no traces.db: nothing to merge, the target is not made."""
    assert merge_store(tmp_path / "empty", tmp_path / "batch") == 0
    assert not (tmp_path / "batch" / "traces.db").exists()
    _fill(tmp_path / "same", "run_x", 1)
    assert merge_store(tmp_path / "same", tmp_path / "same") == 0


def test_merge_audit_appends_records_with_provenance_incrementally(tmp_path: Path) -> None:
    """Each source record becomes one chained target record naming its job, seq and hash."""
    job = AuditLog(tmp_path / "job" / "audit.jsonl")
    other = AuditLog(tmp_path / "other" / "audit.jsonl")
    batch = AuditLog(tmp_path / "batch" / "audit.jsonl", redactor=None)
    first = job.append("tool_result", run_id="r1", tool="lookup", status="ok")
    other.append("policy_decision", run_id="r2", tool="send", decision="deny")
    assert merge_audit(job.path, batch, source="job-0001") == 1
    assert merge_audit(other.path, batch, source="job-0002") == 1
    job.append("budget_stop", run_id="r1", limit="usd")
    assert merge_audit(job.path, batch, source="job-0001") == 1
    assert merge_audit(job.path, batch, source="job-0001") == 0
    # Without the index (or with a stale one) the target itself says what is merged already.
    Path(f"{batch.path}.sources").unlink()
    assert merge_audit(job.path, batch, source="job-0001") == 0
    batch.append("note", text="written by someone else")  # the index's head is stale now
    assert merge_audit(other.path, batch, source="job-0002") == 0
    assert verify(batch.path).ok
    records = [r for r in iter_records(batch.path) if "source" in r]
    assert [(r["source"], r["source_seq"], r["event"]) for r in records] == [
        ("job-0001", 1, "tool_result"), ("job-0002", 1, "policy_decision"),
        ("job-0001", 2, "budget_stop")]
    assert records[0]["source_hash"] == first["hash"]
    assert records[0]["tool"] == "lookup"
    assert merge_audit(tmp_path / "missing.jsonl", batch, source="job-0003") == 0


def test_merge_audit_of_a_broken_source_copies_its_good_prefix_and_notes_it(
        tmp_path: Path) -> None:
    """An edited source: records before the bad line are merged, plus one problem record."""
    job = AuditLog(tmp_path / "job" / "audit.jsonl")
    for i in range(3):
        job.append("tool_result", tool="lookup", status="ok", n=i)
    lines = job.path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"n":1', '"n":7')
    job.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = AuditLog(tmp_path / "batch" / "audit.jsonl", redactor=None)
    assert merge_audit(job.path, batch, source="job-0001") == 2
    assert merge_audit(job.path, batch, source="job-0001") == 0
    records = list(iter_records(batch.path))
    assert [r["event"] for r in records] == ["tool_result", AUDIT_MERGE_PROBLEM]
    assert records[1]["line"] == 2
    assert records[1]["records"] == 1
    assert verify(batch.path).ok


def test_merge_job_records_run_ids_and_tolerates_an_empty_home(tmp_path: Path) -> None:
    """merge_job merges a job home into the batch folder and notes its run ids once."""
    job = JobRecord(key="job-0001", params={})
    merge_job(tmp_path, job)
    assert job.run_ids == []
    assert job.merge_error is None
    home = job_home(tmp_path, job.key)
    _fill(home, "run_1", 2)
    AuditLog(home / "audit" / "audit.jsonl").append("tool_result", run_id="run_1", tool="t")
    merge_job(tmp_path, job)
    merge_job(tmp_path, job)
    assert job.run_ids == ["run_1"]
    assert job.merge_error is None
    assert verify(tmp_path / "audit" / "audit.jsonl").records == 1
    assert store(tmp_path).count_spans() == 2


def test_job_env_gives_batch_kernels_a_home_and_the_cache() -> None:
    """Batch kernels get AGENTNB_HOME and AGENTNB_CACHE=1; a single run keeps the user's."""
    common = {"job_id": "j", "job_dir": Path("/x/a"), "budget_usd": Decimal("0.1"),
              "max_steps": None, "wall_s": None, "approvals": "deny"}
    batch = job_env(**common, kind="batch", home=Path("/x/home"))
    assert batch["AGENTNB_HOME"] == "/x/home"
    assert batch["AGENTNB_CACHE"] == "1"
    single = job_env(**common)
    assert "AGENTNB_CACHE" not in single
    assert "AGENTNB_HOME" not in single
