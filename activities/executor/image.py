"""Building the executor image from the Dockerfile in the repository (``iter executor build``).

No registry is needed: the Dockerfile starts FROM a local base image (made with debootstrap by
``.ci/docker.sh``) and the build runs with no network."""

from __future__ import annotations

from pathlib import Path

from docker.errors import BuildError, ImageNotFound

from activities.executor.base import ExecutorUnavailable
from activities.executor.docker_client import docker_client

DEFAULT_BASE = "iter-executor-base:latest"
DOCKERFILE = Path(__file__).resolve().parents[2] / "executor" / "Dockerfile"


class ImageBuildError(Exception):
    """The build ran and failed; the message is Docker's last word on it."""


def build_image(tag: str, dockerfile: Path = DOCKERFILE, base: str = DEFAULT_BASE) -> str:
    """Build ``tag``; returns the image id."""
    if not dockerfile.is_file():
        raise ImageBuildError(f"no Dockerfile at {dockerfile}; pass --file PATH to the executor's Dockerfile")
    client = docker_client()
    try:
        client.images.get(base)
    except ImageNotFound:
        raise ExecutorUnavailable(
            f"the base image {base} does not exist; make it with `bash .ci/docker.sh` "
            "(debootstrap, see DEVELOPERS.md) or pass --base IMAGE"
        ) from None
    try:
        image, _ = client.images.build(
            path=str(dockerfile.parent),
            dockerfile=dockerfile.name,
            tag=tag,
            buildargs={"BASE": base},
            network_mode="none",
            rm=True,
            forcerm=True,
        )
    except BuildError as exc:
        last = next((str(line.get("stream") or line.get("error")).strip() for line in reversed(list(exc.build_log))
                     if line.get("stream") or line.get("error")), str(exc))  # fmt: skip
        raise ImageBuildError(f"building {tag} failed: {last}") from None
    return str(image.id)
