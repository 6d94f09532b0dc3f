"""SessionWorkflow: iteratr's loop as a durable workflow. Each iteration takes the next task
through the request pipeline's phases (plan, safety review, execute, verify), commits what it
changed and records a summary. Tasks and notes are the workflow's own state: updates change them
(``iter tool ...``), queries read them, signals pause, resume, stop and queue messages. The
workflow continues as new before its history grows large, carrying the whole state."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cleanup import release_executor
    from activities.execute import execute_steps
    from activities.git import git_commit, git_snapshot
    from activities.hooks import load_hooks, run_hooks
    from activities.llm import call_model
    from activities.review import post_review, safety_review
    from activities.session_prompt import render_session_prompt
    from models import search
    from models.plan import FileStep, Step, StepNode, VerifyStep, iter_nodes
    from models.request import (
        ChatMessage,
        ExecuteInput,
        ModelCallInput,
        ModelUsage,
        PostReviewInput,
        SafetyReviewInput,
        StepResult,
    )
    from models.review import Finding, PostReview
    from models.schemas import parse_answer
    from models.session import (
        MAX_EVENTS_KEPT,
        MAX_HOOK_REPORTS_KEPT,
        IterationOutcome,
        IterationSummary,
        IterationView,
        NewNote,
        NewSummary,
        NewTask,
        Note,
        SessionEvent,
        SessionPlan,
        SessionState,
        Task,
        TaskDependency,
        TaskPriorityChange,
        TaskStatusChange,
        ToolError,
        add_dependency,
        add_note,
        add_summary,
        add_tasks,
        check_complete,
        check_dependency,
        check_new_tasks,
        check_priority,
        check_status,
        next_task,
        push_bounded,
        set_priority,
        set_status,
        spec_tasks,
    )
    from models.session_io import GitCommitInput, RunHooksInput, SessionInput, SessionPromptInput
    from workflows import options

MAX_CONSECUTIVE_ERRORS = 3  # iterations in a row that fail to even produce a plan end the session
MAX_FIX_ROUNDS = 2
HISTORY_BYTES_LIMIT = 16 * 1024 * 1024  # continue as new well before Temporal's 50 MB limit
CHARS_PER_TOKEN = 4
PROMPT_SHARE_OF_CONTEXT = 0.5  # the rest of the context is for the answer and the schema
MIN_PROMPT_BUDGET = 4000
HOOK_MARGIN_S = 30
GIT_TIMEOUT = timedelta(minutes=2)
HOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


T = TypeVar("T")


class IterationError(Exception):
    """An iteration that could not do its work (no usable plan, an activity that gave up)."""


@workflow.defn
class SessionWorkflow:
    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        # The state exists before any signal or update of the first workflow task is handled.
        self.inp: SessionInput | None = inp
        self.state = SessionState()
        self._taken: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._network: dict[str, Step] = {}  # steps the last safety review approved for network
        self._begin(inp)

    # --- the process -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: SessionInput) -> SessionState:
        try:
            if not inp.continued:
                await self._session_start()
            while not self._finished():
                if self._history_full():
                    await self._continue_as_new()
                await self._checkpoint(boundary=True)
                if self._finished():
                    break
                await self._iteration()
            await self._session_end()
        except asyncio.CancelledError:
            self.state.status = "cancelled"
            self._event("done", "cancelled by the user")
            await self._release()
            raise
        await self._release()
        return self.state

    def _begin(self, inp: SessionInput) -> None:
        info = workflow.info()
        if inp.carry is not None:
            self.state = inp.carry
            if inp.continued:
                self.state.runs += 1
            else:  # a new `iter build` of an existing session goes on where it stopped
                self.state.build_iterations, self.state.stop_requested, self.state.paused = 0, False, False
                self.state.status, self.state.error, self.state.consecutive_errors = "running", "", 0
                self._event("starting", f"resuming at iteration {self.state.iteration + 1}")
        else:
            self.state = SessionState(uid=str(workflow.uuid4()), name=inp.name)
            added = add_tasks(self.state, spec_tasks(inp.spec_text), 0, "spec")
            self._event("starting", f"new session; {len(added)} task(s) from {inp.spec_path}")
        self.state.workflow_id, self.state.name = info.workflow_id, inp.name
        self.state.spec_path, self.state.workspace = inp.spec_path, inp.workspace
        self._publish()

    async def _session_start(self) -> None:
        assert self.inp
        loaded = await workflow.execute_activity(
            load_hooks, self.inp.workspace, start_to_close_timeout=options.PROMPT_TIMEOUT, retry_policy=HOOK_RETRY
        )
        self.state.hooks = loaded.config
        if loaded.error:
            self._event("hooks", loaded.error)
        if self.inp.settings.auto_commit:
            snap = await workflow.execute_activity(
                git_snapshot, self.inp.workspace, start_to_close_timeout=GIT_TIMEOUT, retry_policy=options.FAST_RETRY
            )
            self.state.git_on = snap.is_repo and not snap.error
            self.state.dirty_baseline = snap.dirty
            if not self.state.git_on:
                self._event("commit", f"auto-commit is off: {snap.error}")
        piped = await self._hooks("session_start")
        if piped:
            push_bounded(self.state.pending_hook_output, piped)

    async def _iteration(self) -> None:
        assert self.inp
        st = self.state
        st.iteration += 1
        st.build_iterations += 1
        n = st.iteration
        st.current = IterationView(iteration=n)
        tokens_before = (st.prompt_tokens, st.completion_tokens)
        self._event("iteration", f"iteration {n} starts")
        pre = await self._hooks("pre_iteration")
        plan: SessionPlan | None = None
        task: Task | None = None
        outcome: IterationOutcome = "error"
        reason = ""
        try:
            offered = next_task(st.tasks)
            plan = await self._plan(n, pre)
            changed = self._apply_ops(plan, n)
            task = self._task_for(plan, offered, n)
            if plan.steps:
                outcome, reason = await self._work(n, plan, task)
            else:
                outcome = "planned"
                if not changed:
                    reason = "the answer had no steps and changed nothing"
        except (IterationError, ActivityError) as exc:
            reason = _cause(exc)
            if plan is None:  # the model never answered usefully: what it was told goes to the next prompt
                st.pending_messages = [*self._taken[0], *st.pending_messages]
                st.pending_hook_output = [*self._taken[1], *st.pending_hook_output]
                st.feedback = [*self._taken[2], *st.feedback]
        await self._after(n, plan, task, outcome, reason, tokens_before)

    async def _after(
        self,
        n: int,
        plan: SessionPlan | None,
        task: Task | None,
        outcome: IterationOutcome,
        reason: str,
        tokens_before: tuple[int, int],
    ) -> None:
        """Task status, hooks, commit, summary, and the model's request to complete the session."""
        assert self.inp
        st = self.state
        if task is not None and outcome == "passed":
            set_status(st, TaskStatusChange(id=task.id, status="completed"), n)
        elif task is not None and task.status == "in_progress" and outcome in ("failed", "blocked", "error"):
            set_status(st, TaskStatusChange(id=task.id, status="remaining"), n)
        if reason:
            push_bounded(st.feedback, f"iteration {n} [{outcome}]: {reason}")
        if outcome in ("failed", "blocked"):
            add_note(st, NewNote(type="stuck", content=f"iteration {n} {outcome}: {reason}"[:4000]), n, "session")
        await self._task_hooks()
        if outcome in ("failed", "blocked", "error"):
            piped = await self._hooks("on_error", error=reason)
            if piped:
                push_bounded(st.pending_hook_output, piped)
        piped = await self._hooks("post_iteration")
        if piped:
            push_bounded(st.pending_hook_output, piped)
        commit, files = await self._commit(n, plan, task) if plan is not None and plan.steps else ("", [])
        st.consecutive_errors = (
            st.consecutive_errors + 1 if outcome == "error" or (outcome == "planned" and reason) else 0
        )
        summary = plan.summary if plan else reason
        add_summary(
            st,
            IterationSummary(
                iteration=n,
                summary=summary[:2000],
                outcome=outcome,
                task_id=task.id if task else None,
                commit=commit,
                files=files[:50],
                prompt_tokens=st.prompt_tokens - tokens_before[0],
                completion_tokens=st.completion_tokens - tokens_before[1],
            ),
        )
        st.current.verdict = outcome
        self._event("iteration", f"iteration {n} {outcome}" + (f": {reason}" if reason else ""))
        if plan is not None and plan.session_complete:
            try:
                check_complete(st)
                st.complete = True
            except ToolError as exc:
                push_bounded(st.feedback, str(exc))
                self._event("iteration", str(exc))

    async def _plan(self, n: int, pre_hook_output: str) -> SessionPlan:
        """Prompt, stream, parse; an invalid answer goes back with its errors, a bounded number of times."""
        assert self.inp
        st = self.state
        messages, st.pending_messages = st.pending_messages, []
        hook_output, st.pending_hook_output = st.pending_hook_output, []
        feedback, st.feedback = st.feedback, []
        self._taken = (messages, hook_output, feedback)
        self._phase("prompt", "building the prompt")
        prompt = await workflow.execute_local_activity(
            render_session_prompt,
            SessionPromptInput(
                workspace=self.inp.workspace,
                session=st.name,
                spec_path=self.inp.spec_path,
                spec_fallback=self.inp.spec_text,
                template_path=self.inp.template_path,
                iteration=n,
                tasks=st.tasks,
                notes=st.notes,
                summaries=st.summaries,
                summaries_dropped=st.summaries_dropped,
                extra=self.inp.extra,
                hook_output=hook_output,
                pre_hook_output=pre_hook_output,
                messages=messages,
                feedback=feedback,
                budget_chars=self._budget(),
            ),
            start_to_close_timeout=options.PROMPT_TIMEOUT,
        )
        chat = [ChatMessage(role="system", content=prompt.system), ChatMessage(role="user", content=prompt.user)]
        errors = ""
        for attempt in range(self.inp.settings.bounds.max_parse_repairs + 1):
            self._phase("plan", "the coder is answering" + (f" (repair {attempt})" if attempt else ""))
            out = await workflow.execute_activity(
                call_model,
                ModelCallInput(
                    role="coder",
                    schema_name="session_plan",
                    messages=chat,
                    settings=self.inp.settings,
                    stream_key=st.journal_key,
                ),
                start_to_close_timeout=options.model_timeout(self.inp.settings),
                heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
                retry_policy=options.model_retry(self.inp.settings),
                summary=f"iteration {n}: coder answers",
            )
            self._usage([out.usage])
            parsed, errors = (
                (None, "the answer was cut off by the length limit")
                if out.truncated
                else parse_answer("session_plan", out.text)
            )
            if isinstance(parsed, SessionPlan):
                st.current.summary = parsed.summary
                return parsed
            chat = [
                *chat,
                ChatMessage(role="assistant", content=out.text),
                ChatMessage(
                    role="user", content=f"That answer is invalid:\n{errors}\nAnswer again: JSON matching the schema."
                ),
            ]
        first = errors.splitlines()[0] if errors else "invalid"
        tries = self.inp.settings.bounds.max_parse_repairs + 1
        raise IterationError(f"the coder's answer stayed invalid after {tries} answer(s): {first}")

    def _apply_ops(self, plan: SessionPlan, n: int) -> bool:
        """The model's operations, through the same code as the ``iter tool`` updates; a refused one
        is told to the next iteration. Returns whether anything changed."""
        st = self.state
        changed = False
        ops: list[tuple[str, object]] = [
            *(("add", t) for t in plan.new_tasks),
            *(("dep", d) for d in plan.task_dependencies),
            *(("status", s) for s in plan.task_updates),
            *(("note", x) for x in plan.notes),
        ]
        for kind, op in ops:
            try:
                if kind == "add":
                    add_tasks(st, [op], n, "model")  # type: ignore[list-item]
                elif kind == "dep":
                    add_dependency(st, op, n)  # type: ignore[arg-type]
                elif kind == "status":
                    set_status(st, op, n)  # type: ignore[arg-type]
                else:
                    add_note(st, op, n, "model")  # type: ignore[arg-type]
                changed = True
            except ToolError as exc:
                push_bounded(st.feedback, f"refused {kind} operation: {exc}")
        if plan.new_tasks:
            self._event("plan", f"{len(plan.new_tasks)} new task(s)")
        return changed or plan.session_complete

    def _task_for(self, plan: SessionPlan, offered: Task | None, n: int) -> Task | None:
        task = self.state.task(plan.task_id) if plan.task_id else None
        if plan.task_id and task is None:
            push_bounded(self.state.feedback, f"task_id #{plan.task_id} does not exist")
        if task is None and plan.steps:
            task = offered
        if task is not None and plan.steps and task.status == "remaining":
            set_status(self.state, TaskStatusChange(id=task.id, status="in_progress"), n)
        self.state.current.task_id = task.id if task else None
        return task

    async def _work(self, n: int, plan: SessionPlan, task: Task | None) -> tuple[IterationOutcome, str]:
        """Safety review, execution, verification with a bounded fix round, as in a request."""
        desc = self._description(plan, task)
        findings = await self._safety(plan.steps, desc)
        if findings:
            return "blocked", "the safety review blocked the plan; nothing ran: " + "; ".join(
                f.line() for f in findings
            )
        tree = [StepNode(step=s) for s in plan.steps]
        self.state.current.steps = [f"{s.id} {s.type}" for s in plan.steps]
        results = await self._execute(plan.steps, [f"i{n}-{i}-{_safe(s.id)}" for i, s in enumerate(plan.steps)])
        checks = [s for s in plan.steps if isinstance(s, VerifyStep)]
        for fix_round in range(1, MAX_FIX_ROUNDS + 2):
            review = await self._post_review(desc, task, tree, results)
            self.state.current.verdict = review.verdict
            if review.verdict == "PASS":
                return "passed", ""
            failing = "; ".join(c.criterion + ": " + c.evidence for c in review.criteria if not c.met)[:1000]
            if review.verdict != "FAIL" or not review.fix_steps or fix_round > MAX_FIX_ROUNDS:
                return "failed", f"verification {review.verdict}" + (f" ({failing})" if failing else "")
            fixes = [s.model_copy(update={"id": f"f{fix_round}-{s.id}"}) for s in review.fix_steps]
            findings = await self._safety([*fixes, *checks], desc)
            if findings:
                return "blocked", "the reviewer's fix steps were blocked: " + "; ".join(f.line() for f in findings)
            _parent(tree, results).children.extend(StepNode(step=s, depth=1) for s in fixes)
            keys = [f"i{n}-f{fix_round}-{i}" for i in range(len(fixes))]
            keys += [f"i{n}-r{fix_round}-{i}" for i in range(len(checks))]
            results = [*results, *await self._execute([*fixes, *checks], keys)]
        return "failed", "verification failed"  # pragma: no cover - the loop returns

    async def _execute(self, steps: list[Step], keys: list[str]) -> list[StepResult]:
        """One activity per step, so a pause takes effect between steps; a failed change stops the rest."""
        assert self.inp
        results: list[StepResult] = []
        stop = False
        for step, key in zip(steps, keys, strict=True):
            if stop:
                results.append(
                    StepResult(
                        step_id=step.id,
                        run_key=key,
                        kind=step.type,
                        ok=False,
                        skipped=True,
                        output="skipped: an earlier step failed",
                    )
                )
                continue
            await self._checkpoint()
            self._phase("execute", f"step {step.id} ({step.type})")
            out = await workflow.execute_activity(
                execute_steps,
                ExecuteInput(
                    workflow_id=self.state.journal_key,
                    workspace=self.inp.workspace,
                    steps=[step],
                    run_keys=[key],
                    settings=self.inp.settings,
                    network_steps=[step.id] if self._network.get(step.id) == step else [],
                ),
                start_to_close_timeout=options.execution_timeout(self.inp.settings, [getattr(step, "timeout_s", None)]),
                heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
                retry_policy=options.FAST_RETRY,
                summary=f"execute {key}"[:200],
            )
            result = out.results[0]
            results.append(result)
            self.state.current.results.append(f"{step.id} {'ok' if result.ok else 'FAILED'}")
            stop = not result.ok and step.type != "verify"
        return results

    async def _safety(self, steps: list[Step], desc: str) -> list[Finding]:
        assert self.inp
        self._phase("review", f"8-point safety review of {len(steps)} step(s)")
        out = await workflow.execute_activity(
            safety_review,
            SafetyReviewInput(
                workspace=self.inp.workspace,
                request_description=desc,
                steps=steps,
                settings=self.inp.settings,
                stream_key=self.state.journal_key,
            ),
            start_to_close_timeout=options.model_timeout(self.inp.settings),
            heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
            retry_policy=options.model_retry(self.inp.settings),
            summary="safety review",
        )
        self._usage(out.usage)
        # Network only for a step a policy rule approved, in a review the whole plan passed, and
        # only as reviewed: the approval is of the step's content, not of its id.
        passed = out.verdict == "PASS" and not out.findings
        self._network = {s.id: s for s in steps if s.id in out.network_steps} if passed else {}
        return out.findings

    async def _post_review(
        self, desc: str, task: Task | None, tree: list[StepNode], results: list[StepResult]
    ) -> PostReview:
        assert self.inp
        self._phase("verify", "the reviewer checks the result")
        criteria = [f"task #{task.id} is done: {task.content}"] if task else []
        out = await workflow.execute_activity(
            post_review,
            PostReviewInput(
                workspace=self.inp.workspace,
                request_description=desc,
                criteria=[*criteria, "the verify steps pass"],
                tree=tree,
                results=results,
                touched_paths=sorted({n.step.path for n in iter_nodes(tree) if isinstance(n.step, FileStep)}),
                settings=self.inp.settings,
                stream_key=self.state.journal_key,
            ),
            start_to_close_timeout=options.model_timeout(self.inp.settings),
            heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
            retry_policy=options.model_retry(self.inp.settings),
            summary="post-execution review",
        )
        self._usage(out.usage)
        return out.review

    async def _commit(self, n: int, plan: SessionPlan, task: Task | None) -> tuple[str, list[str]]:
        assert self.inp
        if not self.state.git_on:
            return "", []
        self._phase("commit", "committing what the iteration changed")
        what = f"task #{task.id}: {task.content}" if task else plan.summary
        message = f"iter {self.state.name}: {what}"[:200] + f"\n\n{plan.summary}\n\nIter-Session: {self.state.name}"
        out = await workflow.execute_activity(
            git_commit,
            GitCommitInput(
                workspace=self.inp.workspace,
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
                    workspace=self.inp.workspace,
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
            self._event("hooks", f"{point} hooks could not run: {_cause(exc)}")
            return ""
        for report in out.reports:
            self.state.hook_reports.append(report)
            if not report.ok:
                why = "timed out" if report.timed_out else report.error or f"exit {report.exit_code}"
                self._event("hooks", f"{point} hook failed ({why}): {report.command[:120]}")
        del self.state.hook_reports[:-MAX_HOOK_REPORTS_KEPT]
        return out.piped

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

    async def _session_end(self) -> None:
        st = self.state
        await self._task_hooks()
        if st.complete:
            st.status = "completed"
        elif st.stop_requested:
            st.status = "stopped"
        elif st.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            st.status = "failed"
            st.error = st.feedback[-1] if st.feedback else "too many failed iterations"
        else:
            st.status = "limit"
        await self._hooks("session_end")  # nothing is piped: no iteration follows
        st.phase = "done"
        self._event("done", f"session {st.status} after {st.iteration} iteration(s)")
        self._publish()

    async def _release(self) -> None:
        """The executor (a container) and the step journals, at the session's end and before it
        continues as new: no step of a finished run can be retried, and history holds every result.
        Idempotent and quick, so a local activity."""
        assert self.inp
        await workflow.execute_local_activity(
            release_executor,
            args=[self.state.journal_key, self.inp.workspace, self.inp.settings],
            start_to_close_timeout=options.CLEANUP_TIMEOUT,
            retry_policy=options.CLEANUP_RETRY,
        )

    async def _continue_as_new(self) -> None:
        assert self.inp
        # Updates in flight finish in this run; what they change travels in the carried state.
        await self._release()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._event("continue", f"continuing as new after {workflow.info().get_current_history_length()} events")
        workflow.continue_as_new(self.inp.model_copy(update={"carry": self.state, "continued": True}))

    # --- state -----------------------------------------------------------------------------------

    def _finished(self) -> bool:
        assert self.inp
        st = self.state
        limit = self.inp.settings.iterations
        return (
            st.complete
            or st.stop_requested
            or st.consecutive_errors >= MAX_CONSECUTIVE_ERRORS
            or (limit > 0 and st.build_iterations >= limit)
        )

    def _history_full(self) -> bool:
        assert self.inp
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.inp.history_limit
            or info.get_current_history_size() >= HISTORY_BYTES_LIMIT
        )

    async def _checkpoint(self, boundary: bool = False) -> None:
        """Between steps and iterations: where a pause takes effect. Between iterations a paused
        session that is completed or stopped ends without being resumed first."""
        if self.state.paused:
            self._event(self.state.phase, "paused")
            await workflow.wait_condition(lambda: not self.state.paused or (boundary and self._finished()))
            self._event(self.state.phase, "resumed" if not self.state.paused else "ending while paused")

    def _budget(self) -> int:
        assert self.inp
        return max(int(self.inp.settings.llm.num_ctx * CHARS_PER_TOKEN * PROMPT_SHARE_OF_CONTEXT), MIN_PROMPT_BUDGET)

    def _description(self, plan: SessionPlan, task: Task | None) -> str:
        what = f"task #{task.id}: {task.content}" if task else "work outside the task list"
        return f"Session {self.state.name}, iteration {self.state.iteration}, {what}. Plan: {plan.summary}"

    def _usage(self, usages: list[ModelUsage]) -> None:
        for u in usages:
            self.state.prompt_tokens += u.prompt_tokens
            self.state.completion_tokens += u.completion_tokens
            self.state.model_calls += 1

    def _phase(self, phase: str, message: str) -> None:
        self.state.phase = phase
        workflow.set_current_details(f"**{phase}** (iteration {self.state.iteration}): {message}")

    def _event(self, phase: str, message: str) -> None:
        st = self.state
        st.event_seq += 1
        st.events.append(SessionEvent(seq=st.event_seq, iteration=st.iteration, phase=phase, message=message[:500]))
        del st.events[:-MAX_EVENTS_KEPT]
        self._phase(phase, message)

    def _publish(self) -> None:
        workflow.upsert_search_attributes(
            [
                search.ITEM.value_set(self.state.name),
                search.PHASE.value_set("done" if self.state.phase == "done" else "session"),
                search.OUTCOME.value_set(self.state.status),
            ]
        )

    def _open(self) -> None:
        if self.state.phase == "done":
            raise ToolError(f"session {self.state.name} has ended; `iter build --name {self.state.name}` resumes it")

    # --- updates: the tools ----------------------------------------------------------------------

    @workflow.update
    def task_add(self, item: NewTask) -> Task:
        return _applied(lambda: add_tasks(self.state, [item], self.state.iteration, "user")[0])

    @task_add.validator
    def _check_task_add(self, item: NewTask) -> None:
        self._open()
        check_new_tasks(self.state, [item])

    @workflow.update
    def task_batch_add(self, items: list[NewTask]) -> list[Task]:
        return _applied(lambda: add_tasks(self.state, items, self.state.iteration, "user"))

    @task_batch_add.validator
    def _check_task_batch_add(self, items: list[NewTask]) -> None:
        self._open()
        if not items:
            raise ToolError("no tasks given")
        check_new_tasks(self.state, items)

    @workflow.update
    def task_status(self, change: TaskStatusChange) -> Task:
        return _applied(lambda: set_status(self.state, change, self.state.iteration))

    @task_status.validator
    def _check_task_status(self, change: TaskStatusChange) -> None:
        self._open()
        check_status(self.state, change)

    @workflow.update
    def task_priority(self, change: TaskPriorityChange) -> Task:
        return _applied(lambda: set_priority(self.state, change, self.state.iteration))

    @task_priority.validator
    def _check_task_priority(self, change: TaskPriorityChange) -> None:
        self._open()
        check_priority(self.state, change)

    @workflow.update
    def task_depends(self, dep: TaskDependency) -> Task:
        return _applied(lambda: add_dependency(self.state, dep, self.state.iteration))

    @task_depends.validator
    def _check_task_depends(self, dep: TaskDependency) -> None:
        self._open()
        check_dependency(self.state, dep)

    @workflow.update
    def note_add(self, note: NewNote) -> Note:
        return _applied(lambda: add_note(self.state, note, self.state.iteration, "user"))

    @note_add.validator
    def _check_note_add(self, note: NewNote) -> None:
        self._open()

    @workflow.update
    def iteration_summary(self, item: NewSummary) -> IterationSummary:
        record = IterationSummary(iteration=self.state.iteration, summary=item.summary, source="user")
        return _applied(lambda: add_summary(self.state, record))

    @iteration_summary.validator
    def _check_iteration_summary(self, item: NewSummary) -> None:
        self._open()

    @workflow.update
    def session_complete(self) -> str:
        def apply() -> str:
            check_complete(self.state)
            self.state.complete = True
            self._event("iteration", "session-complete accepted; the session ends after the current iteration")
            return f"session {self.state.name} is complete; it ends after the current iteration"

        return _applied(apply)

    @session_complete.validator
    def _check_session_complete(self) -> None:
        self._open()
        check_complete(self.state)

    # --- signals and queries ---------------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        self.state.paused = True

    @workflow.signal
    def resume(self) -> None:
        self.state.paused = False

    @workflow.signal
    def message(self, text: str) -> None:
        push_bounded(self.state.pending_messages, text[:20_000])
        self._event("message", f"message queued for iteration {self.state.iteration + 1}")

    @workflow.signal
    def stop(self) -> None:
        """No new iteration starts; the current one finishes (a paused session resumes to finish it)."""
        self.state.stop_requested, self.state.paused = True, False
        self._event("stop", "stop requested; the session ends after the current iteration")

    @workflow.query
    def status(self) -> SessionState:
        return self.state

    @workflow.query
    def task_list(self) -> list[Task]:
        return self.state.tasks

    @workflow.query
    def task_next(self) -> Task | None:
        return next_task(self.state.tasks)

    @workflow.query
    def note_list(self, note_type: str = "") -> list[Note]:
        return [n for n in self.state.notes if not note_type or n.type == note_type]


def _applied(apply: Callable[[], T]) -> T:
    """An update handler's work; a refusal becomes an update failure, never a failed workflow task."""
    try:
        return apply()
    except ToolError as exc:
        raise ApplicationError(str(exc), type="ToolError", non_retryable=True) from None


def _cause(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
    return str(cause)


def _safe(step_id: str) -> str:
    """A step id as a journal directory name: the model chose it, so it may hold anything."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", step_id)[:40]


def _parent(tree: list[StepNode], results: list[StepResult]) -> StepNode:
    """Fixes hang under the first step that failed, or under the last one."""
    failed = next((r.step_id for r in results if not r.ok and not r.skipped), None)
    return next((node for node in iter_nodes(tree) if node.step.id == failed), tree[-1])
