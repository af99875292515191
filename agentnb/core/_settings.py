"""Settings, resolved once at a boundary: argument > `AGENTNB_*` env > `[tool.agentnb]` > default.

Nothing below the boundary reads `os.environ`; it takes the frozen `Settings` it was given.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from agentnb.core._errors import ConfigError

__all__ = ["Settings", "resolve"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """agentnb's configuration.

    Example:
        >>> s = resolve(home="/tmp/anb-doc", env={})
        >>> s.home.name, s.default_model
        ('anb-doc', 'sim:careful')
    """

    home: Path = Path(".agentnb")
    """Where `traces.db`, `cache.db` and `audit/` live (`AGENTNB_HOME`)."""
    default_model: str = "sim:careful"
    """The model an `Agent` gets when none is named (`AGENTNB_MODEL`)."""
    sim_latency: float = 1.0
    """Scale of the `sim:` models' latency; 0 makes them instant (`AGENTNB_SIM_LATENCY`)."""
    trace: bool = True
    """Record spans into the trace store (`AGENTNB_TRACE`)."""
    record_content: bool = True
    """Record message contents on spans, redacted (`AGENTNB_RECORD_CONTENT`)."""
    otlp_endpoint: str | None = None
    """Live OTLP/HTTP export endpoint (`AGENTNB_OTLP_ENDPOINT`)."""
    approvals: str = "deny"
    """Headless approval decision: `deny`, `allow`, or a YAML rules file (`AGENTNB_APPROVALS`)."""
    cache: bool = False
    """Use the content-hash cache for model responses (`AGENTNB_CACHE`)."""
    headless: bool = False
    """Render widgets as static HTML, never as live widgets (`AGENTNB_HEADLESS`; `agentnb run`)."""
    job_id: str | None = None
    """Set inside a notebook job's kernel: the job's id (`AGENTNB_JOB_ID`); None outside a job."""
    job_dir: Path | None = None
    """The job's folder, holding its `ledger.json` (`AGENTNB_JOB_DIR`)."""
    job_kind: str = "notebook"
    """`notebook` for `agentnb run`, `batch` for a job granted an allotment (`AGENTNB_JOB_KIND`)."""
    job_budget_usd: Decimal | None = None
    """The job's USD limit over every run in the kernel (`AGENTNB_JOB_BUDGET_USD`)."""
    job_max_steps: int | None = None
    """The job's step limit over every run in the kernel (`AGENTNB_JOB_MAX_STEPS`)."""
    job_wall_s: float | None = None
    """The job's wall-time limit in seconds (`AGENTNB_JOB_WALL_S`)."""


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# The short name is the documented one; the long one follows the field name.
_ENV_NAMES = {"default_model": ("AGENTNB_MODEL", "AGENTNB_DEFAULT_MODEL")}


def _decimal(raw: Any) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError(raw) from None
    if not value.is_finite() or value < 0:
        raise ValueError(raw)
    return value


# Settings whose default is None cannot be converted by the default's type.
_OPTIONAL: dict[str, tuple[str, Any]] = {
    "job_id": ("str", str),
    "job_dir": ("path", lambda raw: Path(raw).expanduser()),
    "job_budget_usd": ("decimal", _decimal),
    "job_max_steps": ("int", int),
    "job_wall_s": ("float", float),
}



def _convert(name: str, raw: Any, source: str) -> Any:
    default = _FIELDS[name].default
    if name in _OPTIONAL:
        kind, convert = _OPTIONAL[name]
        if raw is None or (isinstance(raw, str) and raw.strip() in ("", "none", "None")):
            return None
        try:
            if kind in ("int", "float") and isinstance(raw, bool):
                raise ValueError(raw)
            return convert(raw)
        except (ValueError, TypeError):
            msg = f"Setting {name!r} has the value {raw!r}, which is not a {kind}."
            raise ConfigError(msg, source=source) from None
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        if name == "otlp_endpoint":
            return str(raw) if raw not in (None, "") else None
        return str(raw)
    except ValueError:
        kind = type(default).__name__ if default is not None else "str"
        msg = f"Setting {name!r} has the value {raw!r}, which is not a {kind}."
        raise ConfigError(msg, source=source) from None


def _pyproject_table(start: Path) -> tuple[dict[str, Any], Path | None]:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                msg = f"Cannot read {str(candidate)!r}: {exc}."
                raise ConfigError(msg, source=str(candidate)) from None
            table = data.get("tool", {}).get("agentnb", {})
            return (table if isinstance(table, dict) else {}), candidate
    return {}, None


def resolve(
    *, env: Mapping[str, str] | None = None, cwd: Path | None = None, **overrides: Any
) -> Settings:
    """Resolve settings: explicit argument > `AGENTNB_*` > `[tool.agentnb]` > default.

    Arguments given as `None` or `UNSET` count as not given.

    Raises:
        ConfigError: an unknown setting or a value of the wrong type, naming where it came from.
    """
    from agentnb.core._unset import UNSET

    env = os.environ if env is None else env
    table, pyproject = _pyproject_table(cwd or Path.cwd())
    values: dict[str, Any] = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            msg = f"Unknown setting {key!r} in [tool.agentnb]."
            raise ConfigError(msg, source=str(pyproject), hint=f"Known: {sorted(_FIELDS)}.")
        values[name] = _convert(name, raw, str(pyproject))
    for name in _FIELDS:
        for var in _ENV_NAMES.get(name, (f"AGENTNB_{name.upper()}",)):
            if var in env:
                values[name] = _convert(name, env[var], f"environment variable {var}")
                break
    for name, raw in overrides.items():
        if name not in _FIELDS:
            msg = f"Unknown setting {name!r}."
            raise ConfigError(msg, source="argument", hint=f"Known: {sorted(_FIELDS)}.")
        if raw is None or raw is UNSET:
            continue
        values[name] = _convert(name, raw, "argument")
    return Settings(**values)
