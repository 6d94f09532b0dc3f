"""``iter model list`` (and its alias ``iter models``): the models iter may use, what each can do,
which role each phase routes to it, and whether its server answers with it now."""

from __future__ import annotations

from typing import Any

import httpx
import typer

from cli import runtime
from cli.output import console, print_json
from models.config import LLMSettings
from models.context_fit import window_from

ROLES = ("coder", "reviewer")
PROBE_TIMEOUT_S = 3.0


def _probe(llm: LLMSettings, model: str) -> dict[str, Any]:
    """Whether the model's server answers and lists it, and the context window it reports."""
    own = llm.settings_for(model)
    base = own.resolved_base_url()
    out: dict[str, Any] = {"server": base, "provider": own.provider, "answers": False, "window": own.num_ctx}
    try:
        if own.provider == "ollama":
            names = [m.get("name", "") for m in httpx.get(base + "/api/tags", timeout=PROBE_TIMEOUT_S).json()["models"]]
            out["answers"] = any(n == model or n.split(":")[0] == model for n in names)
            show = httpx.post(base + "/api/show", json={"model": model}, timeout=PROBE_TIMEOUT_S)
        else:
            data = httpx.get(base + "/models", timeout=PROBE_TIMEOUT_S).json().get("data", [])
            ids = [m.get("id", "") for m in data]
            # llama-server serves one model under any name; it lists its alias.
            out["answers"] = model in ids or len(ids) == 1
            root = base[: -len("/v1")] if base.endswith("/v1") else base
            show = httpx.get(root + "/props", timeout=PROBE_TIMEOUT_S)
        if show.status_code == 200:
            out["window"] = window_from(own.provider, show.json(), own.num_ctx)
        if not out["answers"]:
            out["problem"] = "the server answers but does not have this model"
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        out["problem"] = f"no answer ({exc.__class__.__name__})"
    return out


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON for programs.")) -> None:
    """List the models, their capabilities and roles, and which of them answer now."""
    llm = runtime.settings().llm
    names = list(dict.fromkeys(n for role in ROLES for n in llm.models_for(role)))
    rows: list[dict[str, Any]] = []
    for name in names:
        spec = llm.spec(name)
        rows.append(
            {
                "name": name,
                "roles": [r for r in ROLES if name in llm.models_for(r)],
                "first_for": [r for r in ROLES if llm.models_for(r)[0] == name],
                "json_schema": spec.json_schema if spec else True,
                "context": (spec.context if spec and spec.context else llm.num_ctx),
                "tokens_per_s": spec.tokens_per_s if spec else 0.0,
                "listed": spec is not None,
                **_probe(llm, name),
            }
        )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        mark = "[green]✓[/green]" if row["answers"] else "[red]✗[/red]"
        first = f" (first for {', '.join(row['first_for'])})" if row["first_for"] else ""
        speed = f", {row['tokens_per_s']:g} tok/s" if row["tokens_per_s"] else ""
        console.print(
            f"{mark} {row['name']}{first}: roles {', '.join(row['roles'])}; {row['provider']} at {row['server']}; "
            f"context {row['window']:,} (declared {row['context']:,}){speed}"
            + ("" if row["json_schema"] else "; no JSON-schema output")
            + (f" — {row['problem']}" if row.get("problem") else ""),
            soft_wrap=True,
        )
