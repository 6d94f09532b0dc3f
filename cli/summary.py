"""The end-of-request summary, in the spirit of the Iter page: one line per phase."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from cli.output import console

MARK = {
    "passed": "[green]✓[/green]",
    "failed": "[red]✗[/red]",
    "blocked": "[red]⛔[/red]",
    "cancelled": "[yellow]■[/yellow]",
}


LANDED = ("applied", "committed")


def _files(results: list[dict[str, Any]], change: str) -> int:
    return len({r["path"] for r in results if r.get("file_change") == change and r.get("ok")})


def summary_items(state: dict[str, Any]) -> list[tuple[bool | None, str]]:
    """One (good?, line) per phase: a phase that went wrong is never marked good, whatever the
    request's outcome (a step that failed and was fixed still failed)."""
    usage = state.get("usage", [])
    coder = [u for u in usage if u["role"] == "coder"]
    results = [r for r in state.get("results", []) if not r.get("skipped")]
    items: list[tuple[bool | None, str]] = [
        (True, f"Prompt: {state.get('prompt_tokens', 0):,} tokens with {state.get('context_files', 0)} context files")
    ]
    if coder:
        u = coder[-1]
        rate = sum(x["completion_tokens"] for x in coder) / max(sum(x["duration_s"] for x in coder), 1e-9)
        items.append((True, f"Stream: {u['model']} on {u['host']} ({rate:.1f} tok/s, {len(coder)} answer(s))"))
    findings = state.get("findings") or []
    review = state.get("safety_verdict") or "not reached"
    extra = f", {state.get('block_replans', 0)} re-plan(s)" if state.get("block_replans") else ""
    items.append(
        (
            {"PASS": True, "": None, "not reached": None}.get(review, False),
            f"Review: 8-point safety check {review}{extra}" + (f" ({len(findings)} finding(s))" if findings else ""),
        )
    )
    files = sum(1 for r in results if r["kind"] == "file")
    commands = sum(1 for r in results if r["kind"] != "file")
    failed = sum(1 for r in results if not r["ok"])
    items.append(
        (
            None if not results else failed == 0,
            f"Execute: {len(results)} steps ({files} files, {commands} commands)"
            + (f", {failed} failed" if failed else ""),
        )
    )
    verify = state.get("verify_verdict") or "not reached"
    items.append(
        (
            {"PASS": True, "not reached": None}.get(verify, False),
            f"Verify: acceptance criteria {verify}, "
            f"{state.get('fix_rounds', 0)} fix round(s), {state.get('info_rounds', 0)} evidence round(s)",
        )
    )
    created, modified = _files(results, "created"), _files(results, "modified") + _files(results, "appended")
    deleted = _files(results, "deleted")
    outcome = state.get("outcome", "running")
    end = f"{outcome.capitalize()}: {created} files created, {modified} modified" + (
        f", {deleted} deleted" if deleted else ""
    )
    if state.get("error"):
        end += f" ({state['error']})"
    items.append(({"passed": True, "running": None}.get(outcome, False), end))
    landing = state.get("landing") or {}
    if landing.get("message"):
        landed = landing.get("landing") in LANDED
        items.append((landed or None, f"Landed: {landing['message']}" if landed else landing["message"]))
    return items


def summary_lines(state: dict[str, Any]) -> list[str]:
    return [line for _, line in summary_items(state)]


def print_summary(state: dict[str, Any]) -> None:
    console.print()
    items = summary_items(state)
    for good, line in items[:-1]:
        mark = MARK["passed"] if good else ("•" if good is None else MARK["failed"])
        console.print(f" {mark} {line}", soft_wrap=True)
    console.print(f" {MARK.get(state.get('outcome', 'running'), '•')} {items[-1][1]}", soft_wrap=True)


def usage_table(state: dict[str, Any]) -> Table:
    table = Table("role", "model", "host", "prompt tok", "answer tok", "seconds", "tok/s")
    for u in state.get("usage", []):
        table.add_row(
            u["role"],
            u["model"],
            u["host"],
            str(u["prompt_tokens"]),
            str(u["completion_tokens"]),
            f"{u['duration_s']:.2f}",
            f"{u['tokens_per_s']:.1f}",
        )
    return table
