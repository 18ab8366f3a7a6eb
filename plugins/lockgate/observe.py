"""Observation hooks around the four stages: metrics (:mod:`lockgate.metrics`) and
OpenLineage events (:mod:`lockgate.lineage`).

:mod:`lockgate.pipeline` decorates each stage with :func:`stage`. The decorator calls
the observers before the stage runs, after it returns and when it raises; the stage's
own result and exception are passed through unchanged. An observer that fails (an
unreachable lineage backend, a malformed ``[openlineage]`` setting) logs a warning and
never fails the task.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lockgate.config import SourceConfig, TableConfig
from lockgate.records import RunInfo
from lockgate.settings import Settings

log = logging.getLogger("lockgate")

F = TypeVar("F", bound=Callable[..., dict[str, Any]])


@dataclass(frozen=True)
class StageCall:
    """One stage of one table run, as it was called."""

    stage: str  # extract | validate | load | publish
    config: SourceConfig
    table: TableConfig
    run: RunInfo
    settings: Settings
    raw_path: str | None = None  # the batch (validate, load, publish)


@dataclass(frozen=True)
class StageResult:
    """A stage that returned."""

    call: StageCall
    result: dict[str, Any]
    seconds: float

    @property
    def raw_path(self) -> str | None:
        return self.result.get("raw_path") or self.call.raw_path


@dataclass(frozen=True)
class StageFailure:
    """A stage that raised."""

    call: StageCall
    error: BaseException
    seconds: float


def _safely(observer: Callable[[Any], None], event: Any) -> None:
    try:
        observer(event)
    except Exception as exc:  # noqa: BLE001 - observing must never fail the stage
        call = getattr(event, "call", event)
        log.warning(
            "%s.%s: %s failed (%s: %s); the stage is not affected",
            call.config.source,
            call.table.name,
            f"{observer.__module__}.{observer.__name__}",
            type(exc).__name__,
            exc,
        )


def _call(name: str, args: tuple, kwargs: dict[str, Any]) -> StageCall | None:
    from lockgate.settings import load_settings

    config, table, run, *rest = args
    raw_path = rest[0] if rest else kwargs.get("raw_path")
    try:
        settings = kwargs.get("settings") or load_settings()
    except Exception:  # noqa: BLE001 - the stage reports bad settings itself
        return None
    return StageCall(name, config, table, run, settings, raw_path)


def stage(name: str) -> Callable[[F], F]:
    """Observe a stage ``fn(config, table, run[, raw_path], **options) -> dict``."""
    from lockgate import lineage, metrics

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def observed(*args: Any, **kwargs: Any) -> dict[str, Any]:
            call = _call(name, args, kwargs)
            if call is None:
                return fn(*args, **kwargs)
            _safely(lineage.stage_started, call)
            started = time.monotonic()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                failure = StageFailure(call, exc, round(time.monotonic() - started, 3))
                _safely(metrics.stage_failed, failure)
                _safely(lineage.stage_failed, failure)
                raise
            done = StageResult(call, result, round(time.monotonic() - started, 3))
            _safely(metrics.stage_done, done)
            _safely(lineage.stage_done, done)
            return result

        return observed  # type: ignore[return-value]

    return decorate
