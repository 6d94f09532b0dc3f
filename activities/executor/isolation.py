"""``iter executor check``: proves, on this machine, that a request's container isolates its steps.

It runs a container exactly the way requests do (``DockerExecutor`` on a throwaway workspace)
and tries what a step must not be able to do: reach the network or the host's loopback, write
outside the workspace, read the host's files, see the host's processes, keep children alive
past its timeout. Each check reports what it saw."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from activities.executor.docker import DockerExecutor
from activities.executor.docker_client import docker_client, preflight
from models.config import ExecutorSettings

PROBE_TIMEOUT_S = 20
KILL_PROBE_TIMEOUT_S = 1
PUBLIC_ADDRESS = "1.1.1.1"  # public: with no network, nothing is sent anywhere

CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "    print('CONNECTED')\n"
    "except OSError as e:\n"
    "    print('refused:', e)\n"
)
PROCESSES = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Probe:
    """A throwaway workspace, a container made for it like a request's, and host-side bait."""

    def __init__(self, settings: ExecutorSettings, root: Path) -> None:
        self.root = root
        self.workspace = root / "workspace"
        self.workspace.mkdir()
        self.secret = root / "host-only.txt"
        self.marker = uuid.uuid4().hex
        self.secret.write_text(self.marker)
        self.executor = DockerExecutor(settings, self.workspace, f"iter-check.{self.marker}", root / "data")
        self.n = 0

    async def sh(self, command: str, timeout_s: int = PROBE_TIMEOUT_S) -> tuple[int | None, str, bool]:
        self.n += 1
        out = await self.executor.run(command, self.executor.journal / str(self.n), timeout_s, 64_000)
        return out.exit_code, out.output.strip(), out.timed_out


async def check_isolation(settings: ExecutorSettings) -> list[Check]:
    """Every check, in order; raises ExecutorUnavailable when there is nothing to check."""
    preflight(settings)
    root = Path(tempfile.mkdtemp(prefix="iter-check-"))
    probe = _Probe(settings, root)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    bait = subprocess.Popen(["sleep", f"3600.{int(probe.marker[:8], 16)}"])
    try:
        checks = [await _runs_as_owner(probe), await _no_privileges(probe)]
        checks += [await _no_network(probe), await _no_host_loopback(probe, listener.getsockname()[1])]
        checks += [await _read_only_outside(probe), await _no_host_files(probe), await _no_host_processes(probe, bait)]
        checks += [await _timeout_kills_children(probe), _limits(settings, probe)]
        return checks
    finally:
        bait.kill()
        bait.wait()
        listener.close()
        await probe.executor.close()
        shutil.rmtree(root, ignore_errors=True)


async def _runs_as_owner(p: _Probe) -> Check:
    rc, out, _ = await p.sh("id -u; id -g; touch written-by-step")
    st = p.workspace.stat()
    written = p.workspace / "written-by-step"
    owner = (written.stat().st_uid, written.stat().st_gid) if written.exists() else None
    ok = rc == 0 and out.split() == [str(st.st_uid), str(st.st_gid)] and owner == (st.st_uid, st.st_gid)
    detail = f"uid:gid {':'.join(out.split())}, files written belong to {owner[0]}:{owner[1]}" if owner else out
    if ok and st.st_uid == 0:
        return Check(
            "steps run as the workspace owner",
            True,
            detail + " (root owns the workspace: a root with no "
            "capabilities; chown the workspace to a user to run steps unprivileged)",
            warning=True,
        )
    return Check("steps run as the workspace owner", ok, detail)


