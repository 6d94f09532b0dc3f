"""The executor interface and the run directory that makes a command exactly-once.

Each command gets a run directory, ``<workspace>/.iter/runs/<workflow>/<run key>/``:
``started.json`` is written before the command starts (who runs it, where, when), the command
writes ``out`` and finally ``rc``; ``outcome.json`` is the recorded result. A retried activity
reads the directory and picks up where the dead attempt stopped: it returns a recorded outcome,
waits for a command still running, or reports one that died with its host. It never starts a
command a second time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


class ExecutorUnavailable(Exception):
    """The backend cannot run anything here (no Docker daemon, no image); the message says how to fix it."""


@dataclass
class CommandOutcome:
    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Executor(Protocol):
    name: str

    async def run(
        self, command: str, run_dir: Path, timeout_s: int, output_cap: int, *, network: bool = False
    ) -> CommandOutcome:
        """Run ``command`` in the workspace once, journalled in ``run_dir``; adopt a started one.

        ``network``: the safety review approved this step for network access; without it a step
        gets none, where the backend can enforce that."""
        ...

    async def close(self) -> None:
        """Release what the executor holds for this request (a container); idempotent."""
        ...


def runs_root(workspace: Path, workflow_id: str) -> Path:
    return workspace / ".iter" / "runs" / workflow_id


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def recorded_outcome(run_dir: Path) -> CommandOutcome | None:
    data = read_json(run_dir / "outcome.json")
    return CommandOutcome(**data) if data else None  # type: ignore[arg-type]


def record_outcome(run_dir: Path, outcome: CommandOutcome) -> CommandOutcome:
    write_json_atomic(run_dir / "outcome.json", asdict(outcome))
    return outcome


def finish(
    run_dir: Path, duration_s: float, output_cap: int, *, timed_out: bool = False, note: str = ""
) -> CommandOutcome:
    """Record the outcome of a command whose wrapper has ended or was killed at its timeout: its
    status from ``rc`` (none when it was killed, or died without writing one), its capped output."""
    rc = None if timed_out else read_rc(run_dir)
    outcome = CommandOutcome(
        exit_code=rc,
        output=read_output(run_dir, output_cap) + note,
        duration_s=duration_s,
        timed_out=timed_out,
        interrupted=rc is None and not timed_out,
    )
    return record_outcome(run_dir, outcome)


def read_output(run_dir: Path, cap: int) -> str:
    """The command's combined output; when it is too long, its head and tail survive."""
    path = run_dir / "out"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with path.open("rb") as fh:
        if size <= cap:
            data = fh.read()
            return data.decode(errors="replace")
        half = cap // 2
        head = fh.read(half)
        fh.seek(size - half)
        tail = fh.read()
    cut = size - 2 * half
    return head.decode(errors="replace") + f"\n[... {cut} bytes cut ...]\n" + tail.decode(errors="replace")


def read_rc(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "rc").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# The shell that runs a step. Every value arrives as a positional argument ($1 the command file,
# $2 the run directory), so nothing is ever pasted into a shell line. It records its own pid
# first, so an attempt that died right after starting it can still find it.
WRAPPER = (
    'echo $$ > "$2/pid.tmp" && mv "$2/pid.tmp" "$2/pid"; '
    '/bin/sh "$1" > "$2/out" 2>&1 < /dev/null; '
    'echo $? > "$2/rc.tmp" && mv "$2/rc.tmp" "$2/rc"'
)
WRAPPER_NAME = "iter-step"
