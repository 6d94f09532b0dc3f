"""What the Temporal web UI shows for a workflow: its static summary (set when it starts) and its
current details (markdown, updated at every phase). Pure: the workflows call it."""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_SUMMARY_CHARS = 200  # the UI shows the summary on one line of the workflow list
MAX_DETAIL_CHARS = 4000


def static_summary(kind: str, title: str) -> str:
    line = " ".join(title.split())
    text = f"{kind}: {line}"
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


def spec_title(spec_text: str, fallback: str) -> str:
    """A spec's first heading, else its first non-empty line, else ``fallback`` (its path)."""
    lines = [line.strip() for line in spec_text.splitlines() if line.strip()]
    heading = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")
    return heading or (lines[0] if lines else "") or fallback


class Details(BaseModel):
    """The pieces of a workflow's current details; each workflow keeps one and renders it."""

    title: str = ""
    phase: str = ""
    message: str = ""
    iteration: int | None = None
    paused: bool = False
    step: str = ""
    verdicts: dict[str, str] = Field(default_factory=dict)  # stage -> one line
    held: str = ""

    def markdown(self) -> str:
        head = f"**{self.phase}**" + (f" · iteration {self.iteration}" if self.iteration is not None else "")
        head += " · ⏸ **paused**" if self.paused else ""
        lines = [head, "", _one_line(self.message)]
        if self.step:
            lines += ["", f"**step running:** `{_one_line(self.step)}`"]
        for stage, verdict in self.verdicts.items():
            lines += ["", f"**last {stage} verdict:** {_one_line(verdict)}"]
        if self.held:
            lines += ["", f"**held:** {_one_line(self.held)}"]
        if self.title:
            lines += ["", f"> {_one_line(self.title)}"]
        text = "\n".join(lines)
        return text[:MAX_DETAIL_CHARS]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def request_details(project: str, request_id: str, description: str, criteria: list[str]) -> str:
    """The static details of a request's workflow: what was asked, and how it is judged."""
    lines = [f"**request** `{request_id}` of project `{project}`", "", description.strip()[: MAX_DETAIL_CHARS // 2]]
    if criteria:
        lines += ["", "**acceptance criteria**", *(f"- {_one_line(c)}" for c in criteria[:20])]
    return "\n".join(lines)[:MAX_DETAIL_CHARS]


def session_details(name: str, spec_path: str, title: str) -> str:
    return f"**session** `{name}`\n\nspec `{spec_path}`: {_one_line(title)}"[:MAX_DETAIL_CHARS]
