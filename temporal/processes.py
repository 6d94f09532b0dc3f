"""What a process id runs now: the CLI signals or waits on the background processes it started
(the worker, the dev server) only while the id is still theirs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def argv_of(pid: int) -> list[str]:
    """The command line of ``pid``; empty when it is gone (a zombie has none either)."""
    if Path("/proc").is_dir():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone
            return []
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout.split()


def pid_in(pid_file: Path) -> int:
    """The pid a CLI recorded in ``pid_file``; 0 when there is none."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return 0
