"""Per-step overhead of the Docker executor against the local one, and the cost of a request's
container start. Not a test: run it on the machine whose numbers you want.

    .venv/bin/python bench/bench_executor.py [--steps 50] [--starts 5] [--json]

Each step is `true` through the executor's full path (run directory, journal, wrapper, outcome),
so its time is the executor's overhead. The Docker steps reuse one container, as a request does.
Ratios are against the local backend measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.executor.base import Executor, runs_root
from activities.executor.docker import DockerExecutor
from activities.executor.local import LocalExecutor
from models.config import ExecutorSettings

TARGET_MEDIAN_MS = 60.0


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(p95, 2), "n": len(ms)}


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def steps(executor: Executor, data: Path, key: str, n: int) -> list[float]:
    runs = runs_root(data, key)
    await executor.run("true", runs / "warmup", 30, 1000)  # the first step pays for the container
    samples = []
    for i in range(n):
        run_dir = runs / f"s{i}"
        samples.append(await timed(lambda run_dir=run_dir: executor.run("true", run_dir, 30, 1000)))  # type: ignore[misc]
    return samples


async def container_starts(
    settings: ExecutorSettings, workspace: Path, data: Path, n: int
) -> tuple[list[float], list[float]]:
    """Per new request: creating and starting its container, and its whole first step."""
    starts, first_steps = [], []
    for _ in range(n):
        key = f"bench-{uuid.uuid4().hex[:8]}.run"
        executor = DockerExecutor(settings, workspace, key, data)
        try:
            starts.append(await timed(lambda ex=executor: asyncio.to_thread(ex.container.ensure)))  # type: ignore[misc]
            await executor.close()
            run_dir = runs_root(data, key) / "first"
            first_steps.append(await timed(lambda ex=executor, d=run_dir: ex.run("true", d, 30, 1000)))  # type: ignore[misc]
        finally:
            await executor.close()
    return starts, first_steps


async def main(n_steps: int, n_starts: int) -> dict[str, object]:
    settings = ExecutorSettings(backend="docker")
    with tempfile.TemporaryDirectory(prefix="iter-bench-") as tmp:
        workspace, data = Path(tmp) / "ws", Path(tmp) / "data"
        workspace.mkdir()
        local = summary(await steps(LocalExecutor(workspace, runs_root(data, "local")), data, "local", n_steps))
        key = f"bench-{uuid.uuid4().hex[:8]}.run"
        docker_executor = DockerExecutor(settings, workspace, key, data)
        try:
            docker = summary(await steps(docker_executor, data, key, n_steps))
        finally:
            await docker_executor.close()
        starts, first_steps = await container_starts(settings, workspace, data, n_starts)
    return {
        "steps": n_steps,
        "local": local,
        "docker": docker,
        "docker_minus_local_median_ms": round(docker["median_ms"] - local["median_ms"], 2),
        "ratio_median": round(docker["median_ms"] / local["median_ms"], 1),
        "ratio_p95": round(docker["p95_ms"] / local["p95_ms"], 1),
        "container_start": summary(starts),
        "first_step_with_container_start": summary(first_steps),
        "target_median_ms": TARGET_MEDIAN_MS,
        "meets_target": docker["median_ms"] <= TARGET_MEDIAN_MS,
        "image": settings.image,
    }


def show(r: dict[str, object]) -> None:
    local, docker = r["local"], r["docker"]
    start, first = r["container_start"], r["first_step_with_container_start"]
    assert isinstance(local, dict) and isinstance(docker, dict) and isinstance(start, dict) and isinstance(first, dict)
    print(f"per step (`true`, {r['steps']} steps)     median      p95")
    print(f"  local                        {local['median_ms']:7.1f} ms {local['p95_ms']:7.1f} ms")
    print(f"  docker (container reused)    {docker['median_ms']:7.1f} ms {docker['p95_ms']:7.1f} ms")
    print(f"  docker / local               {r['ratio_median']:7.1f} x  {r['ratio_p95']:7.1f} x")
    print(f"  docker - local               {r['docker_minus_local_median_ms']:7.1f} ms")
    print(f"container start ({start['n']} requests)   {start['median_ms']:7.1f} ms {start['p95_ms']:7.1f} ms")
    print(f"first step incl. start         {first['median_ms']:7.1f} ms {first['p95_ms']:7.1f} ms")
    verdict = "meets" if r["meets_target"] else "MISSES"
    print(f"target: docker per-step median <= {r['target_median_ms']:.0f} ms: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = asyncio.run(main(args.steps, args.starts))
    print(json.dumps(results, indent=2)) if args.json else show(results)
