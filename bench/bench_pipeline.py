"""The request pipeline's own overhead: wall time minus model time minus step run time.

Runs everything real except the model: the Temporal dev server (the ``temporal`` binary of the
venv), one in-process worker (``worker.build_worker``), the local executor, and a fake model server
(``tests/fake_llm.py``) in its own process that streams fixed answers of realistic size at a fixed
rate. Measures one request at a time (repeated) and N concurrent requests on the one worker.

    .venv/bin/python bench/bench_pipeline.py                 # defaults: 10 single, 20 concurrent
    .venv/bin/python bench/bench_pipeline.py --profile       # plus where one request's time goes

Targets (issue 2): median overhead <= 0.3 s per request; N concurrent finish within 1.5x the
single-request wall time."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import EXAMPLE, percentile, start_temporal  # first: it puts the repository (tests/) on the path
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.config import Settings
from models.project import FeatureRequest, Project
from models.request import RequestInput, RequestState
from tests import replies as r
from tests.fake_llm import FakeModel, FakeModelServer
from worker import build_worker
from workflows.request import RequestWorkflow

CHARS_PER_TOKEN = 4  # the fake streams one "token" of this many characters per chunk
TARGET_OVERHEAD_S = 0.3
TARGET_RATIO = 1.5

# --- the fixed answers: a realistic plan (a new module, an append, a verify step) and reviews ---

STATS_MODULE = '''"""Descriptive statistics over sequences of numbers."""

from __future__ import annotations

from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; raises ValueError on an empty sequence."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def median(values: Sequence[float]) -> float:
    """The middle value, or the mean of the two middle values."""
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def variance(values: Sequence[float]) -> float:
    """The population variance."""
    centre = mean(values)
    return sum((v - centre) ** 2 for v in values) / len(values)
'''

PLAN = r.plan(
    r.write("s1", "src/calc/stats.py", STATS_MODULE),
    r.write("s2", "src/calc/ops.py", r.MULTIPLY, "append"),
    r.verify("s3", "python -c 'print(1)'"),
    summary="Add a statistics module (mean, median, variance) and a multiply function to ops.",
)


def _safety_pass() -> dict[str, Any]:
    review = r.safety_pass()
    for check in review["checks"]:
        check["reason"] = f"All steps were checked for {check['name']}; nothing in the plan raises a concern here."
    return review


POST_PASS = {
    "verdict": "PASS",
    "criteria": [
        {"criterion": "mean, median and variance exist", "met": True, "evidence": "src/calc/stats.py defines them"},
        {"criterion": "multiply exists", "met": True, "evidence": "src/calc/ops.py ends with def multiply"},
        {"criterion": "the check passes", "met": True, "evidence": "step s3 exited 0 and printed 1"},
    ],
    "fix_steps": [],
    "info_requests": [],
}
ANSWERS: dict[str, Any] = {"plan": PLAN, "safety_review": _safety_pass(), "post_review": POST_PASS}


# --- the fake model server, in its own process like a real one -------------------------------------


def _serve_model(conn: Connection, tokens_per_s: float, provider: str) -> None:
    fake = FakeModel(token_delay_s=1.0 / tokens_per_s if tokens_per_s > 0 else 0.0, chunk_chars=CHARS_PER_TOKEN)
    for schema, answer in ANSWERS.items():
        fake.default(schema, answer)
    with FakeModelServer(fake, provider=provider) as server:
        assert server.httpd is not None
        # A client closing an idle keep-alive connection is normal; the stdlib would print a traceback.
        server.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        conn.send(server.base_url)
        with suppress(EOFError):
            conn.recv()  # blocks until the parent says stop, or dies with it


@contextmanager
def model_server(tokens_per_s: float, provider: str) -> Iterator[tuple[str, int]]:
    """The fake's base URL and process id."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_model, args=(child, tokens_per_s, provider), daemon=True)
    proc.start()
    try:
        yield str(parent.recv()), int(proc.pid or 0)
    finally:
        parent.send("stop")
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()


# --- one request, measured -------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    model_s: float
    steps_s: float
    started: float
    ended: float
    workflow_id: str
    outcome: str

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.model_s - self.steps_s


def project() -> Project:
    return Project(
        name="calc",
        stack="python",
        selected_files=["src/calc/ops.py", "tests/test_ops.py"],
        requests=[
            FeatureRequest(
                id="req_01",
                description="Add a statistics module with mean, median and variance, and a multiply function",
                criteria=["mean, median and variance exist", "multiply exists", "the check passes"],
            )
        ],
    )


