"""The activity calls both workflows make, each with its standard options: the model call, the
safety review, execution, the post-execution review and the release, plus the search attributes
and the parse-and-repair pieces of the plan loop. A workflow keeps its own state and events;
``Phases`` keeps how each activity is invoked and the one thing that travels between two of them:
which steps the last safety review approved for network. Deterministic: no I/O here."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.cleanup import release_executor
    from activities.definitions import keep_definitions
    from activities.execute import execute_steps
    from activities.llm import call_model
    from activities.review import post_review, safety_review
    from activities.worktree import land_workspace, prepare_workspace
    from models import rounds, search, writing
    from models.answers import echo, truncated_reason
    from models.config import ApplyMode, Settings
    from models.definitions import KeepInput
    from models.plan import FileStep, Step, StepNode, iter_nodes
    from models.repetition import repeating_pattern
    from models.request import (
        ChatMessage,
        Evidence,
        ExecuteInput,
        ModelCallInput,
        ModelCallOutput,
        ModelUsage,
        PostReviewInput,
        Role,
        SafetyReviewInput,
        SafetyReviewOutput,
        SchemaName,
        StepResult,
    )
    from models.review import PostReview
    from models.schemas import parse_answer
    from models.worktree import LandInput, LandOutput, PrepareInput, Sandbox
    from workflows import options


class Phases:
    """One workflow run's activity calls. ``key`` names its journals; every model
    call's usage goes to ``on_usage``."""

    def __init__(
        self, settings: Settings, workspace: str, key: str, on_usage: Callable[[list[ModelUsage]], None]
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.key = key
        self._on_usage = on_usage
        self._network: dict[str, Step] = {}  # steps the last safety review approved for network
        self._digests: dict[str, tuple[Step, str]] = {}  # file steps: their file as the review saw it
        # Seals this run's journal entries: a step that reaches the journal cannot forge one.
        self.journal_seal = workflow.uuid4().hex
        self.sandbox: Sandbox | None = None

    async def isolate(self, origin: str, item: str, key: str, checkout: bool = False, resume: bool = False) -> Sandbox:
        """The worktree the steps run in; from here on every activity works there, not in ``origin``."""
        sandbox = await workflow.execute_activity(
            prepare_workspace,
            PrepareInput(
                origin=origin, item=item, run_key=key, settings=self.settings, checkout=checkout, resume=resume
            ),
            start_to_close_timeout=options.WORKSPACE_TIMEOUT,
            retry_policy=options.FAST_RETRY,
            heartbeat_timeout=options.HEARTBEAT_TIMEOUT,  # a dead worker is seen in seconds
            summary=f"a worktree of its own for {item}",
        )
        self.adopt(sandbox)
        return sandbox

    def adopt(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.workspace = sandbox.path

    async def land(self, passed: bool, message: str, mode: ApplyMode | None = None) -> LandOutput | None:
        """The change into the user's checkout (as ``worktree.mode`` says), or kept on its branch."""
        if self.sandbox is None:
            return None
        try:
            return await workflow.execute_activity(
                land_workspace,
                LandInput(
                    sandbox=self.sandbox, passed=passed, mode=mode or self.settings.worktree.mode, message=message
                ),
                start_to_close_timeout=options.WORKSPACE_TIMEOUT,
                retry_policy=options.FAST_RETRY,
                heartbeat_timeout=options.HEARTBEAT_TIMEOUT,  # a dead worker is seen in seconds
                summary="land the change" if passed else "keep the change on its branch",
            )
        except ActivityError as exc:
            why = str(exc.cause or exc).splitlines()[0][:300]
            return LandOutput(
                landing="refused",
                message=f"not applied ({why}); the change stays on {self.sandbox.branch}",
            )

    async def ask_model(
        self,
        role: Role,
        schema_name: SchemaName,
        messages: list[ChatMessage],
        summary: str,
        temperature: float | None = None,
    ) -> ModelCallOutput:
        """``temperature`` overrides the configured one for this call (asking again differently)."""
        settings = self.settings
        if temperature is not None:
            settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": temperature})})
        out = await workflow.execute_activity(
            call_model,
            ModelCallInput(role=role, schema_name=schema_name, messages=messages, settings=settings),
            **options.model_call(self.settings),
            summary=summary,
        )
        self._on_usage([out.usage])
        return out

    async def write_files(
        self,
        plan: writing.PlanT,
        messages: list[ChatMessage],
        repairs: int,
        say: Callable[[str], None],
        keep: bool = False,
        request_text: str = "",
    ) -> writing.PlanT:
        """Plan, then write (models/writing.py): each file step's code is asked for on its own,
        after the plan, as a code block. Python that does not parse is asked for again with the
        error, ``repairs`` times; what the last answer holds then stands (its checks will fail and
        say why, and the fix loop goes on from there). With ``keep``, a modified Python file keeps
        the definitions the answer left out and ``request_text`` does not name (models/definitions.py)."""
        contents: dict[str, str] = {}
        outline = writing.outline(plan).model_dump_json(exclude_none=True)
        for step in writing.to_write(plan):
            conversation = [
                *messages,
                ChatMessage(role="assistant", content=outline),
                ChatMessage(role="user", content=writing.write_ask(step, plan.summary)),
            ]
            for attempt in range(repairs + 1):
                say(f"the coder writes {step.path}" + (f" (repair {attempt})" if attempt else ""))
                out = await self.ask_model("coder", "file", conversation, f"coder writes {step.path}"[:200])
                content = writing.written_content(out.text)
                problem = cut_short(out) or writing.syntax_error(step.path, content)
                if not problem:
                    break
                why = f"{step.path} cannot be used: {problem}"
                conversation = with_repair(conversation, out.text, why, writing.write_ask(step, plan.summary))
            if keep and step.action == "modify" and step.path.endswith(".py"):
                content = await self._keep_definitions(step.path, content, request_text, say)
            contents[step.id] = content
        return writing.filled(plan, contents)

    async def _keep_definitions(self, path: str, content: str, request_text: str, say: Callable[[str], None]) -> str:
        merged = await workflow.execute_local_activity(
            keep_definitions,
            KeepInput(workspace=self.workspace, path=path, content=content, request_text=request_text),
            start_to_close_timeout=options.PROMPT_TIMEOUT,
            summary=f"keep the definitions of {path}"[:200],
        )
        if merged.kept:
            say(f"the answer left out {', '.join(merged.kept)}: kept from {path} as it is")
        return merged.content

    async def review_safety(
        self, description: str, steps: list[Step], guidance: list[str] | None = None
    ) -> SafetyReviewOutput:
        out = await workflow.execute_activity(
            safety_review,
            SafetyReviewInput(
                workspace=self.workspace,
                request_description=description,
                steps=steps,
                settings=self.settings,
                guidance=guidance or [],
            ),
            **options.model_call(self.settings),
            summary=f"8-point safety review of {len(steps)} step(s)",
        )
        self._on_usage(out.usage)
        # Network only for a step a policy rule approved, in a review the whole plan passed, and
        # only as reviewed: the approval is of the step's content, not of its id.
        passed = out.verdict == "PASS" and not out.findings
        self._network = {s.id: s for s in steps if s.id in out.network_steps} if passed else {}
        self._digests = {s.id: (s, out.digests[s.id]) for s in steps if s.id in out.digests}
        return out

    async def execute(self, steps: list[Step], run_keys: list[str]) -> list[StepResult]:
        """Exactly once per run key; a step gets network only if the last review approved it as it is."""
        out = await workflow.execute_activity(
            execute_steps,
            ExecuteInput(
                workflow_id=self.key,
                workspace=self.workspace,
                steps=steps,
                run_keys=run_keys,
                settings=self.settings,
                network_steps=[s.id for s in steps if self._network.get(s.id) == s],
                reviewed_digests={
                    s.id: seen[1] for s in steps if (seen := self._digests.get(s.id)) is not None and seen[0] == s
                },
                journal_seal=self.journal_seal,
            ),
            start_to_close_timeout=options.execution_timeout(
                self.settings, [getattr(s, "timeout_s", None) for s in steps]
            ),
            heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
            retry_policy=options.EXECUTE_RETRY,
            task_queue=options.exec_queue(),
            summary=f"execute {', '.join(run_keys)}"[:200],
        )
        return out.results

    async def review_result(
        self,
        description: str,
        criteria: list[str],
        tree: list[StepNode],
        results: list[StepResult],
        evidence: list[Evidence] | None = None,
        guidance: list[str] | None = None,
    ) -> PostReview:
        out = await workflow.execute_activity(
            post_review,
            PostReviewInput(
                workspace=self.workspace,
                request_description=description,
                criteria=criteria,
                tree=tree,
                results=rounds.latest_outputs(results),  # earlier runs of a step: no output again
                evidence=evidence or [],
                touched_paths=sorted({n.step.path for n in iter_nodes(tree) if isinstance(n.step, FileStep)}),
                settings=self.settings,
                guidance=guidance or [],
            ),
            **options.model_call(self.settings),
            summary=f"post-execution review ({len(results)} result(s))",
        )
        self._on_usage(out.usage)
        return out.review

    async def release(self) -> None:
        """The executor and the step journals. Idempotent and quick, so a local activity: it runs
        again if the worker dies in it."""
        await workflow.execute_local_activity(
            release_executor,
            args=[self.key, self.workspace, self.settings],
            start_to_close_timeout=options.CLEANUP_TIMEOUT,
            retry_policy=options.CLEANUP_RETRY,
            summary="release the executor and the step journals",
        )


# --- the plan loop's pieces ------------------------------------------------------------------------


def cut_short(out: ModelCallOutput) -> str:
    """Why an answer stopped before its end (stuck repeating itself, or at a limit), or ""."""
    if out.usage.done_reason == "repetition":
        return f"the answer got stuck repeating {repeating_pattern(out.text)[:40]!r} and was cut off"
    return truncated_reason(out) if out.truncated else ""


def parse_reply(schema_name: SchemaName, out: ModelCallOutput) -> tuple[BaseModel | None, str]:
    """The parsed answer, or None and the errors; an answer cut off by the length limit is invalid
    even where what arrived happens to parse."""
    why = cut_short(out)
    if why:
        return None, why + ("; write the plan itself" if out.usage.done_reason == "repetition" else "")
    return parse_answer(schema_name, out.text)


def with_repair(messages: list[ChatMessage], answer: str, errors: str, ask: str) -> list[ChatMessage]:
    """The conversation so far, the invalid answer (its head and tail when long), and what was
    wrong with it."""
    return [
        *messages,
        ChatMessage(role="assistant", content=echo(answer)),
        ChatMessage(role="user", content=f"That answer is invalid:\n{errors}\n{ask}"),
    ]


def publish(item: str, phase: str, outcome: str, project: str | None = None) -> None:
    """The search attributes the web UI and ``iter status`` filter on."""
    by_project = [search.PROJECT.value_set(project)] if project is not None else []
    workflow.upsert_search_attributes(
        [*by_project, search.ITEM.value_set(item), search.PHASE.value_set(phase), search.OUTCOME.value_set(outcome)]
    )
