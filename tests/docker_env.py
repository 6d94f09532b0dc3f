"""The Docker engine the docker-marked tests stand on: a reachable daemon and the executor image.

No daemon: the tests skip, saying how to get one. A daemon without the image: the image is built
here (it needs the debootstrap base image, which `.ci/docker.sh` makes); a build that cannot
happen fails the tests rather than hiding them."""

from __future__ import annotations

from typing import Any

import pytest

from models.config import DEFAULT_EXECUTOR_IMAGE


def require_docker() -> str:
    """The executor image's tag, built if missing; skips when no Docker daemon answers."""
    try:
        import docker
    except ImportError:
        pytest.skip("the docker package is not installed (pip install -e '.[dev]')")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # any failure to reach the daemon means the same: no engine here
        pytest.skip(f"no Docker daemon answers ({type(exc).__name__}); `bash .ci/docker.sh` starts one")
    try:
        client.images.get(DEFAULT_EXECUTOR_IMAGE)
    except docker.errors.ImageNotFound:
        from activities.executor.image import build_image

        build_image(DEFAULT_EXECUTOR_IMAGE)
    return DEFAULT_EXECUTOR_IMAGE


def request_containers(request_key: str | None = None) -> list[Any]:
    """The containers iter made for one request (or for all of them)."""
    from activities.executor.container_spec import LABEL_MANAGED, LABEL_REQUEST
    from activities.executor.docker_client import docker_client

    label = f"{LABEL_REQUEST}={request_key}" if request_key else LABEL_MANAGED
    return list(docker_client().containers.list(all=True, filters={"label": label}))