async def run_one(client: Client, settings: Settings, root: Path) -> Sample:
    workflow_id = f"iter-calc-req_01-bench-{uuid.uuid4().hex[:8]}"
    workspace = root / workflow_id
    shutil.copytree(EXAMPLE, workspace)
    inp = RequestInput(project=project(), request_id="req_01", workspace=str(workspace), settings=settings)
    started = time.perf_counter()
    result = await client.execute_workflow(
        RequestWorkflow.run, inp, id=workflow_id, task_queue=settings.temporal.task_queue
    )
    ended = time.perf_counter()
    state: RequestState = result.state
    if state.outcome != "passed":
        raise RuntimeError(f"{workflow_id} ended {state.outcome}: {state.error}")
    return Sample(
        wall_s=ended - started,
        model_s=sum(u.duration_s for u in state.usage),
        steps_s=sum(res.duration_s for res in state.results),
        started=started,
        ended=ended,
        workflow_id=workflow_id,
        outcome=state.outcome,
    )


# --- where one request's time goes, from its history -----------------------------------------------


def _t(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


async def profile(client: Client, sample: Sample) -> dict[str, Any]:
    """Counts and time per kind of history event: workflow tasks, activities, local activities."""
    history = await client.get_workflow_handle(sample.workflow_id).fetch_history()
    events = list(history.events)
    by_id = {e.event_id: e for e in events}
    counts = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)
    wft_queue = act_queue = 0.0
    wft_runs: list[float] = []
    activities: dict[str, float] = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wft_queue += _t(e) - _t(by_id[e.workflow_task_started_event_attributes.scheduled_event_id])
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            wft_runs.append(round(_t(e) - _t(by_id[e.workflow_task_completed_event_attributes.started_event_id]), 3))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            scheduled = by_id[e.activity_task_started_event_attributes.scheduled_event_id]
            act_queue += _t(e) - _t(scheduled)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = e.activity_task_completed_event_attributes
            name = by_id[attrs.scheduled_event_id].activity_task_scheduled_event_attributes.activity_type.name
            activities[name] = round(activities.get(name, 0.0) + _t(e) - _t(by_id[attrs.started_event_id]), 3)
    return {
        "events": len(events),
        "workflow_tasks": len(wft_runs),
        "activities": activities,
        "local_activities": counts["MARKER_RECORDED"],
        "workflow_task_schedule_to_start_s": round(wft_queue, 3),
        "workflow_task_processing_s": round(sum(wft_runs), 3),
        "workflow_task_runs_s": wft_runs,
        "activity_schedule_to_start_s": round(act_queue, 3),
        "activity_start_to_close_s": round(sum(activities.values()), 3),
        "activity_outside_model_and_steps_s": round(sum(activities.values()) - sample.model_s - sample.steps_s, 3),
        "wall_s": round(sample.wall_s, 3),
        "overhead_s": round(sample.overhead_s, 3),
        "history_span_s": round(_t(events[-1]) - _t(events[0]), 3),
        "event_counts": dict(counts),
    }


# --- CPU seconds by process: on a small machine, concurrency turns CPU into waiting ---------------


def _cpu(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of its reaped children: the step commands) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _children() -> dict[int, str]:
    kids: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == os.getpid():
            kids[int(stat.parent.name)] = text.split("(", 1)[1].rsplit(")", 1)[0]
    return kids


def cpu_snapshot(model_pid: int) -> dict[str, float]:
    own, reaped = _cpu(os.getpid())
    snap = {"worker and client": own, "step commands": reaped}
    for pid, name in _children().items():
        label = "model server" if pid == model_pid else "temporal server" if name == "temporal" else None
        if label:
            snap[label] = _cpu(pid)[0]
    return snap


