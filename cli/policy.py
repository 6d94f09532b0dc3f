"""``iter policy check``: run the deterministic 8-point rules on a command or a plan, here and now.

The same rules the workflow applies before any step runs, without Temporal or a model: useful to
see why a plan was blocked, to try a ``.iter/policy.yaml`` change, or in a pre-commit hook.
Exit codes: 0 PASS (allow), 1 BLOCK, 2 the input (command, plan file, policy file) could not be read,
3 HOLD (only findings a person would be asked about; see ``models.holds``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape

from cli.output import console, err_console, print_json
from models.plan import CommandStep, Plan, Step
from models.review import SAFETY_POINTS, Finding
from policy import evaluate_steps, load_policy, network_steps

policy_app = typer.Typer(
    help="The deterministic safety rules (8 points) that no model can overrule: check a command or a plan.",
    no_args_is_help=True,
)


@policy_app.callback()
def _policy() -> None:
    """The deterministic safety rules (8 points) that no model can overrule."""


@policy_app.command("check")
def check(
    command: str | None = typer.Argument(None, help="A shell command to check, quoted as one argument."),
    plan: Path | None = typer.Option(None, "--plan", help='A plan JSON file ({"summary", "steps"}) to check.'),
    workspace: Path | None = typer.Option(
        None,
        "--workspace",
        "-w",
        help="The workspace (default: the current directory); its .iter/policy.yaml is applied.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict and findings as JSON."),
) -> None:
    """Check COMMAND, or the steps of --plan, against the 8 points. Exit 0 PASS, 1 BLOCK, 2 bad input, 3 HOLD."""
    root = (workspace or Path.cwd()).resolve()
    if not root.is_dir():
        _bad_input(f"workspace {root} is not a directory")
    if (command is None) == (plan is None):
        _bad_input("give either a COMMAND or --plan FILE (one of them)")
    try:
        policy = load_policy(root)
    except ValueError as exc:
        _bad_input(f"{exc}; fix the file or move it away")
    steps: list[Step] = _plan_steps(plan) if plan is not None else _command_steps(command or "")
    findings = evaluate_steps(steps, root, policy, require_verify=plan is not None)
    verdict = verdict_of(findings)
    if as_json:
        print_json(
            {
                "verdict": verdict,
                "hold_mode": policy.hold,
                "findings": [f.model_dump() for f in findings],
                "network_steps": sorted(network_steps(steps, policy)) if not findings else [],
            }
        )
    else:
        _print_human(verdict, findings, len(steps))
    raise typer.Exit(EXIT_CODES[verdict])


EXIT_CODES = {"PASS": 0, "BLOCK": 1, "HOLD": 3}


def verdict_of(findings: list[Finding]) -> str:
    if not findings:
        return "PASS"
    return "HOLD" if all(f.verdict == "hold" for f in findings) else "BLOCK"


def _command_steps(command: str) -> list[Step]:
    if not command.strip():
        _bad_input("the command is empty")
    return [CommandStep(id="command", type="command", command=command)]


def _plan_steps(path: Path) -> list[Step]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _bad_input(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    try:
        return list(Plan.model_validate(json.loads(text)).steps)
    except json.JSONDecodeError as exc:
        _bad_input(f"{path} is not JSON: {exc.msg} at line {exc.lineno}")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        _bad_input(f"{path} is not a valid plan: {where}: {err['msg']}")


def _print_human(verdict: str, findings: list[Finding], n_steps: int) -> None:
    if not findings:
        console.print(f"[bold green]PASS[/bold green]  {n_steps} step(s), no rule broken")
        return
    if verdict == "HOLD":
        console.print(f"[bold yellow]HOLD[/bold yellow]  {len(findings)} finding(s) a person would be asked about")
    else:
        console.print(f"[bold red]BLOCK[/bold red]  {len(findings)} finding(s)")
    for f in findings:
        color, tag = ("yellow", "hold ") if f.verdict == "hold" else ("red", "")
        console.print(
            f"  [{color}]{tag}point {f.point}[/{color}] [dim]({SAFETY_POINTS[f.point]})[/dim]  "
            f"step [bold]{escape(f.step_id)}[/bold]: {escape(f.reason)}",
            soft_wrap=True,
        )


def _bad_input(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)
