"""The request's verify loop: the reviewer's verdict on what ran, and what follows it. PASS ends
the request (never over a failed step: a rule of the workflow, whatever the reviewer says); FAIL
injects fix steps under the failing step, reviewed like any plan, from the reviewer or, when it
gave none, from the coder; INFO_NEEDED gathers read-only evidence. Every loop has its bound.

``VerifyLoop`` is the base class of ``RequestWorkflow``, which provides the phases it calls
(``_plan``, ``_safety``, ``_execute``) and the state helpers. Deterministic: no I/O here."""

from __future__ import annotations

import json

from temporalio import workflow

from workflows.controls import Controls
from workflows.phases import Phases

with workflow.unsafe.imports_passed_through():
    from activities.evidence import gather_evidence
    from models import rounds
    from models.clip import clip_middle
    from models.events import post_verdict
    from models.plan import Plan, Step, StepNode, iter_nodes, tree_to_json
    from models.request import (
        ChatMessage,
        Evidence,
        EvidenceInput,
        Outcome,
        Phase,
        RequestInput,
        RequestState,
        StepResult,
    )
    from models.review import Finding, PostReview
    from workflows import options

CODER_FIXES_PATCH = "coder-writes-missing-fixes"  # 2026-12-02: a FAIL without fix steps asks the coder
OVERRULED_PASS_PATCH = "second-overruled-pass-to-the-coder"  # 2026-12-02: told once, PASS again: the coder
# 2026-12-07: told once in any round, a reviewer is not told again (the 0.5B one spent its repairs so)
OVERRULED_ONCE_PATCH = "overruled-pass-told-once-per-request"
FIX_OUTPUT_CHARS = 4_000  # of each failed step's output, and of each file's content, shown to the coder
FIX_ASK = (
    "Answer with the fix as a plan: a file step for every file you change, content left empty (you write "
    "each file next; read the failure: fix the code, not the tests), then the verify step."
)


class VerifyLoop(Controls):
    state: RequestState
    inp: RequestInput | None
    phases: Phases
    evidence: list[Evidence]
    _prompt: list[ChatMessage]  # the system prompt and the request, as first built
    _last_results: list[StepResult]
    _last_fix: StepNode | None
    _pass_overruled: bool  # the reviewer was told this round that its PASS cannot stand
    _overruled_before: bool  # ... in any round: it is not told again, the coder gets the failure

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

    def _review_repair(self, why: str) -> bool:
        """Count a reviewer answer iter refused; False once the bound is spent."""
        assert self.inp
        if self.state.review_repairs >= self.inp.settings.bounds.max_parse_repairs:
            return False
        self.state.review_repairs += 1
        self._note("verify", why)
        return True

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

    # --- what RequestWorkflow provides ----------------------------------------------------------

    async def _plan(self, messages: list[ChatMessage] | None = None) -> Plan | None:
        raise NotImplementedError

    async def _safety(self, steps: list[Step]) -> list[Finding]:
        raise NotImplementedError

    async def _execute(self, steps: list[Step], run_keys: list[str]) -> list[StepResult]:
        raise NotImplementedError

    async def _enter(self, phase: Phase, message: str) -> None:
        raise NotImplementedError

    def _note(self, phase: Phase, message: str) -> None:
        raise NotImplementedError

    def _finish(self, outcome: Outcome, message: str) -> None:
        raise NotImplementedError

    def _take_guidance(self) -> list[str]:
        raise NotImplementedError

    def _request_description(self) -> str:
        raise NotImplementedError

    def _criteria(self) -> list[str]:
        raise NotImplementedError
