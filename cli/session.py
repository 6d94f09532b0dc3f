"""``iter build`` (start, resume or attach to a session and follow it), ``iter stop`` and
``iter gen-template``."""

from __future__ import annotations

import contextlib
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from cli import project_store as store
from cli import runtime
from cli.output import console, err_console, explain_interrupt, fail, ok, print_json
from cli.session_view import print_end, print_event
from cli.watch import follow_session, full_screen_wanted, watch_until_left
from models.config import Settings
from models.details import session_details, spec_title, static_summary
from models.project import session_workflow_id
from models.session import SessionState
from models.session_io import SessionInput
from workflows.session import SessionWorkflow

DEFAULT_SPEC = "specs/SPEC.md"
DEFAULT_TEMPLATE_OUT = ".iter/session.tmpl"
MAX_SPEC_BYTES = 200_000
SHOWN_ON_ATTACH = 5


def build(
    spec: str | None = typer.Option(None, "--spec", "-s", help=f"The spec file (default {DEFAULT_SPEC})."),
    name: str | None = typer.Option(None, "--name", "-n", help="Session name (default: the spec's file stem)."),
    iterations: int | None = typer.Option(None, "--iterations", "-i", min=0, help="Stop after N (0: until done)."),
    model: str | None = typer.Option(None, "--model", "-m", help="The coder model."),
    template: str | None = typer.Option(None, "--template", "-t", help="A prompt template (`iter gen-template`)."),
    extra: str = typer.Option("", "--extra-instructions", "-e", help="Added to every prompt."),
    headless: bool = typer.Option(False, "--headless", help="Never ask anything; print progress as lines."),
    auto_commit: bool | None = typer.Option(None, "--auto-commit/--no-auto-commit", help="Commit each iteration."),
    reset: bool = typer.Option(False, "--reset", help="Start the session afresh instead of resuming it."),
    executor: str | None = typer.Option(None, "--executor", help="docker (default) or local."),
    detach: bool = typer.Option(False, "--detach", help="Start it and return at once."),
    quiet: bool = typer.Option(False, "--quiet", help="Progress only, no streamed tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it full screen (on a terminal; else lines)."),
) -> None:
    """Run the session loop over a spec's tasks, durably: resume it any time, steer it while it runs."""
    cfg0 = runtime.settings()
    if spec is None and not (headless or cfg0.headless) and sys.stdin.isatty() and sys.stdout.isatty():
        spec = typer.prompt("Spec file", default=DEFAULT_SPEC)
        model = model or typer.prompt("Model", default=cfg0.llm.model)
        name = name or typer.prompt("Session name", default=Path(spec).stem)
        if iterations is None:
            iterations = typer.prompt("Max iterations (0: until done)", default=cfg0.iterations, type=int)
    if executor is not None and executor not in ("docker", "local"):
        fail(f"unknown executor {executor!r}; choose docker or local")
    cfg = runtime.settings(
        **{"llm.model": model, "iterations": iterations, "auto_commit": auto_commit, "executor.backend": executor}
    )
    workspace = Path.cwd()
    if name and spec is None and not (workspace / DEFAULT_SPEC).is_file():
        # `iter build --name S` names a session, not a spec: attach to it when it runs.
        state = _attach_only(cfg, workspace, name, quiet or as_json)
        if state is not None:
            _print_end(state, as_json, headless=headless or cfg.headless)
            return
    spec_rel, spec_text = _spec(workspace, spec or DEFAULT_SPEC)
    _ignore_machine_state(workspace)
    session = name or Path(spec_rel).stem
    template_path = _template(template or cfg.template)
    inp = SessionInput(
        name=session,
        workspace=str(workspace),
        spec_path=spec_rel,
        spec_text=spec_text,
        settings=cfg,
        template_path=template_path,
        extra=extra,
        # unattended: a held step is blocked with its reason and the session goes on to the next task
        hold_mode="block" if (headless or cfg.headless) else None,
    )
    try:
        full = full_screen_wanted(watch and not detach, headless=headless or cfg.headless or as_json)
        state = runtime.run(_build(cfg, inp, reset, detach, quiet or as_json, full))
    except KeyboardInterrupt:
        explain_interrupt(
            f"Detached; the session goes on. Attach again with `iter build --name {session} --spec {spec_rel}`; "
            f"`iter status {session}` shows it, `iter stop {session}` ends it"
        )
        raise typer.Exit(130) from None
    if state is None:
        return
    _print_end(state, as_json, headless=headless or cfg.headless)


