"""What a step leaves behind until its checkpoint: recordings and audit records.

A step used to hand each of them to a writer thread on its own and wait: at C=1 that was
about twenty thread hops per four-call run, each a futex wake and a loop wake-up. A run now
collects them here and the step's checkpoint writes them all in one group commit (the audit
records appended just before the checkpoint's transaction; see `RunStore.asave_checkpoint`).

What the wait bought is kept where it matters: a tool whose effects go beyond `read` still
records its result the moment it returns (`Run.record_now`), and a step that fails or is
cancelled before its checkpoint writes what it collected synchronously (`flush_sync`), so a
resumed run never pays twice for a model call or repeats a tool call it already made. The
policy's decisions land in the audit log with the checkpoint of the step that proposed the
calls, before the step that runs them.

A checkpoint that guards nothing paid for can go one step further: the initial checkpoint
(nothing done yet), and a tools step whose calls all declare no effect beyond `read` and that
made no model call (no delegate, no agent inside a tool), are kept here (`held`) while the run
is driven to its end, and the next step's checkpoint writes both in one transaction and one
audit append. A crash in between loses only calls that read, which the resumed run makes
again, or a run that had done nothing; nothing is paid twice and no side effect is repeated.
Every way out of a step that skips its checkpoint writes the held one first (`flush_sync`),
and a run driven one `step()` at a time never holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from agentnb.runtime._checkpoint import RecordKind, RunStore

__all__ = ["HeldCheckpoint", "StepJournal"]

Recording = tuple["RecordKind", str, int, "Mapping[str, Any]"]
AuditRecord = tuple[str, dict[str, Any]]


class HeldCheckpoint(NamedTuple):
    """A step's checkpoint kept for the next step's transaction (see the module docstring)."""

    step: int
    text: str
    status: str
    recordings: list[Recording]
    audits: list[AuditRecord]


class StepJournal:
    """The recordings and audit records of the current step, written with its checkpoint.

    Example:
        >>> j = StepJournal()
        >>> j.record("model", "k1", 1, {"response": {}})
        >>> j.audit([("tool_result", {"run_id": "r1", "status": "ok"})])
        >>> recordings, audits = j.take()
        >>> (len(recordings), len(audits), j.empty)
        (1, 1, True)
    """

    __slots__ = ("_audits", "_recordings", "held", "may_hold")

    def __init__(self) -> None:
        self._recordings: list[Recording] = []
        self._audits: list[AuditRecord] = []
        self.held: HeldCheckpoint | None = None
        """The previous step's checkpoint, when it waits for this step's."""
        self.may_hold = False
        """Set by a step that only read and paid nothing; cleared as each step starts."""

    @property
    def empty(self) -> bool:
        """True when nothing waits for the checkpoint."""
        return not self._recordings and not self._audits and self.held is None

    def record(self, kind: RecordKind, key: str, occurrence: int,
               payload: Mapping[str, Any]) -> None:
        """Keep a recording (already redacted) for the step's checkpoint."""
        self._recordings.append((kind, key, occurrence, payload))

    def audit(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Keep audit records (redacted by the audit log when written)."""
        self._audits.extend(records)

    def take(self) -> tuple[list[Recording], list[AuditRecord]]:
        """Hand over and forget what was kept: (recordings, audit records)."""
        out = self._recordings, self._audits
        self._recordings, self._audits = [], []
        return out

    def flush_held(self, store: RunStore, run_id: str, home: Path, *, agent: str,
                   parent_run_id: str | None) -> None:
        """Write the held checkpoint (with its own records) now, blocking; the current step's
        records stay for its checkpoint. For a reader that needs the row (`Run.rewind`)."""
        from agentnb.runtime import _hooks

        held, self.held = self.held, None
        if held is None:
            return
        try:
            if held.audits:
                _hooks.audit_log(home).append_many(held.audits)
        finally:
            for kind, key, occurrence, payload in held.recordings:
                store.record(run_id, kind, key, occurrence, payload)
            store.save_checkpoint(run_id, held.step, held.text, status=held.status, agent=agent,
                                  parent_run_id=parent_run_id)

    def flush_sync(self, store: RunStore, run_id: str, home: Path, *, agent: str,
                   parent_run_id: str | None) -> None:
        """Write what was kept now, blocking: for a step that ends without its checkpoint.

        Called on the error path only (a failed or cancelled step), where an await could be
        cancelled again. A held checkpoint goes first (`flush_held`); the audit records go
        before the recordings, as with a checkpoint.
        """
        from agentnb.runtime import _hooks

        try:
            self.flush_held(store, run_id, home, agent=agent, parent_run_id=parent_run_id)
        finally:
            recordings, audits = self.take()
            try:
                if audits:
                    _hooks.audit_log(home).append_many(audits)
            finally:
                for kind, key, occurrence, payload in recordings:
                    store.record(run_id, kind, key, occurrence, payload)
