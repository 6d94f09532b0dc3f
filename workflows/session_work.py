"""One iteration's plan at work, as in a request: the 8-point safety review (holds settled by a
person), the steps run one by one with a pause point between them, and verification with a
bounded fix round.

``SessionWork`` is a base class of ``SessionWorkflow`` (through ``SessionHooks`` and
``SessionTools`` it has the event log and the live view). Deterministic: the work is in
activities (``phases.py``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from temporalio import workflow

from workflows import holds
from workflows.session_hooks import SessionHooks

with workflow.unsafe.imports_passed_through():
    from models import rounds
    from models.events import post_verdict, safety_verdict
    from models.holds import effective_mode
    from models.plan import Step, StepNode, iter_nodes
    from models.request import StepResult
    from models.review import Finding, PostReview
    from models.session import IterationOutcome, SessionPlan, Task

MAX_FIX_ROUNDS = 2


class SessionWork(SessionHooks):
    _block_way: str  # how the last safety review blocked, for noticing a stuck task

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
        last_round = results
        for fix_round in range(1, MAX_FIX_ROUNDS + 2):
            review = await self._post_review(desc, task, tree, results)
            self.state.current.verdict = review.verdict
            if review.verdict == "PASS":
                # A rule of the workflow, whatever the reviewer says: no PASS over a failed step.
                why = rounds.overruled_pass(last_round)
                if not why:
                    return "passed", ""
                self.state.current.verdict = "FAIL"
                return "failed", f"the reviewer said PASS, but {why}, and no later round repaired it"
            failing = "; ".join(c.criterion + ": " + c.evidence for c in review.criteria if not c.met)[:1000]
            if review.verdict != "FAIL" or not review.fix_steps or fix_round > MAX_FIX_ROUNDS:
                return "failed", f"verification {review.verdict}" + (f" ({failing})" if failing else "")
            fixes = [s.model_copy(update={"id": f"f{fix_round}-{s.id}"}) for s in review.fix_steps]
            taken = rounds.clashing_ids(fixes, tree)
            if taken:
                return "failed", f"the reviewer's fix steps reuse step ids ({', '.join(taken)})"
            # What a failure skipped runs after the fixes (it never ran), then the checks again.
            reruns = [*rounds.skipped_steps(tree, last_round), *rounds.checks(tree)]
            findings = await self._safety([*fixes, *reruns], desc)
            if findings:
                return "blocked", "the reviewer's fix steps were blocked: " + "; ".join(f.line() for f in findings)
            _parent(tree, results).children.extend(StepNode(step=s, depth=1) for s in fixes)
            keys = [f"i{n}-f{fix_round}-{i}" for i in range(len(fixes))]
            keys += [f"i{n}-r{fix_round}-{i}" for i in range(len(reruns))]
            last_round = await self._execute([*fixes, *reruns], keys)
            results = [*results, *last_round]
        return "failed", "verification failed"  # pragma: no cover - the loop returns

    async def _execute(self, steps: list[Step], keys: list[str]) -> list[StepResult]:
        """One activity per step, so a pause takes effect between steps; a failed change stops the rest."""
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
            self.details.step = f"{step.id}: {getattr(step, 'command', '') or getattr(step, 'path', '')}"
            self._phase("execute", f"step {step.id} ({step.type})")
            result = (await self.phases.execute([step], [key]))[0]
            self.details.step = ""
            results.append(result)
            self.state.current.results.append(f"{step.id} {'ok' if result.ok else 'FAILED'}")
            stop = not result.ok and step.type != "verify"
        return results

    async def _safety(self, steps: list[Step], desc: str) -> list[Finding]:
        assert self.inp
        self._phase("review", f"8-point safety review of {len(steps)} step(s)")
        out = await self.phases.review_safety(desc, steps)
        self._verdict(safety_verdict(out.verdict, out.findings))
        # "The same way": the same points found by the same judges, whatever the step ids were.
        self._block_way = ",".join(sorted({f"{f.point}:{f.source}" for f in out.findings}))
        mode = effective_mode(out.hold_mode, self.inp.hold_mode)
        return await holds.settle(
            self.state.holds,
            out.findings,
            steps,
            mode,
            lambda m: self._event("review", m),
            lambda: "the session was stopped" if self.state.stop_requested else "",
            on_change=self._show_held,
        )

    async def _post_review(
        self, desc: str, task: Task | None, tree: list[StepNode], results: list[StepResult]
    ) -> PostReview:
        self._phase("verify", "the reviewer checks the result")
        criteria = [f"task #{task.id} is done: {task.content}"] if task else []
        review = await self.phases.review_result(desc, [*criteria, "the verify steps pass"], tree, results)
        self._verdict(post_verdict(review))
        return review

    async def _checkpoint(self, ending: Callable[[], bool] = lambda: False) -> None:
        """Between steps and iterations: where a pause takes effect. Between iterations ``ending``
        says whether the session is completed or stopped: then a paused one ends without being
        resumed first."""
        if self.state.paused:
            self._event(self.state.phase, "paused")
            await workflow.wait_condition(lambda: not self.state.paused or ending())
            self._event(self.state.phase, "resumed" if not self.state.paused else "ending while paused")

    def _description(self, plan: SessionPlan, task: Task | None) -> str:
        what = f"task #{task.id}: {task.content}" if task else "work outside the task list"
        return f"Session {self.state.name}, iteration {self.state.iteration}, {what}. Plan: {plan.summary}"


def _safe(step_id: str) -> str:
    """A step id as a journal directory name: the model chose it, so it may hold anything."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", step_id)[:40]


def _parent(tree: list[StepNode], results: list[StepResult]) -> StepNode:
    """Fixes hang under the first step that failed, or under the last one."""
    failed = next((r.step_id for r in results if not r.ok and not r.skipped), None)
    return next((node for node in iter_nodes(tree) if node.step.id == failed), tree[-1])
