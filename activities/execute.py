"""The execution activity: approved steps, in order, each exactly once.

Every step's result is journalled (``result.json`` in its run directory, on the worker's machine,
out of the steps' reach) as soon as it is known, so a retried attempt skips what an earlier one
completed instead of applying it again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path

from temporalio import activity

from activities.executor import CommandOutcome, Executor, ExecutorUnavailable, executor_for
from activities.executor.base import (
    make_private,
    read_sealed,
    runs_root,
    sealed_with,
    unavailable_failure,
    write_sealed,
)
from activities.files import FileStepError, apply_file_step
from activities.heartbeat import heartbeating
from activities.live import LivePublisher, tail_file
from activities.redact import redact
from models.config import data_dir
from models.events import StepFinished, StepStarted
from models.plan import FileStep, Step
from models.request import ExecuteInput, ExecuteOutput, StepResult

RESULT_FILE = "result.json"  # a step's result as the activity returned it: written by the worker only


def _skipped(step: Step, key: str) -> StepResult:
    return StepResult(
        step_id=step.id, run_key=key, kind=step.type, ok=False, skipped=True, output="skipped: an earlier step failed"
    )


def _recorded(run_dir: Path) -> StepResult | None:
    data = read_sealed(run_dir / RESULT_FILE)
    return StepResult.model_validate(data) if data else None


def _output_file(executor: Executor, run_dir: Path) -> Path:
    """Where the running step's wrapper writes its output: the Docker backend's stream directory
    (its ``streams``), else the run directory."""
    streams = getattr(executor, "streams", None)
    return (streams / run_dir.name / "out") if isinstance(streams, Path) else run_dir / "out"


async def _streamed(
    executor: Executor, run_dir: Path, live: LivePublisher, key: str, run: Awaitable[CommandOutcome]
) -> CommandOutcome:
    """The command's outcome; its output lines go to the live view while it runs."""
    done = asyncio.Event()
    path = _output_file(executor, run_dir)
    tail = asyncio.create_task(tail_file(path, lambda lines: live.lines("step", key, lines), done))
    try:
        return await run
    finally:
        done.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(tail, 2.0)


def _finished(r: StepResult) -> StepFinished:
    return StepFinished(
        step_id=r.step_id,
        run_key=r.run_key,
        ok=r.ok,
        exit_code=r.exit_code,
        duration_s=r.duration_s,
        timed_out=r.timed_out,
        skipped=r.skipped,
    )


def _lost_record(step: Step, key: str) -> StepResult:
    return StepResult(
        step_id=step.id,
        run_key=key,
        kind=step.type,
        ok=False,
        output="its journal entry was removed or altered after it ran, so it is not run again",
    )


def _done_before() -> set[str]:
    """Run keys an earlier attempt reported done in its heartbeats: Temporal keeps those, out of
    every step's reach, so an erased journal entry cannot make a step run twice."""
    if not activity.in_activity():
        return set()
    for details in reversed(activity.info().heartbeat_details):
        if isinstance(details, dict) and isinstance(details.get("done"), list):
            return {str(k) for k in details["done"]}
    return set()


async def _run_step(
    step: Step, key: str, run_dir: Path, inp: ExecuteInput, executor: Executor, network: bool, live: LivePublisher
) -> StepResult:
    workspace = Path(inp.workspace)
    settings = inp.settings.executor
    if isinstance(step, FileStep):
        try:
            change = apply_file_step(step, workspace, run_dir, inp.reviewed_digests.get(step.id))
            return StepResult(step_id=step.id, run_key=key, kind="file", ok=True, file_change=change, path=step.path)  # type: ignore[arg-type]
        except (FileStepError, OSError) as exc:
            return StepResult(step_id=step.id, run_key=key, kind="file", ok=False, output=str(exc), path=step.path)
    outcome = await _streamed(
        executor,
        run_dir,
        live,
        key,
        executor.run(
            step.command, run_dir, step.timeout_s or settings.step_timeout_s, settings.output_cap_bytes, network=network
        ),
    )
    note = " [timed out: the step and its processes were killed]" if outcome.timed_out else ""
    note += " [interrupted: the host stopped while it ran]" if outcome.interrupted else ""
    return StepResult(
        step_id=step.id,
        run_key=key,
        kind=step.type,
        ok=outcome.ok,
        exit_code=outcome.exit_code,
        output=redact(outcome.output) + note,
        duration_s=round(outcome.duration_s, 3),
        timed_out=outcome.timed_out,
    )


async def run_steps(
    inp: ExecuteInput, progress: dict[str, object] | None = None, live: LivePublisher | None = None
) -> ExecuteOutput:
    """Each step starts and ends on the live view (``live``, when given), its output in between."""
    with sealed_with(inp.journal_seal):
        return await _run_steps(inp, progress if progress is not None else {}, live or LivePublisher())


async def _run_steps(inp: ExecuteInput, progress: dict[str, object], live: LivePublisher) -> ExecuteOutput:
    workspace = Path(inp.workspace)
    data = data_dir(inp.settings)
    executor = executor_for(inp.settings.executor, workspace, inp.workflow_id, data)
    results: list[StepResult] = []
    networked = set(inp.network_steps)
    done_before = _done_before()
    done: list[str] = [k for k in inp.run_keys if k in done_before]
    progress["done"] = done
    stop = False
    for step, key in zip(inp.steps, inp.run_keys, strict=True):
        if stop:
            results.append(_skipped(step, key))
            live.event(_finished(results[-1]))
            continue
        run_dir = make_private(runs_root(data, inp.workflow_id) / key)
        # Exactly once: a step an earlier attempt completed (file steps as much as commands) is
        # never applied again; its recorded result stands.
        result = _recorded(run_dir)
        if result is None and key in done_before:
            result = _lost_record(step, key)
        if result is None:
            progress["step"] = key
            detail = step.path if isinstance(step, FileStep) else step.command
            live.event(StepStarted(step_id=step.id, run_key=key, step_type=step.type, detail=redact(detail)[:500]))
            result = await _run_step(step, key, run_dir, inp, executor, step.id in networked, live)
            write_sealed(run_dir / RESULT_FILE, result.model_dump())
        if key not in done:
            done.append(key)
        results.append(result)
        live.event(_finished(result))
        # A failed verify step is evidence for the reviewer; a failed change stops the rest.
        stop = not result.ok and step.type != "verify"
    return ExecuteOutput(results=results)


@activity.defn
async def execute_steps(inp: ExecuteInput) -> ExecuteOutput:
    progress: dict[str, object] = {"workflow": inp.workflow_id}
    try:
        async with heartbeating(progress), LivePublisher() as live:
            return await run_steps(inp, progress, live)
    except ExecutorUnavailable as exc:
        raise unavailable_failure(exc) from None
