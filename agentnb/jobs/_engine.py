"""The papermill engine `agentnb`: papermill's nbclient engine plus the job's budget and wall time.

Registered on the `papermill.engine` entry point (and, as a fallback, by `run_notebook` itself).
Between cells it reads the kernel's `ledger.json` (see `agentnb.runtime._job`), writes the
spend of the cell into `cell.metadata.agentnb` and the job's totals into `nb.metadata.agentnb`,
and stops executing when the ledger says the budget stopped the job, when a cell raised one of
agentnb's kill-switch errors, when the batch's stop flag appears, or when the whole notebook's
wall time runs out (each cell's timeout is the wall time left).

The classes subclass papermill's, and papermill loads its entry points while it is being
imported, so they are built on first attribute access (module `__getattr__`): whichever of
papermill and this module is imported first, neither sees the other half-initialised.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentnb.runtime._job import Ledger, read_ledger

__all__ = ["STOP_ENAMES", "clean_exit", "engine_class"]

STOP_ENAMES: dict[str, str] = {
    "BudgetExceeded": "budget",
    "WallTimeExceeded": "wall_time",
    "StopRequested": "stop_requested",
}
"""Errors raised in a cell that mean "a kill switch stopped the job", not "the notebook failed"."""

_CLEAN_EXIT_VALUES = frozenset({"", "0", "None"})

_KERNEL_DIR_PREFIX = "agentnb-kernel-"
_STALE_AFTER_S = 60.0
_OLD_FORMAT_STALE_AFTER_S = 86_400.0
"""Folders named before the process id went into the name (`agentnb-kernel-<random>`) cannot
say whether their kernel still runs: they are removed once a day old."""
SHUTDOWN_WAIT_S = 2.0
"""A job kernel's `shutdown_wait_time`: jupyter_client sends SIGTERM after half of it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours (EPERM): alive
        return True
    return True


def kernel_dir() -> str:
    """A new folder for one job kernel's IPC sockets, named after this process.

    A worker killed with its kernel (SIGKILL, OOM) cannot remove its folder; each new folder
    first removes those that such processes left (their process is gone and the folder is
    older than a minute), so a long-lived machine running batches does not collect them.
    Folders of the older naming (no process id) go once they are a day old.

    Example:
        >>> import shutil
        >>> path = kernel_dir()
        >>> os.path.basename(path).startswith(f"agentnb-kernel-{os.getpid()}-")
        True
        >>> shutil.rmtree(path)
    """
    tmp = Path(tempfile.gettempdir())
    now = time.time()
    for old in tmp.glob(f"{_KERNEL_DIR_PREFIX}*"):
        rest = old.name[len(_KERNEL_DIR_PREFIX):]
        pid_text, dash, _ = rest.partition("-")
        try:
            if not dash:  # the older naming: `tempfile.mkdtemp`'s letters, digits and `_`
                stale = (now - old.stat().st_mtime > _OLD_FORMAT_STALE_AFTER_S
                         and old.is_dir())
            elif not pid_text.isdigit() or int(pid_text) == os.getpid():
                continue
            else:
                stale = (not _pid_alive(int(pid_text))
                         and now - old.stat().st_mtime > _STALE_AFTER_S and old.is_dir())
        except OSError:  # gone already, or not ours to look at
            continue
        if stale:
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_KERNEL_DIR_PREFIX}{os.getpid()}-")


def clean_exit(ename: str | None, evalue: str | None) -> bool:
    """True for `sys.exit()`, `sys.exit(0)` and `sys.exit(None)`: a successful early end.

    Example:
        >>> clean_exit("SystemExit", "0"), clean_exit("SystemExit", "1")
        (True, False)
    """
    return ename == "SystemExit" and (evalue or "").strip() in _CLEAN_EXIT_VALUES


def _usd(value: Decimal | None) -> float:
    return float(value or 0)


