"""RequestWorkflow: one feature request through prompt, stream, parse and review, execute, and
review and fix, durably. Each phase is a short method; every loop has a configured bound."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import holds
from workflows.controls import Controls
from workflows.live import LiveStream
from workflows.phases import Phases, parse_reply, publish, with_repair

with workflow.unsafe.imports_passed_through():
    from activities.evidence import gather_evidence
    from activities.prompt import build_prompt
    from models import rounds
    from models.clip import clip_middle
    from models.criteria import with_criteria
    from models.details import Details
    from models.events import Finished, MessageQueued, PhaseChanged, post_verdict, safety_verdict
    from models.holds import effective_mode
    from models.plan import Plan, Step, StepNode, iter_nodes, tree_to_json
    from models.progress import request_progress
    from models.replan import answer_key, changed_temperature, direct_prompt, with_verify
    from models.request import (
        ChatMessage,
        Evidence,
        EvidenceInput,
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
    from models.review import Finding, PostReview
    from workflows import options

MAX_EVENTS_KEPT = 200  # the state's event log is for people; history keeps everything
REPAIR_ASK = "Answer again: JSON matching the schema, complete."
CODER_FIXES_PATCH = "coder-writes-missing-fixes"  # 2026-12-02: a FAIL without fix steps asks the coder
OVERRULED_PASS_PATCH = "second-overruled-pass-to-the-coder"  # 2026-12-02: told once, PASS again: the coder
# 2026-12-07: told once in any round, a reviewer is not told again (the 0.5B one spent its repairs so)
OVERRULED_ONCE_PATCH = "overruled-pass-told-once-per-request"
WRITE_PATCH = "plan-then-write"  # 2026-12-07: each file's code is written in an answer of its own
# 2026-12-08: a criterion that is code is a check of the plan; a rewrite keeps the file's definitions
CRITERIA_PATCH = "criteria-as-checks-and-kept-definitions"
FIX_OUTPUT_CHARS = 4_000  # of each failed step's output, and of each file's content, shown to the coder
FIX_ASK = (
    "Answer with the fix as a plan: a file step for every file you change, content left empty (you write "
    "each file next; read the failure: fix the code, not the tests), then the verify step."
)


@workflow.defn
class RequestWorkflow(Controls):
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
        self._definitions: dict[str, list[str]] = {}  # each Python file's top-level names before the request
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
            self._test_command, self._definitions = prompt.test_command, prompt.definitions
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
                    keep = self._definitions if workflow.patched(CRITERIA_PATCH) else {}
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

    async def _verify(self) -> None:
        """PASS ends it; FAIL injects reviewed fix steps under the failing step; INFO_NEEDED gathers evidence."""
        assert self.inp
        bounds = self.inp.settings.bounds
        guidance: list[str] = []
        while True:
            await self._enter("verify", "the reviewer is checking the result")
            review = await self._post_review(guidance)
            guidance = []
            self.state.review, self.state.verify_verdict = review, review.verdict
            self._verdict(post_verdict(review))
            if review.verdict == "PASS":
                why = rounds.overruled_pass(self._last_results)
                if not why:
                    self._finish("passed", "acceptance criteria met")
                    return
                # A rule of the workflow, whatever the reviewer says: no PASS over a failed step.
                self.state.verify_verdict = "FAIL"
                told = self._pass_overruled or (self._overruled_before and workflow.patched(OVERRULED_ONCE_PATCH))
                if told and workflow.patched(OVERRULED_PASS_PATCH):
                    # Told once and it said PASS again: it cannot judge this failure (a small model
                    # repeats its verdict), so the failure goes to the coder as a FAIL without a fix.
                    self._note("verify", f"PASS overruled again: {why}; asking the coder for the fix")
                    review = review.model_copy(update={"verdict": "FAIL", "fix_steps": []})
                else:
                    if not self._review_repair(f"PASS overruled: {why}"):
                        self._finish("failed", f"the reviewer said PASS, but {why}, and no later round repaired it")
                        return
                    self._pass_overruled = self._overruled_before = True
                    guidance = [
                        f"Your PASS cannot stand: {why}. A request passes only when every step of its last round "
                        "succeeded. Answer FAIL with fix steps, or INFO_NEEDED."
                    ]
                    continue
            if review.verdict == "INFO_NEEDED":
                if self.state.info_rounds >= bounds.max_info_rounds or not review.info_requests:
                    self._finish("failed", f"the reviewer still lacked evidence after {self.state.info_rounds} rounds")
                    return
                await self._gather(review)
                continue
            parent = self._fix_parent()
            round_no = self.state.fix_rounds + 1
            deep_enough = parent.depth + 1 > bounds.max_fix_depth
            code_fixes = [s for s in review.fix_steps if s.type != "verify"]
            if not code_fixes and not deep_enough and workflow.patched(CODER_FIXES_PATCH):
                fixes = await self._coder_fixes(round_no)
                if self.state.phase == "done":
                    return  # the coder's answer stayed invalid: _plan finished the request
            else:
                fixes = [s.model_copy(update={"id": f"f{round_no}-{s.id}"}) for s in review.fix_steps]
            if not fixes or deep_enough:
                self._finish("failed", f"verification failed after {self.state.fix_rounds} fix rounds")
                return
            taken = rounds.clashing_ids(fixes, self.state.tree)
            if taken:
                if not self._review_repair(f"fix step ids already taken: {', '.join(taken)}"):
                    self._finish("failed", f"the reviewer's fix steps kept reusing step ids ({', '.join(taken)})")
                    return
                guidance = [f"Your fix step ids clash with existing steps ({', '.join(taken)}): choose new ids."]
                continue
            # What an earlier failure skipped runs after the fixes (it never ran), then the plan's
            # own checks again: fresh evidence for the next verdict.
            reruns = [*rounds.skipped_steps(self.state.tree, self._last_results), *rounds.checks(self.state.tree)]
            findings = await self._safety([*fixes, *reruns])
            if findings:
                if self.state.block_replans >= bounds.max_block_replans:
                    self._finish("blocked", "the reviewer's fix steps stayed unsafe; they did not run")
                    return
                self.state.block_replans += 1
                guidance = ["Your fix steps were blocked by the safety review:", *(f"- {f.line()}" for f in findings)]
                continue
            self.state.fix_rounds = round_no
            fix_nodes = [StepNode(step=s, depth=parent.depth + 1) for s in fixes]
            parent.children.extend(fix_nodes)
            self._last_fix = fix_nodes[-1]
            await self._execute([*fixes, *reruns], [s.id for s in fixes] + [f"r{round_no}-{s.id}" for s in reruns])
            self._pass_overruled = False  # a new round: the reviewer judges it afresh

    async def _coder_fixes(self, round_no: int) -> list[Step]:
        """The fix from the coder when the reviewer said FAIL without one (or only re-ran a check): it
        sees its plan and what failed. A small reviewer judges but writes no code (Qwen 0.5B: FAIL, no
        fix steps, every time); the coder has the files and writes code."""
        assert self.inp
        failed = [r for r in self._last_results if not r.ok and not r.skipped]
        report = "\n\n".join(
            f"Step {r.step_id} ({r.kind}) failed (exit {r.exit_code}):\n{clip_middle(r.output, FIX_OUTPUT_CHARS)}"
            for r in failed
        )
        ran = json.dumps({"summary": self.state.summary, "steps": tree_to_json(self.state.tree, FIX_OUTPUT_CHARS)})
        self._note("verify", "the reviewer gave no fix: asking the coder for one")
        plan = await self._plan(
            [
                *self._prompt,
                ChatMessage(role="assistant", content=ran),
                ChatMessage(role="user", content=f"That plan ran, and it does not work yet.\n{report}\n{FIX_ASK}"),
            ]
        )
        if plan is None:
            return []
        return [s.model_copy(update={"id": f"f{round_no}-{s.id}"}) for s in plan.steps if s.type != "verify"]

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

    def _review_repair(self, why: str) -> bool:
        """Count a reviewer answer iter refused; False once the bound is spent."""
        assert self.inp
        if self.state.review_repairs >= self.inp.settings.bounds.max_parse_repairs:
            return False
        self.state.review_repairs += 1
        self._note("verify", why)
        return True

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

    async def _post_review(self, guidance: list[str]) -> PostReview:
        assert self.inp
        return await self.phases.review_result(
            self._request_description(),
            self._criteria(),
            self.state.tree,
            self.state.results,
            evidence=self.evidence,
            guidance=[*guidance, *self._take_guidance()],
        )

    async def _gather(self, review: PostReview) -> None:
        assert self.inp
        self.state.info_rounds += 1
        out = await workflow.execute_activity(
            gather_evidence,
            EvidenceInput(
                workflow_id=self.state.run_key,
                workspace=self.phases.workspace,
                requests=review.info_requests,
                round=self.state.info_rounds,
                settings=self.inp.settings,
                journal_seal=self.phases.journal_seal,
            ),
            start_to_close_timeout=options.EVIDENCE_TIMEOUT,
            heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
            retry_policy=options.FAST_RETRY,
            task_queue=options.exec_queue(),
            summary=f"gather evidence, round {self.state.info_rounds}",
        )
        self.evidence.extend(out.items)

    async def _call_model(
        self, role: Role, schema_name: SchemaName, messages: list[ChatMessage], temperature: float | None = None
    ) -> ModelCallOutput:
        guidance = self._take_guidance()
        if guidance:
            messages.append(ChatMessage(role="user", content="Guidance from the user:\n" + "\n".join(guidance)))
        return await self.phases.ask_model(
            role, schema_name, messages, f"{role} answers ({schema_name})", temperature=temperature
        )

    def _fix_parent(self) -> StepNode:
        """Fixes hang under the step that failed. When only a re-run check failed, the last fix did
        not work, so the next fixes hang under it: each round goes one level deeper and the depth
        bound ends the loop."""
        by_id = {n.step.id: n for n in iter_nodes(self.state.tree)}
        failed = next((r for r in self._last_results if not r.ok and not r.skipped), None)
        rerun = failed is not None and failed.run_key != failed.step_id and not failed.run_key.startswith("r0-")
        if failed and not rerun and failed.step_id in by_id:
            return by_id[failed.step_id]
        if self._last_fix is not None:
            return self._last_fix
        return by_id[failed.step_id] if failed and failed.step_id in by_id else self.state.tree[-1]

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
