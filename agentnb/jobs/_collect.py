"""A batch job's records into the batch's: spans into `traces.db`, audit into its chain.

Every attempt of a job runs with the job's own agentnb home, `runs/<batch-id>/jobs/<key>/home/`
(no SQLite file is shared between jobs, so jobs may run on other machines). When an attempt
ends, whatever its status, the coordinator merges that home's `traces.db` into the batch
folder's and its `audit/audit.jsonl` into the batch's chain; both merges skip what is already
there, so merging after every attempt copies each row and record once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentnb.core import AgentnbError

if TYPE_CHECKING:
    from agentnb.jobs._manifest import JobRecord

__all__ = ["job_home", "merge_job"]


def job_home(batch_dir: Path, key: str) -> Path:
    """The agentnb home every attempt of a job shares: `jobs/<key>/home/`."""
    return batch_dir / "jobs" / key / "home"


def merge_job(batch_dir: Path, job: JobRecord) -> None:
    """Merge a job's spans and audit records into the batch's; note the job's run ids.

    Idempotent (rows and records already merged are skipped), so it runs after every attempt.
    A failure is recorded on the job (`merge_error`), never raised: the job's own files stay.
    """
    from agentnb.governance import AuditLog, merge_audit
    from agentnb.tracing import merge_store

    home = job_home(batch_dir, job.key)
    problems: list[str] = []
    try:
        merge_store(home, batch_dir)
        runs = _run_ids(home)
        job.run_ids = [*job.run_ids, *(r for r in runs if r not in job.run_ids)]
    except AgentnbError as exc:
        problems.append(f"traces: {exc}")
    try:
        merge_audit(home / "audit" / "audit.jsonl",
                    AuditLog(batch_dir / "audit" / "audit.jsonl", redactor=None),
                    source=job.key)
    except AgentnbError as exc:
        problems.append(f"audit: {exc}")
    job.merge_error = "; ".join(problems) or None


def _run_ids(home: Path) -> list[str]:
    """The ids of the runs in a home's `traces.db`, oldest first (none without the file)."""
    import sqlite3

    from agentnb.core import StoreError

    path = home / "traces.db"
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(path, timeout=30.0)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'"
                            ).fetchone() is None:
                return []
            rows = conn.execute("SELECT run_id FROM spans WHERE kind = 'run' AND run_id IS NOT "
                                "NULL GROUP BY run_id ORDER BY min(start_ns)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot read the run ids of {str(path)!r}: {exc}.",
                         path=str(path)) from None
    return [str(r[0]) for r in rows]
