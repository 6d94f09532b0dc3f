"""The connection to the Docker engine, and what iter says when it cannot be used: no daemon
answering, no executor image, no network of the configured name. Each message is one line that
says how to fix it, and never suggests a silent fallback to a weaker backend."""

from __future__ import annotations

import os
import threading

import docker
import requests
from docker.errors import DockerException, ImageNotFound

from activities.executor.base import ExecutorUnavailable
from models.config import ExecutorSettings

API_TIMEOUT_S = 60

_client: docker.DockerClient | None = None
_client_lock = threading.Lock()


def unreachable_message(why: object) -> str:
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    reason = "nothing answers there" if _no_answer(why) else str(why).splitlines()[0][:120]
    return (
        f"Docker is not reachable at {where} ({reason}); start it (`sudo systemctl start docker` or `dockerd &`) "
        "or install it, or choose the local backend explicitly with --executor local"
    )


def _no_answer(why: object) -> bool:
    text = str(why)
    return any(s in text for s in ("FileNotFoundError", "Connection refused", "Connection aborted", "No such file"))


def docker_client() -> docker.DockerClient:
    """One client per process (its connection pool makes each exec cheaper); built on first use,
    which asks the daemon its API version and so fails here, in one line, when none answers."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                _client = docker.from_env(timeout=API_TIMEOUT_S)
            except DockerException as exc:
                raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None
        return _client


def preflight(settings: ExecutorSettings) -> None:
    """Fail fast, before a request starts, when its steps could not run: no daemon or no image."""
    client = docker_client()
    try:
        client.ping()
        client.images.get(settings.image)
    except ImageNotFound:
        raise ExecutorUnavailable(missing_image_message(settings.image)) from None
    except (DockerException, requests.exceptions.ConnectionError) as exc:
        raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None


def missing_image_message(image: str) -> str:
    return f"the executor image {image} does not exist; build it with `iter executor build`, or choose --executor local"


def missing_network_message(network: str) -> str:
    return (
        f"the executor network {network!r} does not exist on this Docker engine; create it "
        f"(`docker network create {network}`) or set executor.network (ITER_EXECUTOR_NETWORK) to one that does"
    )
