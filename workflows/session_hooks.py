"""The session's hooks and auto-commit: loading the hooks and the git baseline when a session
starts, running the hooks of a point, on_task_complete for newly completed tasks, and committing
what an iteration changed. A hook never fails the session; a failed commit is an event.

``SessionHooks`` is a base class of ``SessionWorkflow`` (under ``SessionWork``; through it,
``SessionTools`` gives the event log). Deterministic: the work is in activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

from workflows.phases import Phases
from workflows.session_tools import SessionTools

with workflow.unsafe.imports_passed_through():
    from activities.git import git_commit, git_snapshot
    from activities.hooks import load_hooks, run_hooks
    from models.clip import clip_middle
    from models.events import HookRan, OutputLines, clip
    from models.session import (
        HOOK_REPORT_CHARS,
        MAX_HOOK_REPORTS_KEPT,
        HookReport,
        SessionPlan,
        Task,
        push_bounded,
    )
    from models.session_io import GitCommitInput, RunHooksInput, SessionInput
    from workflows import options

HOOK_MARGIN_S = 30
HOOK_LINES_SHOWN = 200  # the live view's share of a hook's output; its report keeps all of it
GIT_TIMEOUT = timedelta(minutes=2)
HOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


class SessionHooks(SessionTools):
    inp: SessionInput | None
    phases: Phases  # its ``workspace`` is the session's worktree once the run has made it

    async def _session_start(self) -> None:
        assert self.inp
        loaded = await workflow.execute_activity(
            load_hooks,
            self.phases.workspace,
            start_to_close_timeout=options.PROMPT_TIMEOUT,
            retry_policy=HOOK_RETRY,
            summary="load .iter/hooks.yml",
        )
        self.state.hooks = loaded.config
        if loaded.error:
            self._event("hooks", loaded.error)
        if self.inp.settings.auto_commit:
            snap = await workflow.execute_activity(
                git_snapshot,
                self.phases.workspace,
                start_to_close_timeout=GIT_TIMEOUT,
                retry_policy=options.FAST_RETRY,
                summary="git baseline for auto-commit",
            )
            self.state.git_on = snap.is_repo and not snap.error
            self.state.dirty_baseline = snap.dirty
            if not self.state.git_on:
                self._event("commit", f"auto-commit is off: {snap.error}")
        piped = await self._hooks("session_start")
        if piped:
            push_bounded(self.state.pending_hook_output, piped)

    async def _commit(
        self, n: int, plan: SessionPlan, task: Task | None, outcome: str = "passed"
    ) -> tuple[str, list[str]]:
        """What the iteration changed; a failed one says in its message that the task is not done."""
        assert self.inp
        if not self.state.git_on:
            return "", []
        self._phase("commit", "committing what the iteration changed")
        what = f"task #{task.id}: {task.content}" if task else plan.summary
        if outcome != "passed":
            what = f"not done ({outcome}), an attempt at {what}"
        message = f"iter {self.state.name}: {what}"[:200] + f"\n\n{plan.summary}\n\nIter-Session: {self.state.name}"
        out = await workflow.execute_activity(
            git_commit,
            GitCommitInput(
                workspace=self.phases.workspace,
                message=message,
                marker=f"Iter-Iteration: {self.state.uid}/{n}",
                baseline=self.state.dirty_baseline,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            retry_policy=options.FAST_RETRY,
            summary=f"auto-commit iteration {n}",
        )
        self.state.dirty_baseline = out.baseline
        if out.error:
            self._event("commit", f"auto-commit failed: {out.error}")
            return "", []
        if out.commit:
            self.state.commits += 1
            self._event("commit", f"committed {out.commit[:10]} ({len(out.files)} file(s))")
        return out.commit, out.files

    async def _hooks(self, point: str, **variables: str) -> str:
        """Runs the hooks of ``point``; what they pipe is returned. Never raises for a hook's sake."""
        assert self.inp
        hooks = self.state.hooks.at(point)
        if not hooks:
            return ""
        self._phase("hooks", f"{point}: {len(hooks)} hook(s)")
        values = {"session": self.state.name, "iteration": str(self.state.iteration), **variables}
        try:
            out = await workflow.execute_activity(
                run_hooks,
                RunHooksInput(
                    workspace=self.phases.workspace,
                    point=point,
                    hooks=self.state.hooks,
                    variables=values,
                    iteration=self.state.iteration,
                ),
                start_to_close_timeout=timedelta(seconds=sum(h.timeout for h in hooks) + HOOK_MARGIN_S),
                heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
                retry_policy=HOOK_RETRY,
                summary=f"hooks {point}",
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise  # a cancelled session stops here, not at the next hook
            self._event("hooks", f"{point} hooks could not run: {cause(exc)}")
            return ""
        for report in out.reports:
            kept = clip_middle(report.output, HOOK_REPORT_CHARS)  # the whole (capped) output is in history
            self.state.hook_reports.append(report.model_copy(update={"output": kept}))
            self._show_hook(report)
            if not report.ok:
                why = "timed out" if report.timed_out else report.error or f"exit {report.exit_code}"
                self._event("hooks", f"{point} hook failed ({why}): {report.command[:120]}")
        del self.state.hook_reports[:-MAX_HOOK_REPORTS_KEPT]
        return out.piped

    def _show_hook(self, report: HookReport) -> None:
        status = "timed out" if report.timed_out else report.error or f"exit {report.exit_code}"
        self.live.publish(HookRan(point=report.point, command=report.command[:500], ok=report.ok, status=status))
        lines = report.output.splitlines()[-HOOK_LINES_SHOWN:]
        if lines:
            self.live.publish(OutputLines(source="hook", ref=report.point, lines=[clip(x) for x in lines]))

    async def _task_hooks(self) -> None:
        """on_task_complete for each task completed since the last time, whoever completed it."""
        while self.state.completed_unhooked:
            task = self.state.task(self.state.completed_unhooked.pop(0))
            if task is None:
                continue
            self._event("task", f"task #{task.id} completed: {task.content[:120]}")
            piped = await self._hooks("on_task_complete", task_id=task.id, task_content=task.content)
            if piped:
                push_bounded(self.state.pending_hook_output, piped)


def cause(exc: BaseException) -> str:
    """What went wrong: an activity's own failure rather than Temporal's wrapper around it."""
    inner = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
    return str(inner)
