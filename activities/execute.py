"""The execution activity: approved steps, in order, each exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.executor import ExecutorUnavailable, executor_for
from activities.executor.base import CommandOutcome, Executor, runs_root
from activities.files import FileStepError, apply_file_step
from activities.live import LivePublisher, tail_file
from activities.redact import redact
from models.events import StepFinished, StepStarted
from models.plan import FileStep, Step
from models.request import ExecuteInput, ExecuteOutput, StepResult

HEARTBEAT_EVERY_S = 2.0


async def _heartbeat(progress: dict[str, str]) -> None:
    while True:
        activity.heartbeat(dict(progress))
        await asyncio.sleep(HEARTBEAT_EVERY_S)


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


def _skipped(step: Step, key: str) -> StepResult:
    return StepResult(
        step_id=step.id, run_key=key, kind=step.type, ok=False, skipped=True, output="skipped: an earlier step failed"
    )


async def _run_command(
    executor: Executor, step: Step, key: str, run_dir: Path, inp: ExecuteInput, live: LivePublisher
) -> CommandOutcome:
    """The step's command, its output lines streamed to the live view while it runs."""
    settings = inp.settings.executor
    done = asyncio.Event()
    tail = asyncio.create_task(tail_file(run_dir / "out", lambda lines: live.lines("step", key, lines), done))
    try:
        return await executor.run(
            step.command,  # type: ignore[union-attr]
            run_dir,
            step.timeout_s or settings.step_timeout_s,  # type: ignore[union-attr]
            settings.output_cap_bytes,
            network=step.id in inp.network_steps,
        )
    finally:
        done.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(tail, 2.0)


async def run_steps(inp: ExecuteInput, live: LivePublisher | None = None) -> ExecuteOutput:
    workspace = Path(inp.workspace)
    settings = inp.settings.executor
    executor = executor_for(settings, workspace, inp.workflow_id)
    results: list[StepResult] = []
    stop = False
    live = live or LivePublisher()
    for step, key in zip(inp.steps, inp.run_keys, strict=True):
        if stop:
            results.append(_skipped(step, key))
            live.event(_finished(results[-1]))
            continue
        run_dir = runs_root(workspace, inp.workflow_id) / key
        detail = step.path if isinstance(step, FileStep) else step.command
        live.event(StepStarted(step_id=step.id, run_key=key, step_type=step.type, detail=redact(detail)[:500]))
        if isinstance(step, FileStep):
            try:
                change = apply_file_step(step, workspace, run_dir)
                result = StepResult(
                    step_id=step.id, run_key=key, kind="file", ok=True, file_change=change, path=step.path
                )  # type: ignore[arg-type]
            except (FileStepError, OSError) as exc:
                result = StepResult(
                    step_id=step.id, run_key=key, kind="file", ok=False, output=str(exc), path=step.path
                )
        else:
            outcome = await _run_command(executor, step, key, run_dir, inp, live)
            note = " [timed out: the step and its processes were killed]" if outcome.timed_out else ""
            note += " [interrupted: the host stopped while it ran]" if outcome.interrupted else ""
            result = StepResult(
                step_id=step.id,
                run_key=key,
                kind=step.type,
                ok=outcome.ok,
                exit_code=outcome.exit_code,
                output=redact(outcome.output) + note,
                duration_s=round(outcome.duration_s, 3),
                timed_out=outcome.timed_out,
            )
        results.append(result)
        live.event(_finished(result))
        # A failed verify step is evidence for the reviewer; a failed change stops the rest.
        stop = not result.ok and step.type != "verify"
    return ExecuteOutput(results=results)


@activity.defn
async def execute_steps(inp: ExecuteInput) -> ExecuteOutput:
    progress = {"workflow": inp.workflow_id}
    beat = asyncio.create_task(_heartbeat(progress))
    try:
        async with LivePublisher() as live:
            return await run_steps(inp, live)
    except ExecutorUnavailable as exc:
        raise ApplicationError(str(exc), type="ExecutorUnavailable", non_retryable=True) from None
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
