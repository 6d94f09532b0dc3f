"""Asking the reviewer model for a structured verdict, with bounded repairs of bad answers."""

from __future__ import annotations

from pydantic import BaseModel

from activities.llm import stream_answer
from models.answers import echo, truncated_reason
from models.config import Settings
from models.replan import answer_key, changed_temperature, direct_prompt
from models.request import ChatMessage, ModelCallInput, ModelUsage
from models.schemas import parse_answer

VERDICT_ASK = "Answer with one JSON verdict matching the schema, complete. Do not repeat the rejected answer."


async def ask_reviewer(
    settings: Settings, schema_name: str, system: str, user: str
) -> tuple[BaseModel | None, list[ModelUsage], str]:
    """The parsed verdict (None if every repair failed), the usage of each call, the last error."""
    first = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]
    messages = list(first)
    usages: list[ModelUsage] = []
    errors = ""
    seen: set[str] = set()
    call_settings = settings
    for repair in range(settings.bounds.max_parse_repairs + 1):
        out = await stream_answer(
            ModelCallInput(
                role="reviewer",
                schema_name=schema_name,  # type: ignore[arg-type]
                messages=messages,
                settings=call_settings,
                repair=repair,  # the live view labels it "(repair N)"
            )
        )
        usages.append(out.usage)
        key = answer_key(out.text)
        if key in seen:
            # The same invalid answer again: the same call would bring it a third time. Ask with the
            # error first, without the conversation, and sample hotter.
            repeats = len(usages) - len(seen)
            hotter = changed_temperature(settings.llm.temperature, repeats)
            call_settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": hotter})})
            messages = [first[0], ChatMessage(role="user", content=direct_prompt(user, errors, VERDICT_ASK))]
            continue
        seen.add(key)
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
