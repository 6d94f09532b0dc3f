"""The executor interface and the journal that makes a command exactly-once.

Each step gets a run directory in its request's journal, ``<data dir>/journals/<request key>/<run
key>/``, on the worker's machine and out of every step's reach: no container mounts it, and a
local step is not told where it is (its wrapper writes through file descriptors the worker opened,
closed before the command starts). ``cmd.sh`` records that a command was prepared; the exit status
comes from a channel the step cannot write (the worker's own child, or the Docker daemon's record
of the exec); ``outcome.json`` is the recorded result, written by the worker only. A retried
activity reads the directory and picks up where the dead attempt stopped: it returns a recorded
outcome, waits for a command still running, or reports one that died with its host. It never
starts a command a second time.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from temporalio.exceptions import ApplicationError


class ExecutorUnavailable(Exception):
    """The backend cannot run anything here (no Docker daemon, no image); the message says how to fix it.

    ``waiting``: it may come back by itself (the daemon restarts), so a step waits for it instead of
    failing the request; a missing image or network waits for nobody."""

    def __init__(self, message: str, *, waiting: bool = False) -> None:
        super().__init__(message)
        self.waiting = waiting


def unavailable_failure(exc: ExecutorUnavailable) -> ApplicationError:
    """The activity's failure: retried while the backend may come back, and the message is what
    ``iter status`` shows meanwhile ("waiting: waiting for Docker: ...")."""
    if exc.waiting:
        return ApplicationError(f"waiting for Docker: {exc}", type="ExecutorWaiting")
    return ApplicationError(str(exc), type="ExecutorUnavailable", non_retryable=True)


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


def runs_root(data: Path, request_key: str) -> Path:
    """A request's journal: under the worker's data directory, never inside a workspace."""
    return data / "journals" / request_key


def streams_root(data: Path, request_key: str) -> Path:
    """Docker only: the one directory a request's container may write besides the workspace, where
    its steps' wrappers leave their output (and a pid, a hint for killing). Nothing in it is trusted
    as a record: the worker copies the output into the journal when the step ends."""
    return data / "streams" / request_key


def make_private(folder: Path) -> Path:
    """A journal directory only the worker can enter."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


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


# The key a request's journal entries are sealed with: made by the workflow, carried in the
# activity's input, held in memory only. Where a step can reach the journal at all (the local
# backend runs it as the worker's user), an entry it forged fails the seal and is ignored.
_SEAL: contextvars.ContextVar[bytes] = contextvars.ContextVar("iter_journal_seal", default=b"")


@contextlib.contextmanager
def sealed_with(key: str) -> Iterator[None]:
    token = _SEAL.set(key.encode())
    try:
        yield
    finally:
        _SEAL.reset(token)


def _mac(data: dict[str, object]) -> str:
    return hmac.new(_SEAL.get(), json.dumps(data, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def write_sealed(path: Path, data: dict[str, object]) -> None:
    write_json_atomic(path, {"data": data, "seal": _mac(data)})


def read_sealed(path: Path) -> dict[str, object] | None:
    """The entry, or None when it is missing or was not written by this request's worker."""
    raw = read_json(path)
    data = raw.get("data") if raw else None
    if not isinstance(data, dict) or not hmac.compare_digest(str(raw.get("seal", "")), _mac(data)):  # type: ignore[union-attr]
        return None
    return data


def recorded_outcome(run_dir: Path) -> CommandOutcome | None:
    data = read_sealed(run_dir / "outcome.json")
    return CommandOutcome(**data) if data else None  # type: ignore[arg-type]


def record_outcome(run_dir: Path, outcome: CommandOutcome) -> CommandOutcome:
    write_sealed(run_dir / "outcome.json", asdict(outcome))
    return outcome


def finish(
    run_dir: Path,
    rc: int | None,
    duration_s: float,
    output_cap: int,
    *,
    output_dir: Path | None = None,
    timed_out: bool = False,
    note: str = "",
) -> CommandOutcome:
    """Record the outcome of a command that has ended or was killed at its timeout: its exit status
    as the backend's own channel reported it (None when it was killed, or died without one), and
    its capped output from ``output_dir`` (the run dir unless the backend keeps it elsewhere)."""
    rc = None if timed_out else rc
    outcome = CommandOutcome(
        exit_code=rc,
        output=read_output(output_dir or run_dir, output_cap) + note,
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


WRAPPER_NAME = "iter-step"
