"""The CLI's manners, driven as a user drives it: Ctrl-C at any moment is one line and exit 130,
`iter server` with a server already up is not an error."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from temporal.devserver import DEV_HOST, DEV_PORT, port_open
from tests.cli import ITER


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a command talking to it waits."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1"})
    env.update({"ITER_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path: Path) -> None:
    with silent_server() as port:
        env = env_for(tmp_path, ITER_TEMPORAL_ADDRESS=f"127.0.0.1:{port}")
        # From iter's first instants (its imports) to a command waiting on its server. Before that
        # the interpreter itself is starting (site), where no program can handle a signal: the
        # first delay is how long a bare interpreter takes to start here and now.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = time.perf_counter() - start
        for delay in (1.5 * interpreter, 0.5, 1.0, 3.0):
            proc = subprocess.Popen([ITER, "status"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            lines = [line for line in err.splitlines() if line.strip()]
            assert proc.returncode == 130, f"after {delay} s: rc {proc.returncode}, stderr {err!r}"
            assert "Traceback" not in err and len(lines) <= 1, f"after {delay} s, stderr was:\n{err}"


def test_iter_server_with_a_server_up_exits_0(tmp_path: Path) -> None:
    listener = None
    if not port_open(DEV_HOST, DEV_PORT):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((DEV_HOST, DEV_PORT))
        listener.listen(4)
    try:
        done = subprocess.run([ITER, "server"], env=env_for(tmp_path), cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    finally:
        if listener is not None:
            listener.close()
    assert done.returncode == 0, done.stderr
    assert "already listens" in done.stdout and "nothing to start" in done.stdout


def test_a_worker_leaves_when_its_server_is_gone(tmp_path: Path) -> None:
    """`iter orchestrate` spawns workers with an idle limit; one whose server went away leaves
    after as long, instead of living on (they used to accumulate, one per dev server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temporal = str(Path(sys.executable).parent / "temporal")
    server = subprocess.Popen([temporal, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
                               "--headless", "--log-level", "error"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.2)
        env = env_for(tmp_path, ITER_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", ITER_TASK_QUEUE="iter-gone-test")
        worker = subprocess.Popen([ITER, "worker", "--idle-exit", "6"], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert worker.stdout is not None
        first = worker.stdout.readline()
        assert "polling" in first, first
        server.terminate()
        server.wait(30)
        gone = time.monotonic()
        worker.wait(timeout=120)
        took = time.monotonic() - gone
        assert took < 90, f"the worker stayed {took:.0f} s after its server went away"
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if server.poll() is None:
            server.kill()
