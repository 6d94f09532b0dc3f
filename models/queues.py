"""The task queues of one iter deployment. Workflows poll the configured queue; model calls and
step execution go to queues of their own, named after it, so a GPU machine can run the model
workers and sandboxes run elsewhere (``iter worker --queues llm``). One worker serves all three
by default."""

from __future__ import annotations

from typing import Literal, get_args

QueueRole = Literal["workflows", "llm", "exec"]
ROLES: tuple[QueueRole, ...] = get_args(QueueRole)


def queue_name(task_queue: str, role: QueueRole) -> str:
    """``iter`` for the workflows, ``iter-llm`` and ``iter-exec`` for their activities."""
    return task_queue if role == "workflows" else f"{task_queue}-{role}"


def parse_roles(text: str) -> list[QueueRole]:
    """``workflows,llm,exec`` (any subset, any order); raises ValueError naming what is unknown."""
    roles = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"unknown queue {', '.join(unknown) or '(none)'}; choose from {','.join(ROLES)}")
    return list(dict.fromkeys(roles))  # type: ignore[arg-type]