async def _no_privileges(p: _Probe) -> Check:
    _, out, _ = await p.sh("grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
    fields = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    ok = fields.get("CapEff") == "0000000000000000" and fields.get("CapBnd") == "0000000000000000"
    ok = ok and fields.get("NoNewPrivs") == "1"
    return Check("no capabilities, no new privileges", ok, ", ".join(f"{k} {v}" for k, v in fields.items()) or out)


async def _no_network(p: _Probe) -> Check:
    _, out, _ = await p.sh(f'ls /sys/class/net; python3 -c "{CONNECT}" {PUBLIC_ADDRESS} 443')
    lines = out.splitlines()
    ok = lines[:1] == ["lo"] and "CONNECTED" not in out and any(line.startswith("refused") for line in lines)
    return Check(
        f"no network: {PUBLIC_ADDRESS}:443 unreachable", ok, f"interfaces {lines[:1]}; {lines[-1] if lines else ''}"
    )


async def _no_host_loopback(p: _Probe, port: int) -> Check:
    _, out, _ = await p.sh(f'python3 -c "{CONNECT}" 127.0.0.1 {port}')
    return Check(f"no network: the host's 127.0.0.1:{port} unreachable", out.startswith("refused"), out)


async def _read_only_outside(p: _Probe) -> Check:
    tmp_name = f"iter-check-{p.marker}"
    rc, out, _ = await p.sh(
        "for d in / /etc /usr /var /root /home /opt; do "
        'touch "$d/.iter-probe" 2>/dev/null && echo "WROTE $d"; done; '
        # Next to the workspace and in /tmp a write may land in the container's private /tmp, but
        # must never reach the host.
        f"touch ../.iter-probe /tmp/{tmp_name} 2>/dev/null; touch inside-ok && echo done"
    )
    escaped = [line for line in out.splitlines() if line.startswith("WROTE")]
    escaped += [f"host {path}" for path in (p.root / ".iter-probe", Path("/tmp", tmp_name)) if path.exists()]
    ok = rc == 0 and not escaped and (p.workspace / "inside-ok").exists()
    detail = "; ".join(escaped) if escaped else "the root file system is read-only; /tmp is private to the container"
    return Check("cannot write outside the workspace", ok, detail)


async def _no_host_files(p: _Probe) -> Check:
    _, out, _ = await p.sh(f"cat {p.secret} 2>&1; ls {p.root} 2>&1; cat /etc/hostname")
    seen = p.marker in out
    ok = not seen and socket.gethostname() not in out.splitlines()[-1:]
    return Check(
        "cannot see the host's files", ok, f"a host file next to the workspace is {'READABLE' if seen else 'absent'}"
    )


async def _no_host_processes(p: _Probe, bait: subprocess.Popen[bytes]) -> Check:
    _, out, _ = await p.sh(PROCESSES)
    needle = " ".join(str(a) for a in bait.args) if isinstance(bait.args, list) else str(bait.args)
    visible = [line for line in out.splitlines() if line.strip()]
    ok = needle not in out and len(visible) < 20
    return Check(
        "cannot see the host's processes",
        ok,
        f"{len(visible)} processes visible, all the container's own" if ok else f"the host's `{needle}` is visible",
    )


async def _timeout_kills_children(p: _Probe) -> Check:
    _, _, timed_out = await p.sh("sleep 301 & sleep 302; echo never", KILL_PROBE_TIMEOUT_S)
    _, out, _ = await p.sh(PROCESSES)
    left = [line for line in out.splitlines() if "sleep 30" in line]
    ok = timed_out and not left
    return Check(
        f"a step is killed at its timeout with its children ({KILL_PROBE_TIMEOUT_S} s)",
        ok,
        "the step and its `sleep` child are gone" if ok else f"timed out {timed_out}, left {left}",
    )


def _limits(settings: ExecutorSettings, p: _Probe) -> Check:
    attrs = docker_client().api.inspect_container(p.executor.container.name)
    host = attrs["HostConfig"]
    want = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "PidsLimit": settings.pids_limit,
        "Memory": settings.memory_mb * 1024 * 1024,
        "NanoCpus": int(settings.cpus * 1e9),
    }
    wrong = {k: host.get(k) for k, v in want.items() if host.get(k) != v}
    detail = f"pids {settings.pids_limit}, memory {settings.memory_mb} MB, cpus {settings.cpus}, read-only root"
    return Check("limits and hardening as configured", not wrong, detail if not wrong else f"differs: {wrong}")
