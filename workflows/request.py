"""RequestWorkflow: one feature request through prompt, stream, parse and review, execute, and
review and fix, durably. Each phase is a short method; every loop has a configured bound."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import holds
from workflows.live import LiveStream
from workflows.phases import Phases, parse_reply, publish, with_repair
from workflows.verify_loop import VerifyLoop

with workflow.unsafe.imports_passed_through():
    from activities.prompt import build_prompt
    from models.criteria import with_criteria
    from models.details import Details
    from models.events import Finished, MessageQueued, PhaseChanged, safety_verdict
    from models.holds import effective_mode
    from models.plan import Plan, Step, StepNode
    from models.progress import request_progress
    from models.replan import answer_key, changed_temperature, direct_prompt, with_verify
    from models.request import (
        ChatMessage,
        Evidence,
        ModelCallOutput,
        Outcome,
        Phase,
        PhaseEvent,
        PromptInput,
        RequestInput,
        RequestResult,
        RequestState,
        Role,
        SchemaName,
        StepResult,
    )
    from models.review import Finding
    from workflows import options

MAX_EVENTS_KEPT = 200  # the state's event log is for people; history keeps everything
REPAIR_ASK = "Answer again: JSON matching the schema, complete."
WRITE_PATCH = "plan-then-write"  # 2026-12-07: each file's code is written in an answer of its own
# 2026-12-08: a criterion that is code is a check of the plan; a rewrite keeps the file's definitions
CRITERIA_PATCH = "criteria-as-checks-and-kept-definitions"


@workflow.defn
class RequestWorkflow(VerifyLoop):
    state: RequestState
    phases: Phases  # the run's activity calls, from the start of run(): the key needs the run's id

    def __init__(self) -> None:
        self.state = RequestState()
        self.inp: RequestInput | None = None
        self.evidence: list[Evidence] = []
        self._messages: list[ChatMessage] = []
        self._last_results: list[StepResult] = []
        self._last_fix: StepNode | None = None
        self.live = LiveStream()  # the event stream every viewer reads (models/events.py)
        self.details = Details()  # the web UI's current details
        self._finish_message = ""
        self._prompt: list[ChatMessage] = []  # the system prompt and the request, as first built
        self._test_command = ""
        self._answers: set[str] = set()  # every plan answer so far, normalised: none was accepted
        self._problem = ""  # what was wrong with the last answer, for a changed call after a repeat
        self._last_key = ""  # the normalised text of the plan _plan returned last
        self._blocked: set[str] = set()  # answers the safety review blocked
        self._pass_overruled = False  # the reviewer was told this round that its PASS cannot stand
        self._overruled_before = False  # ... in any round: it is not told again, the coder gets the failure

    # --- the process -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RequestInput) -> RequestResult:
        self.inp = inp
        info = workflow.info()
        self.state.run_id = info.run_id
        self.state.workflow_id, self.state.project, self.state.request_id = (
            info.workflow_id,
            inp.project.name,
            inp.request_id,
        )
        self.phases = Phases(
            inp.settings, inp.workspace, self.state.run_key, lambda usage: self.state.usage.extend(usage)
        )
        self.details.title = self._request_description()
        try:
            await self._isolate()
            plan = await self._plan()
            plan = await self._review(plan) if plan else None
            if plan:
                await self._execute(plan.steps, [f"r0-{s.id}" for s in plan.steps])
                await self._verify()
        except (asyncio.CancelledError, ActivityError) as exc:
            if not is_cancelled_exception(exc):
                cause = getattr(exc, "cause", None)
                message = str(cause or exc)
                self._finish("failed", message)
                await self.phases.release()
                await self._land()
                self._closing()
                kind = getattr(cause, "type", None) or "ActivityFailed"
                raise ApplicationError(message, type=kind, non_retryable=True) from None
            self._finish("cancelled", "cancelled by the user")
            await self.phases.release()
            await self._land()
            self._closing()
            raise
        await self.phases.release()
        await self._land()
        self._closing()
        return RequestResult(state=self.state)

    async def _isolate(self) -> None:
        """A worktree of the request's own: the user's checkout stays untouched until it lands."""
        assert self.inp
        await self._enter("isolate", "making the request's own worktree")
        self.state.sandbox = await self.phases.isolate(self.inp.workspace, self.inp.request_id, self.state.run_key)

    async def _land(self) -> None:
        """A passed request's change goes into the checkout; any other keeps it on its branch."""
        assert self.inp
        message = f"iter {self.inp.request_id}: {self._request_description()}"[:200]
        if self.state.summary:
            message += f"\n\n{self.state.summary}"
        landing = await self.phases.land(self.state.outcome == "passed", message)
        if landing is not None:
            self.state.landing = landing
            if landing.message:
                self._note("done", landing.message)

    async def _plan(self, messages: list[ChatMessage] | None = None) -> Plan | None:
        """Prompt, stream, parse; an invalid answer goes back with its errors, a bounded number of times."""
        assert self.inp
        if messages is None:
            await self._enter("prompt", "building the prompt")
            prompt = await workflow.execute_local_activity(
                build_prompt,
                PromptInput(
                    project=self.inp.project,
                    request_id=self.inp.request_id,
                    workspace=self.phases.workspace,
                    max_file_bytes=self.inp.settings.bounds.max_file_bytes,
                    charter=self.inp.charter,
                ),
                start_to_close_timeout=options.PROMPT_TIMEOUT,
                summary=f"build the prompt for {self.inp.request_id}",
            )
            self.state.prompt_tokens, self.state.context_files = prompt.approx_tokens, len(prompt.context_files)
            self._test_command = prompt.test_command
            self._messages = [
                ChatMessage(role="system", content=prompt.system),
                ChatMessage(role="user", content=prompt.user),
            ]
            self._prompt = list(self._messages)
        else:
            self._messages = messages
        temperature: float | None = None
        errors = ""
        key = ""
        answers = self.inp.settings.bounds.max_parse_repairs + 1
        for attempt in range(answers):
            await self._enter("stream", "the coder is answering" + (f" (repair {attempt})" if attempt else ""))
            out = await self._call_model("coder", "plan", self._messages, temperature)
            await self._enter("parse", "parsing the plan")
            key = answer_key(out.text)
            if key in self._answers:
                # The same answer again: asking the same way would get it a third time.
                self.state.repeated_answers += 1
                temperature = changed_temperature(self.inp.settings.llm.temperature, self.state.repeated_answers)
                self._note("parse", f"the coder repeated an earlier answer; asking directly, temperature {temperature}")
                self._messages = [
                    self._prompt[0],
                    ChatMessage(role="user", content=direct_prompt(self._prompt[1].content, self._problem)),
                ]
                errors = "the same answer as before: " + self._problem
                continue
            self._answers.add(key)
            self._last_key = key
            parsed, errors = parse_reply("plan", out)
            if isinstance(parsed, Plan):
                plan, added = with_verify(parsed, self._test_command)
                if added:
                    self.state.added_verify = added
                    self._note("parse", f"the plan had no verify step: added the project's test command `{added}`")
                plan = self._with_criteria(plan)
                if workflow.patched(WRITE_PATCH):
                    keep = workflow.patched(CRITERIA_PATCH)
                    plan = await self.phases.write_files(
                        plan,
                        self._messages,
                        self.inp.settings.bounds.max_parse_repairs,
                        self._writing,
                        keep,
                        self._request_text(),
                    )
                self.state.summary = plan.summary
                return plan
            self.state.parse_repairs += 1
            self._problem = errors
            self._note("parse", f"invalid plan: {errors.splitlines()[0]}")
            self._messages = with_repair(self._messages, out.text, errors, REPAIR_ASK)
        if key in self._blocked:
            self._finish(
                "blocked", "the coder kept sending the blocked plan back, even when asked differently; nothing ran"
            )
        else:
            self._finish("failed", f"the coder's plan stayed invalid after {answers} answers: {errors}")
        return None

    async def _review(self, plan: Plan) -> Plan | None:
        """The 8-point gate; a blocked plan goes back to the coder with the reasons, bounded."""
        assert self.inp
        for replan in range(self.inp.settings.bounds.max_block_replans + 1):
            findings = await self._safety(plan.steps)
            if not findings:
                self.state.tree = [StepNode(step=s) for s in plan.steps]
                return plan
            if replan == self.inp.settings.bounds.max_block_replans:
                break
            self.state.block_replans += 1
            self._blocked.add(self._last_key)
            reasons = "\n".join(f"- {f.line()}" for f in findings)
            self._problem = "the safety review blocked it:\n" + reasons
            replanned = await self._plan(
                [
                    *self._messages,
                    ChatMessage(role="assistant", content=plan.model_dump_json(exclude_none=True)),
                    ChatMessage(
                        role="user", content=f"The safety review blocked this plan:\n{reasons}\nPropose a safe plan."
                    ),
                ]
            )
            if replanned is None:
                return None
            plan = replanned
        self._finish("blocked", f"the plan stayed unsafe after {self.state.block_replans} re-plans; nothing ran")
        return None

    async def _execute(self, steps: list[Step], run_keys: list[str]) -> list[StepResult]:
        self.details.step = ", ".join(run_keys)
        await self._enter("execute", f"running {len(steps)} steps")
        results = await self.phases.execute(steps, run_keys)
        self.details.step = ""
        self.state.results.extend(results)
        self._last_results = results
        return results

    # --- phase helpers ---------------------------------------------------------------------------

    def _writing(self, message: str) -> None:  # the write answers' lines, in the stream phase
        self._note("stream", message)

    def _with_criteria(self, plan: Plan) -> Plan:
        """Criteria that are code become the plan's own checks (models/criteria.py)."""
        if not workflow.patched(CRITERIA_PATCH):
            return plan
        plan, checked = with_criteria(plan, self._criteria())
        if checked:
            self._note("parse", "checked as code: " + "; ".join(checked))
        return plan

    async def _safety(self, steps: list[Step]) -> list[Finding]:
        await self._enter("review", f"8-point safety review of {len(steps)} steps")
        assert self.inp
        out = await self.phases.review_safety(self._request_description(), steps, self._take_guidance())
        self.state.safety_verdict = out.verdict
        self.state.findings = out.findings
        self._verdict(safety_verdict(out.verdict, out.findings))
        for f in out.findings:
            self._note("review", f"{f.verdict.upper()} {f.line()} [{f.source}]")
        mode = effective_mode(out.hold_mode, self.inp.hold_mode)
        findings = await holds.settle(
            self.state.holds, out.findings, steps, mode, lambda m: self._note("review", m), on_change=self._show_held
        )
        if out.verdict == "HOLD":
            self.state.safety_verdict = "BLOCK" if findings else ("APPROVED" if mode == "ask" else "PASS")
            self.state.findings = findings
        return findings

    async def _call_model(
        self, role: Role, schema_name: SchemaName, messages: list[ChatMessage], temperature: float | None = None
    ) -> ModelCallOutput:
        guidance = self._take_guidance()
        if guidance:
            messages.append(ChatMessage(role="user", content="Guidance from the user:\n" + "\n".join(guidance)))
        return await self.phases.ask_model(
            role, schema_name, messages, f"{role} answers ({schema_name})", temperature=temperature
        )

    # --- state -----------------------------------------------------------------------------------

    def _request_description(self) -> str:
        assert self.inp
        request = self.inp.project.request(self.inp.request_id)
        return request.description if request else self.inp.request_id

    def _criteria(self) -> list[str]:
        assert self.inp
        request = self.inp.project.request(self.inp.request_id)
        return request.criteria if request else []

    def _request_text(self) -> str:
        return "\n".join([self._request_description(), *self._criteria()])

    async def _enter(self, phase: Phase, message: str) -> None:
        """Phase boundaries are where pause takes effect."""
        if self.state.paused:
            self._note(self.state.phase, "paused")
            await workflow.wait_condition(lambda: not self.state.paused)
            self._note(self.state.phase, "resumed")
        if phase != self.state.phase:
            self.state.phase = phase
            self._publish()
        self._note(phase, message)

    def _note(self, phase: Phase, message: str) -> None:
        self.state.events.append(PhaseEvent(phase=phase, message=message))
        del self.state.events[:-MAX_EVENTS_KEPT]
        self.live.publish(PhaseChanged(phase=phase, message=message))
        self.details.phase, self.details.message = self.state.phase, message
        self._show_details()

    def _finish(self, outcome: Outcome, message: str) -> None:
        self.state.outcome = outcome
        self.state.phase = "done"
        if outcome != "passed":
            self.state.error = message
        self._note("done", f"{outcome}: {message}")
        self._finish_message = message
        self._publish()

    def _closing(self) -> None:
        """The stream's last event, once nothing more happens (release and landing are done)."""
        self.live.publish(Finished(outcome=self.state.outcome, message=self._finish_message))

    def _publish(self) -> None:
        publish(self.state.request_id, self.state.phase, self.state.outcome, project=self.state.project)

    def _take_guidance(self) -> list[str]:
        taken, self.state.pending_messages = self.state.pending_messages, []
        return taken

    # --- signals and queries (pause, resume, approve and deny are in ``Controls``) ----------------

    @workflow.signal
    def message(self, text: str) -> None:
        self.state.pending_messages.append(text)
        self.live.publish(MessageQueued(text=text[:2000]))

    @workflow.query
    def status(self) -> RequestState:
        return self.state

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Where the request stands, compact (models/progress.py): what viewers poll."""
        return request_progress(self.state)