def cpu_per_request(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    return {k: round((after[k] - before.get(k, 0.0)) / n, 3) for k in after}


# --- the benchmark ---------------------------------------------------------------------------------


def median_sample(samples: list[Sample]) -> Sample:
    """The request whose overhead is the median: the one a profile should explain."""
    return sorted(samples, key=lambda s: s.overhead_s)[len(samples) // 2]


def summary(samples: list[Sample]) -> dict[str, float]:
    over = [s.overhead_s for s in samples]
    return {
        "n": len(samples),
        "overhead_median_s": round(statistics.median(over), 3),
        "overhead_p95_s": round(percentile(over, 0.95), 3),
        "wall_median_s": round(statistics.median(s.wall_s for s in samples), 3),
        "model_median_s": round(statistics.median(s.model_s for s in samples), 3),
        "steps_median_s": round(statistics.median(s.steps_s for s in samples), 3),
    }


def settings_for(env: WorkflowEnvironment, base_url: str, provider: str, data_dir: Path) -> Settings:
    return Settings.model_validate(
        {
            "llm": {"provider": provider, "base_url": base_url, "model": "coder", "reviewer_model": "reviewer"},
            "executor": {"backend": "local", "step_timeout_s": 60},
            "temporal": {
                "address": env.client.service_client.config.target_host,
                "task_queue": f"iter-bench-{uuid.uuid4().hex[:8]}",
            },
            "data_dir": str(data_dir),
        }
    )


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    # Steps find the venv's python first, as they would for a user working inside it.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    root = Path(tempfile.mkdtemp(prefix="iter-bench-"))
    try:
        with model_server(args.tokens_per_s, args.provider) as (base_url, model_pid):
            env = await start_temporal()
            try:
                settings = settings_for(env, base_url, args.provider, root / "data")
                async with build_worker(env.client, settings):
                    for _ in range(args.warmup):
                        await run_one(env.client, settings, root)
                    cpu0 = cpu_snapshot(model_pid)
                    single = [await run_one(env.client, settings, root) for _ in range(args.single)]
                    cpu1 = cpu_snapshot(model_pid)
                    batch = await asyncio.gather(*(run_one(env.client, settings, root) for _ in range(args.concurrent)))
                    cpu2 = cpu_snapshot(model_pid)
                    prof = None
                    if args.profile:
                        prof = {
                            "single": await profile(env.client, median_sample(single)),
                            "concurrent": await profile(env.client, median_sample(batch)),
                        }
            finally:
                await env.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    makespan = max(s.ended for s in batch) - min(s.started for s in batch)
    single_wall = statistics.median(s.wall_s for s in single)
    report: dict[str, Any] = {
        "config": {
            "tokens_per_s": args.tokens_per_s,
            "provider": args.provider,
            "answer_chars": {k: len(json.dumps(v)) for k, v in ANSWERS.items()},
            "cpus": os.cpu_count(),
        },
        "single": {**summary(single), "cpu_s_per_request": cpu_per_request(cpu0, cpu1, len(single))},
        "concurrent": {
            **summary(batch),
            "makespan_s": round(makespan, 3),
            "cpu_s_per_request": cpu_per_request(cpu1, cpu2, len(batch)),
        },
        "concurrent_ratio": round(makespan / single_wall, 3),
    }
    if prof:
        report["profile"] = prof
    return report


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def show(report: dict[str, Any]) -> None:
    cfg, one, many = report["config"], report["single"], report["concurrent"]
    print(
        f"fake model: {cfg['provider']}, {cfg['tokens_per_s']:g} tokens/s, answers {cfg['answer_chars']} chars;"
        f" {cfg['cpus']} CPUs"
    )
    print(
        f"1 request  x{one['n']}: overhead median {one['overhead_median_s']:.3f} s, p95 {one['overhead_p95_s']:.3f} s"
        f" ({verdict(one['overhead_median_s'] <= TARGET_OVERHEAD_S)} <= {TARGET_OVERHEAD_S} s);"
        f" wall {one['wall_median_s']:.3f} s = model {one['model_median_s']:.3f} + steps {one['steps_median_s']:.3f}"
        " + overhead"
    )
    print(
        f"{many['n']} concurrent: overhead median {many['overhead_median_s']:.3f} s,"
        f" p95 {many['overhead_p95_s']:.3f} s;"
        f" makespan {many['makespan_s']:.3f} s = {report['concurrent_ratio']:.2f}x the single-request wall"
        f" ({verdict(report['concurrent_ratio'] <= TARGET_RATIO)} <= {TARGET_RATIO}x)"
    )
    for name, part in (("1 request", one), (f"{many['n']} concurrent", many)):
        cpu = part["cpu_s_per_request"]
        print(f"CPU s per request, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
    for name, p in report.get("profile", {}).items():
        print(
            f"history of the median {name} request (wall {p['wall_s']:.3f} s, overhead {p['overhead_s']:.3f} s):"
            f" {p['events']} events, {p['workflow_tasks']} workflow tasks,"
            f" {len(p['activities'])} activities, {p['local_activities']} local activities; first to last event"
            f" {p['history_span_s']:.3f} s\n  workflow tasks queued {p['workflow_task_schedule_to_start_s']:.3f} s,"
            f" ran {p['workflow_task_processing_s']:.3f} s {p['workflow_task_runs_s']} (local activities included);"
            f" activities queued {p['activity_schedule_to_start_s']:.3f} s, ran {p['activity_start_to_close_s']:.3f} s"
            f" {p['activities']}, {p['activity_outside_model_and_steps_s']:.3f} s of it outside model and steps"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=10, help="sequential requests measured (default 10)")
    parser.add_argument("--concurrent", type=int, default=20, help="requests started at once (default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="requests run first and not measured (default 1)")
    parser.add_argument("--tokens-per-s", type=float, default=100.0, help="the fake model's rate (default 100)")
    parser.add_argument("--provider", choices=["ollama", "openai"], default="ollama")
    parser.add_argument("--profile", action="store_true", help="also break one request's history down")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        show(report)


if __name__ == "__main__":
    main()
