"""Asking the reviewer model for a structured verdict, with bounded repairs of bad answers."""

from __future__ import annotations

from pydantic import BaseModel

from activities.llm import stream_answer
from models.answers import echo, truncated_reason
from models.config import Settings
from models.request import ChatMessage, ModelCallInput, ModelUsage
from models.schemas import parse_answer


async def ask_reviewer(
    settings: Settings, schema_name: str, system: str, user: str
) -> tuple[BaseModel | None, list[ModelUsage], str]:
    """The parsed verdict (None if every repair failed), the usage of each call, the last error."""
    messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]
    usages: list[ModelUsage] = []
    errors = ""
    for repair in range(settings.bounds.max_parse_repairs + 1):
        out = await stream_answer(
            ModelCallInput(
                role="reviewer",
                schema_name=schema_name,  # type: ignore[arg-type]
                messages=messages,
                settings=settings,
                repair=repair,  # the live view labels it "(repair N)"
            )
        )
        usages.append(out.usage)
        if out.truncated:
            errors = truncated_reason(out)
        else:
            parsed, errors = parse_answer(schema_name, out.text)
            if parsed is not None:
                return parsed, usages, ""
        messages += [
            ChatMessage(role="assistant", content=echo(out.text)),
            ChatMessage(
                role="user", content=f"That answer is invalid:\n{errors}\nAnswer again with JSON matching the schema."
            ),
        ]
    return None, usages, errors
