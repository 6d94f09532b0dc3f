"""A request's container on the Docker engine (or a network step's own), and the execs in it.

Made on first use from ``container_spec``, made again under the same name when something removed
it between steps (a sweep, a daemon restart), and removed by ``close()`` (the ``release_executor``
activity) or by the sweep at worker start. Every method blocks on the daemon: the executor calls
them on a thread.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from activities.executor.base import ExecutorUnavailable
from activities.executor.container_spec import (
    LABEL_REQUEST,
    LABEL_STEP,
    container_spec,
    step_container_name,
    workspace_owner,
)
from activities.executor.docker_client import docker_client, missing_image_message, missing_network_message
from models.config import ExecutorSettings

# Kill the step's process group, then anything else the step's user left behind (daemonised
# children escape the group); PID 1 is exempt from ``kill -1``. ``kill -1`` only runs when PID 1 is
# our own init (``IDLE_INIT``), that is in the container's own PID namespace: never in one shared with the host.
# dash's kill takes no ``--``.
KILL_STEP = (
    '[ "$1" -gt 1 ] && kill -KILL -"$1" 2>/dev/null; '
    "case \"$(tr '\\0' ' ' < /proc/1/cmdline)\" in *'sleep 2147483647'*) kill -KILL -1 2>/dev/null;; esac; "
    "exit 0"
)
KILL_WAIT_S = 10.0
KILL_POLL_S = 0.001  # the kill is done within milliseconds


class Container:
    def __init__(
        self,
        settings: ExecutorSettings,
        workspace: Path,
        request_key: str,
        streams: Path,
        network_step: str | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.request_key = request_key
        self.streams = streams
        self.network_step = network_step
        self.name = step_container_name(request_key, network_step)
        self.client = docker_client()
        self.api = self.client.api
        self._id: str | None = None

    # --- the container ---------------------------------------------------------------------------

    def ensure(self) -> str:
        """The running container's id: this request's, found by name, or made and started now."""
        if self._id:
            return self._id
        try:
            container = self.client.containers.get(self.name)
        except NotFound:
            container = self._create()
        if container.status != "running":
            try:
                container.start()
            except NotFound as exc:
                # Docker checks the network only now: a name that is not one of its networks.
                if self.network_step is None or "network" not in str(exc):
                    raise
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
                raise ExecutorUnavailable(missing_network_message(self.settings.network)) from None
        self._id = str(container.id)
        return self._id

    def _create(self) -> Any:
        spec = container_spec(self.settings, self.workspace, self.request_key, self.streams, self.network_step)
        try:
            return self.client.containers.create(**spec)
        except ImageNotFound:
            raise ExecutorUnavailable(missing_image_message(self.settings.image)) from None
        except APIError as exc:
            if exc.status_code != 409:
                raise
            # Another attempt created it a moment ago: use that one.
            return self.client.containers.get(self.name)

    def remove(self) -> None:
        names = [self.name]
        if self.network_step is None:
            # Network steps' containers a dead worker left behind go with the request.
            filters = {"label": [f"{LABEL_REQUEST}={self.request_key}", LABEL_STEP]}
            names += [c.name for c in self.client.containers.list(all=True, filters=filters)]
        for name in names:
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)
        self._id = None

    # --- execs -----------------------------------------------------------------------------------

    def new_exec(self, argv: list[str]) -> str:
        """An exec of ``argv``, created but not started, in the container (made again if it went)."""
        cid = self.ensure()
        try:
            return self.exec_create(cid, argv)
        except (NotFound, APIError) as exc:
            if not container_gone(exc):
                raise
            # Removed or stopped between steps (a sweep, a daemon restart): a new one, same name.
            self._id = None
            return self.exec_create(self.ensure(), argv)

    def exec_create(self, cid: str, argv: list[str]) -> str:
        # Who owns the workspace is read when needed, not when built: releasing a request whose
        # workspace is gone must still work.
        uid, gid = workspace_owner(self.workspace)
        created = self.api.exec_create(
            cid, argv, stdout=False, stderr=False, user=f"{uid}:{gid}", workdir=str(self.workspace.absolute())
        )
        return str(created["Id"])

    def start_exec(self, exec_id: str) -> None:
        self.api.exec_start(exec_id, detach=True)

    def exec_info(self, exec_id: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = self.api.exec_inspect(exec_id)
            return info
        except NotFound:
            return None  # the container (and every exec in it) is gone

    def ended(self, exec_id: str | None) -> tuple[bool, int | None]:
        """Whether the exec has ended, and its exit status as the daemon recorded it."""
        if exec_id is None:
            return True, None
        info = self.exec_info(exec_id)
        if info is None:
            return True, None
        if info.get("Running"):
            return False, None
        code = info.get("ExitCode")
        return True, int(code) if code is not None else None

    def _running(self, exec_id: str) -> bool:
        info = self.exec_info(exec_id)
        return bool(info and info.get("Running"))

    def kill_step(self, pgid: int) -> None:
        """Kill the step's process group ``pgid`` (0: none known) and whatever else the step left."""
        try:
            exec_id = self.exec_create(self._id or self.name, ["/bin/sh", "-c", KILL_STEP, "iter-kill", str(pgid)])
            self.api.exec_start(exec_id)
            # With no stream attached, exec_start returns once the kill has *started*; wait until it
            # is done, or its ``kill -1`` could hit the next step's exec as it enters the container.
            deadline = time.monotonic() + KILL_WAIT_S
            while self._running(exec_id) and time.monotonic() < deadline:
                time.sleep(KILL_POLL_S)
        except (NotFound, APIError) as exc:
            if not container_gone(exc):
                raise


def container_gone(exc: DockerException) -> bool:
    """Docker's answer when the container was removed (404) or is not running (409)."""
    return isinstance(exc, NotFound) or (isinstance(exc, APIError) and exc.status_code == 409)