_CLASSES: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name in ("AgentnbEngine", "AgentnbNotebookClient"):
        engine = engine_class()  # builds both classes on first use
        return engine if name == "AgentnbEngine" else _CLASSES["AgentnbNotebookClient"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _redact_outputs(cell: Any) -> None:
    """Replace secrets in a cell's outputs before papermill saves the notebook (invariant 4)."""
    outputs = cell.get("outputs")
    if not outputs:
        return
    from nbformat import from_dict

    from agentnb.governance import default_redactor

    cell["outputs"] = [from_dict(o) for o in default_redactor().redact_obj(
        [dict(o) for o in outputs])]


def engine_class() -> Any:
    """The `AgentnbEngine` class (papermill engine `agentnb`), built on first use.

    Example:
        >>> from papermill.engines import papermill_engines
        >>> papermill_engines.register("agentnb", engine_class())
        >>> papermill_engines.get_engine("agentnb").__name__
        'AgentnbEngine'
    """
    if "AgentnbEngine" in _CLASSES:
        return _CLASSES["AgentnbEngine"]
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.utils import merge_kwargs, remove_args

    if "AgentnbEngine" in _CLASSES:
        # Importing papermill loaded its entry points, which built the classes already.
        return _CLASSES["AgentnbEngine"]

    class AgentnbNotebookClient(PapermillNotebookClient):
        """papermill's client, checking the budget, wall time and stop flag between cells."""

        def __init__(self, nb_man: Any, *, job_dir: str | None = None, wall_s: float | None = None,
                     stop_file: str | None = None, **kw: Any) -> None:
            super().__init__(nb_man, **kw)
            self.job_dir = Path(job_dir) if job_dir else None
            self.wall_s = wall_s
            self.stop_file = Path(stop_file) if stop_file else None
            self.started = time.monotonic()
            self.timeout_func = self._cell_timeout  # pyright: ignore[reportAttributeAccessIssue]
            # On timeout nbclient interrupts the kernel (so it is free for the final
            # kernel_info) and reports this error, which `_classify` reads as a wall-time stop.
            self.interrupt_on_timeout = True
            self.error_on_timeout = {"ename": "WallTimeExceeded",
                                     "evalue": f"the job's wall time ({wall_s} s) ran out",
                                     "traceback": []}
            self.outcome: dict[str, Any] = {"status": "done", "stop_reason": None,
                                            "failed_cell": None, "ename": None, "evalue": None}

        def create_kernel_manager(self) -> Any:
            """nbclient's kernel manager, talking to the kernel over Unix sockets (POSIX).

            Over TCP each kernel picks five free ports and binds them only once it has
            started; kernels started together (a batch's workers) can pick the same port,
            and the one that loses dies at start ("Address already in use"), failing its job.
            Sockets in a folder of the job's own cannot collide, and nothing listens on the
            network."""
            km = super().create_kernel_manager()
            if os.name == "posix" and getattr(km, "transport", None) == "tcp":
                self.ipc_dir = kernel_dir()
                km.transport = "ipc"
                km.ip = os.path.join(self.ipc_dir, "k")
            # After the shutdown request, jupyter_client waits half of this for the kernel to
            # exit before it sends SIGTERM (default 5 s: 2.5 s). An ipykernel 7 kernel now and
            # then never exits by itself (its control thread blocks sending to the IOPub thread
            # while the main thread joins it): 1 s is five times a clean exit here, and the
            # job has nothing left in the kernel by then (the ledger and the spans are written
            # after every cell).
            km.shutdown_wait_time = SHUTDOWN_WAIT_S
            return km

        def _left_s(self) -> float | None:
            if self.wall_s is None:
                return None
            return self.wall_s - (time.monotonic() - self.started)

        def _cell_timeout(self, cell: Any) -> float | None:
            left = self._left_s()
            # nbclient reads 0 or a negative timeout as "no timeout": never hand it one.
            return None if left is None else max(left, 0.05)

        def _ledger(self) -> Ledger | None:
            return None if self.job_dir is None else read_ledger(self.job_dir)

        def _stop(self, reason: str) -> None:
            self.outcome.update(status="stopped", stop_reason=reason)

        def papermill_execute_cells(self) -> None:
            """Execute the cells, accounting each one's spend, until the end or a stop."""
            before = self._ledger()
            cells = self.nb.cells
            index = 0
            for index, cell in enumerate(cells):
                left = self._left_s()
                if left is not None and left <= 0:
                    self._stop("wall_time")
                    break
                if self.stop_file is not None and self.stop_file.exists():
                    self._stop("stop_requested")
                    break
                cell_status = "ok"
                try:
                    self.nb_man.cell_start(cell, index)
                    self.execute_cell(cell, index)
                except CellTimeoutError:
                    cell_status = "stopped"
                    self._stop("wall_time")
                    self.nb_man.cell_exception(cells[index], cell_index=index)
                except DeadKernelError as exc:
                    cell_status = "error"
                    self.outcome.update(status="failed", failed_cell=index, ename="DeadKernelError",
                                        evalue=str(exc))
                    self.nb_man.cell_exception(cells[index], cell_index=index)
                except CellExecutionError as exc:
                    cell_status = self._classify(index, exc)
                    if cell_status != "exit":
                        self.nb_man.cell_exception(cells[index], cell_index=index, exception=exc)
                finally:
                    _redact_outputs(cells[index])
                    after = self._ledger()
                    self._account(cells[index], before, after, cell_status)
                    before = after or before
                    self.nb_man.cell_complete(cells[index], cell_index=index)
                if cell_status != "ok":
                    break
                if after is not None and after.budget_stopped:
                    self._stop(after.stop_reason or "budget")
                    break
            else:
                index = len(cells)
            for skipped in cells[index + 1:]:
                skipped.metadata["agentnb"] = {"status": "skipped", "spend_usd": 0.0, "steps": 0,
                                               "runs": 0}
            self._totals(self._ledger())

        def _classify(self, index: int, exc: CellExecutionError) -> str:
            ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
            if clean_exit(ename, evalue):
                return "exit"
            if ename in STOP_ENAMES:
                self._stop(STOP_ENAMES[ename])
                self.outcome.update(failed_cell=index, ename=ename, evalue=evalue)
                return "stopped"
            self.outcome.update(status="failed", failed_cell=index, ename=ename, evalue=evalue)
            return "error"

        def _account(self, cell: Any, before: Ledger | None, after: Ledger | None,
                     status: str) -> None:
            b_usd = before.spent_usd if before else Decimal(0)
            a_usd = after.spent_usd if after else b_usd
            b_steps = before.steps if before else 0
            a_steps = after.steps if after else b_steps
            b_runs = len(before.runs) if before else 0
            a_runs = len(after.runs) if after else b_runs
            cell.metadata["agentnb"] = {
                "status": status, "spend_usd": _usd(a_usd - b_usd), "steps": a_steps - b_steps,
                "runs": a_runs - b_runs,
            }

        def _totals(self, ledger: Ledger | None) -> None:
            totals: dict[str, Any] = dict(self.outcome)
            totals.update(
                spend_usd=_usd(ledger.spent_usd) if ledger else 0.0,
                spend_usd_exact=str(ledger.spent_usd) if ledger else "0",
                steps=ledger.steps if ledger else 0,
                tokens=ledger.tokens if ledger else 0,
                model_calls=ledger.model_calls if ledger else 0,
                runs=len(ledger.runs) if ledger else 0,
                duration_s=round(time.monotonic() - self.started, 3),
                wall_s=self.wall_s,
            )
            self.nb.metadata["agentnb"] = totals


    class AgentnbEngine(NBClientEngine):
        """papermill engine `agentnb`: nbclient execution under a job's budget and wall time.

        Extra keyword arguments (passed through `papermill.execute_notebook`):
        `agentnb_env` (environment variables added to the kernel's), `agentnb_job_dir` (the folder
        holding the kernel's ledger), `agentnb_wall_s` (whole-notebook wall time) and
        `agentnb_stop_file` (a file whose appearance stops the job between cells).

        Example:
            >>> engine_class().__name__
            'AgentnbEngine'
        """

        # papermill calls this with its own positional signature, which we keep.
        @classmethod
        def execute_managed_notebook(  # noqa: PLR0917
                cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None,
                                     start_timeout: int = 60, execution_timeout: Any = None,
                                     **kwargs: Any) -> Any:
            """Execute the parameterised notebook in a fresh kernel with the job's environment."""
            env = kwargs.pop("agentnb_env", None) or {}
            job_dir = kwargs.pop("agentnb_job_dir", None)
            wall_s = kwargs.pop("agentnb_wall_s", None)
            stop_file = kwargs.pop("agentnb_stop_file", None)
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log_output=log_output,
                stdout_file=stdout_file, stderr_file=stderr_file,
            )
            client = AgentnbNotebookClient(nb_man, job_dir=job_dir, wall_s=wall_s,
                                           stop_file=stop_file, **final_kwargs)
            try:
                return client.execute(env={**os.environ, **env})
            finally:
                ipc_dir = getattr(client, "ipc_dir", None)
                if ipc_dir is not None:
                    shutil.rmtree(ipc_dir, ignore_errors=True)

    _CLASSES["AgentnbNotebookClient"] = AgentnbNotebookClient
    _CLASSES["AgentnbEngine"] = AgentnbEngine
    return AgentnbEngine
