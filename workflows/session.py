"""SessionWorkflow: iteratr's loop as a durable workflow. Each iteration takes the next task
through the request pipeline's phases (plan, safety review, execute, verify), commits what it
changed and records a summary. Tasks and notes are the workflow's own state: updates change them
(``iter tool ...``), queries read them, signals pause, resume, stop and queue messages. The
workflow continues as new before its history grows large, carrying the whole state.

The activity calls it shares with a request are in ``phases.py``; a plan's work (safety review,
steps, verification and fixes) in ``session_work.py``; hooks and auto-commit in
``session_hooks.py``; the handlers (tools, signals, queries) in ``session_tools.py``."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

from workflows.live import LiveStream
from workflows.phases import Phases, parse_reply, with_repair
from workflows.session_hooks import cause
from workflows.session_work import SessionWork

with workflow.unsafe.imports_passed_through():
    from activities.session_prompt import render_session_prompt
    from models.details import Details, spec_title
    from models.events import Finished
    from models.request import ChatMessage, ModelUsage
    from models.session import (
        BlockStreak,
        IterationOutcome,
        IterationSummary,
        IterationView,
        NewNote,
        SessionPlan,
        SessionState,
        Task,
        TaskStatusChange,
        ToolError,
        add_note,
        add_summary,
        add_tasks,
        check_complete,
        next_task,
        push_bounded,
        set_status,
        spec_tasks,
    )
    from models.session_io import SessionInput, SessionPromptInput
    from workflows import options

MAX_CONSECUTIVE_ERRORS = 3  # iterations in a row that fail to even produce a plan end the session
STUCK_AFTER = 3  # a task blocked the same way this many times in a row is marked blocked
SUMMARY_CHARS = 1000
SUMMARY_FILES = 20
HISTORY_BYTES_LIMIT = 16 * 1024 * 1024  # continue as new well before Temporal's 50 MB limit
CHARS_PER_TOKEN = 4
PROMPT_SHARE_OF_CONTEXT = 0.5  # the rest of the context is for the answer and the schema
MIN_PROMPT_BUDGET = 4000
REPAIR_ASK = "Answer again: JSON matching the schema."
WRITE_PATCH = "session-plan-then-write"  # 2026-12-07: each file's code is written in an answer of its own


class IterationError(Exception):
    """An iteration that could not do its work (no usable plan, an activity that gave up)."""


@workflow.defn
class SessionWorkflow(SessionWork):
    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        # The state exists before any signal or update of the first workflow task is handled.
        self.inp: SessionInput | None = inp
        self.state = SessionState()
        self._taken: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._block_way = ""  # how the last safety review blocked, for noticing a stuck task
        self.live = LiveStream(inp.stream)  # carried over a continue-as-new: one stream per session
        self.details = Details(title=spec_title(inp.spec_text, inp.spec_path))
        self._shown_tasks, self._shown_notes = {}, 0
        self._begin(inp)
        self.phases = Phases(inp.settings, inp.workspace, self.state.journal_key, self._usage)

    # --- the process -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: SessionInput) -> SessionState:
        try:
            await self._isolate(inp)
            if not inp.continued:
                await self._session_start()
            while not self._finished():
                if self._history_full():
                    await self._continue_as_new()
                await self._checkpoint(ending=self._finished)
                if self._finished():
                    break
                await self._iteration()
            await self._session_end()
        except (asyncio.CancelledError, ActivityError) as exc:
            if not is_cancelled_exception(exc):
                raise
            self.state.status, self.state.phase = "cancelled", "done"
            self._event("done", "cancelled by the user")
            self._publish()
            await self.phases.release()
            await self._land()
            self.live.publish(Finished(outcome="cancelled", message="cancelled by the user"))
            raise
        await self.phases.release()
        await self._land()
        # The stream's last event, once nothing more happens (release and landing are done).
        self.live.publish(Finished(outcome=self.state.status, message=self.state.error))
        return self.state

    async def _isolate(self, inp: SessionInput) -> None:
        """The session's own worktree on ``iter/<session>`` (taken up again by a later ``iter build``),
        or, with ``worktree.session_branch: user``, the checkout itself. A continued run keeps its."""
        if inp.continued and self.state.sandbox is not None:
            self.phases.adopt(self.state.sandbox)
            return
        user = inp.settings.worktree.session_branch == "user"
        key = f"{self.state.journal_key}.{workflow.info().run_id}"
        self.state.sandbox = await self.phases.isolate(inp.workspace, inp.name, key, checkout=user, resume=True)
        self.state.landing = None

    async def _land(self) -> None:
        """A session that ended well lands its branch like a passed request; a failed or cancelled
        one leaves it on ``iter/<session>``."""
        assert self.inp
        message = f"iter session {self.state.name}: {self.state.commits} iteration commit(s)"
        # iteratr's promise: with auto-commit, each iteration's commit reaches the user's branch.
        mode = self.inp.settings.worktree.mode
        if self.inp.settings.auto_commit and mode == "apply":
            mode = "commit"
        landing = await self.phases.land(self.state.status in ("completed", "limit", "stopped"), message, mode)
        if landing is not None:
            self.state.landing = landing
            if landing.message:
                self._event("done", landing.message)

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
            if is_cancelled_exception(exc):
                raise  # `iter cancel`: the session ends, it is not an iteration that went wrong
            reason = cause(exc)
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
        self._notice_stuck(n, task, outcome, reason)
        await self._task_hooks()
        if outcome in ("failed", "blocked", "error"):
            piped = await self._hooks("on_error", error=reason)
            if piped:
                push_bounded(st.pending_hook_output, piped)
        piped = await self._hooks("post_iteration")
        if piped:
            push_bounded(st.pending_hook_output, piped)
        commit, files = "", list[str]()
        if plan is not None and plan.steps and outcome in ("passed", "failed"):
            commit, files = await self._commit(n, plan, task, outcome)
        elif plan is not None and plan.steps:
            self._event("commit", f"nothing committed: the iteration {outcome}")  # what hooks wrote stays uncommitted
        st.consecutive_errors = (
            st.consecutive_errors + 1 if outcome == "error" or (outcome == "planned" and reason) else 0
        )
        summary = plan.summary if plan else reason
        add_summary(
            st,
            IterationSummary(
                iteration=n,
                summary=summary[:SUMMARY_CHARS],
                outcome=outcome,
                task_id=task.id if task else None,
                commit=commit,
                files=files[:SUMMARY_FILES],
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

    def _notice_stuck(self, n: int, task: Task | None, outcome: IterationOutcome, reason: str) -> None:
        """A task blocked the same way STUCK_AFTER times in a row is marked blocked, with a stuck
        note, and the session moves on to the next task instead of trying it forever."""
        st = self.state
        if task is None:
            return
        if outcome != "blocked":
            st.block_streaks.pop(task.id, None)
            return
        way = self._block_way or reason
        last = st.block_streaks.get(task.id)
        count = last.count + 1 if last is not None and last.way == way else 1
        st.block_streaks[task.id] = BlockStreak(way=way, count=count)
        if count >= STUCK_AFTER:
            set_status(st, TaskStatusChange(id=task.id, status="blocked"), n)
            del st.block_streaks[task.id]
            note = f"task #{task.id} was blocked {count} times the same way; marked blocked, moving on: {reason}"
            add_note(st, NewNote(type="stuck", content=note[:4000]), n, "session")
            self._event("task", note)

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
                workspace=self.phases.workspace,
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
            summary=f"iteration {n}: build the prompt",
        )
        chat = [ChatMessage(role="system", content=prompt.system), ChatMessage(role="user", content=prompt.user)]
        errors = ""
        for attempt in range(self.inp.settings.bounds.max_parse_repairs + 1):
            self._phase("plan", "the coder is answering" + (f" (repair {attempt})" if attempt else ""))
            out = await self.phases.ask_model("coder", "session_plan", chat, f"iteration {n}: coder answers")
            parsed, errors = parse_reply("session_plan", out)
            if isinstance(parsed, SessionPlan):
                if workflow.patched(WRITE_PATCH):
                    repairs = self.inp.settings.bounds.max_parse_repairs
                    parsed = await self.phases.write_files(parsed, chat, repairs, lambda m: self._phase("plan", m))
                st.current.summary = parsed.summary
                return parsed
            chat = with_repair(chat, out.text, errors, REPAIR_ASK)
        first = errors.splitlines()[0] if errors else "invalid"
        tries = self.inp.settings.bounds.max_parse_repairs + 1
        raise IterationError(f"the coder's answer stayed invalid after {tries} answer(s): {first}")

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

    async def _session_end(self) -> None:
        st = self.state
        for task in st.tasks:  # nothing is worked on once the session ends (a stop mid-iteration)
            if task.status == "in_progress":
                set_status(st, TaskStatusChange(id=task.id, status="remaining"), st.iteration)
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

    async def _continue_as_new(self) -> None:
        assert self.inp
        # The executor and the step journals go before the run ends: no step of a finished run can
        # be retried, and history holds every result. Updates in flight finish in this run; what
        # they change travels in the carried state.
        await self.phases.release()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._event("continue", f"continuing as new after {workflow.info().get_current_history_length()} events")
        carried = {"carry": self.state, "continued": True, "stream": self.live.state()}
        workflow.continue_as_new(self.inp.model_copy(update=carried))

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

    def _budget(self) -> int:
        assert self.inp
        return max(int(self.inp.settings.llm.num_ctx * CHARS_PER_TOKEN * PROMPT_SHARE_OF_CONTEXT), MIN_PROMPT_BUDGET)

    def _usage(self, usages: list[ModelUsage]) -> None:
        for u in usages:
            self.state.prompt_tokens += u.prompt_tokens
            self.state.completion_tokens += u.completion_tokens
            self.state.model_calls += 1