def _print_end(state: dict[str, Any], as_json: bool, headless: bool = False) -> None:
    if as_json:
        print_json(state)
    else:
        print_end(state)
    if state.get("status") in ("failed", "cancelled"):
        raise typer.Exit(1)
    tasks = state.get("tasks") or []
    if headless and tasks and not any(t["status"] == "completed" for t in tasks):
        # Unattended, a run that got nothing done must not look like success to the caller.
        why = (state.get("feedback") or [state.get("error") or "no iteration passed"])[-1]
        err_console.print(
            f"no task was completed in {state.get('iteration', 0)} iteration(s); the last word: {why}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _attach_only(cfg: Settings, workspace: Path, name: str, quiet: bool) -> dict[str, Any] | None:
    """Follow the running session ``name`` of this folder; None when it is not running."""

    async def go() -> dict[str, Any] | None:
        client = await runtime.client_for(cfg)
        wid = session_workflow_id(name, store.scope(workspace))
        if await _status(client.get_workflow_handle(wid)) != WorkflowExecutionStatus.RUNNING:
            return None
        await runtime.ensure_worker(client, cfg)
        console.print(f"Attached to session {name} ({wid}); `iter status {name}`, `iter pause|resume|stop {name}`")
        return await follow(client, cfg, wid, show_tokens=not quiet, attached=True)

    try:
        return runtime.run(go())
    except KeyboardInterrupt:
        explain_interrupt(f"Detached; the session goes on. `iter build --name {name}` attaches again")
        raise typer.Exit(130) from None


def _spec(workspace: Path, spec: str) -> tuple[str, str]:
    path = (workspace / spec).resolve()
    if not path.is_file():
        fail(f"no spec at {spec}; write one (its `- [ ]` items become tasks) or pass --spec PATH")
    data = path.read_bytes()
    if len(data) > MAX_SPEC_BYTES:
        fail(f"{spec} is {len(data):,} bytes; a spec must stay under {MAX_SPEC_BYTES:,} (split it)")
    try:
        rel = str(path.relative_to(workspace.resolve()))
    except ValueError:
        rel = str(path)  # outside the workspace: read from where it is
    return rel, data.decode(errors="replace")


def _ignore_machine_state(workspace: Path) -> None:
    """Step journals and live streams land under .iter/; they are machine state, never the user's commits."""
    ignore = workspace / store.PROJECT_DIR / ".gitignore"
    if not ignore.exists():
        ignore.parent.mkdir(parents=True, exist_ok=True)
        ignore.write_text(store.GITIGNORE)


def _template(template: str) -> str:
    if not template:
        return ""
    path = Path(template).expanduser().resolve()
    if not path.is_file():
        fail(f"no template at {template}; `iter gen-template -o {template}` writes the default one")
    return str(path)


async def _build(
    cfg: Settings, inp: SessionInput, reset: bool, detach: bool, quiet: bool, full_screen: bool = False
) -> dict[str, Any] | None:
    client = await runtime.client_for(cfg)
    await runtime.ensure_worker(client, cfg)
    wid = session_workflow_id(inp.name, store.scope(Path(inp.workspace)))
    handle = client.get_workflow_handle(wid)
    status = await _status(handle)
    attached = False
    if status == WorkflowExecutionStatus.RUNNING and reset:
        await handle.terminate("reset by `iter build --reset`")
        status = await _status(handle)
    if status == WorkflowExecutionStatus.RUNNING:
        attached = True
    elif status is not None and not reset:
        carry = await _last_state(client, wid, status)
        if carry is not None and carry.complete:
            console.print(f"Session {inp.name} is complete; `iter build --name {inp.name} --reset` starts it afresh")
            return carry.model_dump(mode="json")
        inp = inp.model_copy(update={"carry": carry})
    if not attached:
        from cli.embedded import resolve

        inp = inp.model_copy(update={"settings": resolve(inp.settings, runtime.say)})
        title = spec_title(inp.spec_text, inp.spec_path)
        await client.start_workflow(
            SessionWorkflow.run,
            inp,
            id=wid,
            task_queue=cfg.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            memo={"folder": inp.workspace},
            static_summary=static_summary(f"session {inp.name}", title),
            static_details=session_details(inp.name, inp.spec_path, title),
        )
    verb = "Attached to" if attached else ("Resumed" if inp.carry else "Started")
    console.print(f"{verb} session {inp.name} ({wid}); `iter status {inp.name}`, `iter pause|resume|stop {inp.name}`")
    if detach:
        return None
    if full_screen:
        status = await watch_until_left(client, wid)
        if status == WorkflowExecutionStatus.RUNNING:
            console.print(f"Left the view; the session goes on. `iter watch {inp.name}` comes back")
            return None
        return await final_session_state(client, wid, status)
    return await follow(client, cfg, wid, show_tokens=not quiet, attached=attached)


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError:
        return None


async def _last_state(client: Client, wid: str, status: WorkflowExecutionStatus | None) -> SessionState | None:
    """Where the last run of the session stopped: its result, or what it held when it failed. A
    session whose state cannot be read is never discarded: the command stops and says what to do."""
    handle = client.get_workflow_handle_for(SessionWorkflow.run, wid)
    try:
        if status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()
        return await handle.query(SessionWorkflow.status)
    except Exception as exc:
        reason = (getattr(exc, "message", "") or str(exc) or type(exc).__name__).splitlines()[0][:200]
        name = wid.removeprefix("iter-session-")
        fail(
            f"the last run of {wid} left a state this version of iter cannot read ({reason}); nothing was "
            f"discarded. Resume it with the iter version that ran it, or start afresh with "
            f"`iter build --name {name} --reset` (its tasks and notes stay in `iter history {wid}`)"
        )


async def follow(
    client: Client, cfg: Settings, wid: str, show_tokens: bool = True, attached: bool = False
) -> dict[str, Any]:
    """Print the session's events (and streamed tokens) until it ends; returns its final state."""
    handle = client.get_workflow_handle(wid)
    state: dict[str, Any] = {}
    if attached:  # the last few events for context, then what is new
        with contextlib.suppress(RPCError):
            got = await handle.query("status")
            state = got if isinstance(got, dict) else state
        for event in (state.get("events") or [])[-SHOWN_ON_ATTACH:]:
            print_event(event)
    status = await follow_session(client, wid, show_tokens, attached)
    return await final_session_state(client, wid, status, state)


async def final_session_state(
    client: Client, wid: str, status: WorkflowExecutionStatus | None, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    state = state or {}
    handle = client.get_workflow_handle(wid)
    if status == WorkflowExecutionStatus.COMPLETED:
        final = await client.get_workflow_handle_for(SessionWorkflow.run, wid).result()
        return final.model_dump(mode="json")
    with contextlib.suppress(RPCError):
        got = await handle.query("status")
        state = got if isinstance(got, dict) else state
    return {**state, "status": state.get("status") if state.get("phase") == "done" else "failed"}


def stop(name: str = typer.Argument(..., help="The session name.")) -> None:
    """End a session after its current iteration (session_end hooks run)."""

    async def go() -> str:
        cfg = runtime.settings()
        client = await runtime.client_for(cfg, start_server=False)
        handle = client.get_workflow_handle(session_workflow_id(name, store.scope(Path.cwd())))
        if await _status(handle) != WorkflowExecutionStatus.RUNNING:
            fail(f"session {name} is not running; nothing to stop")
        await handle.signal("stop")
        return handle.id

    ok(f"Stop requested for {runtime.run(go())}; it ends after the current iteration")


def gen_template(
    output: str = typer.Option(DEFAULT_TEMPLATE_OUT, "--output", "-o", help="Where to write it."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the default session prompt template, to edit and pass to `iter build --template`."""
    path = Path(output)
    if path.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    text = (resources.files("activities") / "templates" / "session.tmpl").read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    ok(f"Wrote {output}; use it with `iter build --template {output}`")
