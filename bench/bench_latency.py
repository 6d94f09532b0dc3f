"""Token-to-screen latency and the history cost of the live event stream.

Everything real except the model: the Temporal dev server, a worker in its own process
(``python -m worker``), viewers in their own processes, and the fake model server of
``tests/fake_llm.py`` (in this process, on its own threads) streaming the answers of
``bench_pipeline.py`` at a fixed rate and recording when each chunk left it.

Latency: for every chunk the model server sent, the time from its send to the moment a viewer has
put it on screen: ``LinePrinter`` printed and flushed it (``iter orchestrate``'s line output, to a
pipe), or the full screen's output widget has it (``WatchApp`` run headless). Viewers match chunks
by character position within each model call and write ``time.time()`` records; the clocks are
the same machine's.

History: bytes and events of each request's history, without live events (a worker with
``ITER_LIVE_EVENTS=0``: the baseline, measured in the same run) and with them.

Viewers, each a process (``--viewer KIND``): ``line``, ``tui``, and ``contrib`` (the contrib
library's own ``subscribe()``, an update long-poll: the design iter did not take, measured for
comparison). Another viewer (the dashboard's browser) plugs in with ``--extra-viewer CMD``: CMD
gets ``{workflow}``, ``{out}`` and ``{address}`` (Temporal's) substituted and must append one JSON
line per piece of model text it shows, ``{"t": time.time(), "call": N, "chars": cumulative
characters of call N}`` (N counts model calls from 1, as ``ModelStarted`` events do). The browser:
``--extra-viewer ".venv/bin/python bench/latency_browser.py --viewer --address {address}
--workflow {workflow} --out {out}"``.

    .venv/bin/python bench/bench_latency.py                   # 3 requests per configuration
    .venv/bin/python bench/bench_latency.py --requests 5 --tokens-per-s 50 --json

Targets (issue 11): p95 <= 250 ms to the terminal and to the TUI; history with live events at
most 2x the history without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_pipeline import ANSWERS, CHARS_PER_TOKEN, project
from common import EXAMPLE, REPO, percentile, start_temporal  # first: it puts the repository (tests/) on the path
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from models.config import Settings
from models.request import RequestInput
from tests.fake_llm import FakeModel, FakeModelServer, Reply
from workflows.request import RequestWorkflow

TARGET_P95_S = 0.25
TARGET_HISTORY_RATIO = 2.0
VIEWER_START_S = 90.0  # a viewer process under load takes a while to import Textual and connect


# --- the model server: when each call's text left it ----------------------------------------------


class TimedModel(FakeModel):
    """Records each call's start, so sends split into calls (a request's calls run one by one);
    a call waits until the viewers are attached, so the first token is measured like the rest."""

    viewers_ready: threading.Event

    def reply_for(self, schema: str, body: dict[str, Any]) -> Reply:
        self.viewers_ready.wait(VIEWER_START_S * 3)
        with self.lock:
            self.sends.append((time.time(), "\0call\0"))
        return super().reply_for(schema, body)


def sends_by_call(sends: list[tuple[float, str]]) -> list[list[tuple[float, int]]]:
    """Per call: (send time, cumulative characters once that chunk was sent)."""
    calls: list[list[tuple[float, int]]] = []
    for t, piece in sends:
        if piece == "\0call\0":
            calls.append([])
            continue
        if calls:
            done = calls[-1][-1][1] if calls[-1] else 0
            calls[-1].append((t, done + len(piece)))
    return [c for c in calls if c]


def latencies(sent: list[list[tuple[float, int]]], seen: list[dict[str, Any]]) -> list[float]:
    """For every chunk sent, the time until a viewer showed the text up to its end."""
    by_call: dict[int, list[tuple[float, int]]] = {}
    for rec in seen:
        by_call.setdefault(int(rec["call"]), []).append((float(rec["t"]), int(rec["chars"])))
    out: list[float] = []
    for n, chunks in enumerate(sent, start=1):
        shown = sorted(by_call.get(n, []), key=lambda x: x[1])
        i = 0
        for t_sent, end in chunks:
            while i < len(shown) and shown[i][1] < end:
                i += 1
            if i < len(shown):
                out.append(max(shown[i][0] - t_sent, 0.0))
    return out


# --- viewers, each in its own process ---------------------------------------------------------------


class Recorder:
    def __init__(self, out: Path) -> None:
        self.fh = out.open("a")
        self.call = 0
        self.chars = 0

    def ready(self) -> None:
        self.fh.write(json.dumps({"ready": True}) + "\n")
        self.fh.flush()

    def model_started(self) -> None:
        self.call += 1
        self.chars = 0

    def shown(self, text: str) -> None:
        self.chars += len(text)
        self.fh.write(json.dumps({"t": time.time(), "call": self.call, "chars": self.chars}) + "\n")
        self.fh.flush()


async def viewer_line(client: Client, workflow_id: str, rec: Recorder) -> None:
    from cli.watch import LinePrinter, print_stream
    from models.events import ModelStarted

    printer = LinePrinter(show_tokens=True, show_phases=True)
    printer.on_token.append(rec.shown)
    original = printer.show

    def show(event: Any) -> None:
        if isinstance(event, ModelStarted):
            rec.model_started()
        original(event)

    printer.show = show  # type: ignore[method-assign]
    await first_read(client, workflow_id, rec)
    await print_stream(client, workflow_id, printer)


async def viewer_tui(client: Client, workflow_id: str, rec: Recorder) -> None:
    from cli.tui import WatchApp
    from models.events import ModelStarted

    app = WatchApp(client, workflow_id)
    app.token_listeners.append(rec.shown)
    original = app.model.apply

    def apply(event: Any, offset: int = -1) -> str:
        if isinstance(event, ModelStarted):
            rec.model_started()
        return original(event, offset)

    app.model.apply = apply  # type: ignore[method-assign]
    async with app.run_test(headless=True, size=(140, 40)) as pilot:
        await first_read(client, workflow_id, rec)
        while app.model.outcome == "":
            await pilot.pause(0.2)
        await pilot.pause(0.5)


async def viewer_contrib(client: Client, workflow_id: str, rec: Recorder) -> None:
    """The contrib library's subscribe(): an update per poll (each lands in history)."""
    from temporalio.common import RawValue
    from temporalio.contrib.workflow_streams import WorkflowStreamClient

    from models.events import Finished, ModelStarted, Tokens, parse_event

    stream = WorkflowStreamClient.create(client, workflow_id)
    await first_read(client, workflow_id, rec)
    async for item in stream.subscribe(result_type=RawValue):
        event = parse_event(item.data.payload.data)
        if isinstance(event, ModelStarted):
            rec.model_started()
        elif isinstance(event, Tokens):
            sys.stdout.write(event.text)
            sys.stdout.flush()
            rec.shown(event.text)
        elif isinstance(event, Finished):
            return


async def first_read(client: Client, workflow_id: str, rec: Recorder) -> None:
    from temporal.events import end_offset

    await end_offset(client, workflow_id)  # the stream answers: the viewer is attached
    rec.ready()


VIEWERS = {"line": viewer_line, "tui": viewer_tui, "contrib": viewer_contrib}


def run_viewer(kind: str, address: str, workflow_id: str, out: str) -> None:
    async def go() -> None:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        await VIEWERS[kind](client, workflow_id, Recorder(Path(out)))

    asyncio.run(go())


# --- the benchmark --------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    viewers: list[str]
    live: bool = True
    history_bytes: list[int] = field(default_factory=list)
    history_events: list[int] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)


def start_worker(settings: Settings, data: Path, live: bool, log: Path, coalesce_ms: int) -> subprocess.Popen[bytes]:
    """A worker takes its model and executor from its own settings (its environment), not the request's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update(
        {
            "ITER_TEMPORAL_ADDRESS": settings.temporal.address,
            "ITER_TASK_QUEUE": settings.temporal.task_queue,
            "ITER_DATA_DIR": str(data),
            "ITER_LLM_PROVIDER": settings.llm.provider,
            "ITER_LLM_BASE_URL": settings.llm.base_url,
            "ITER_MODEL": settings.llm.model,
            "ITER_REVIEWER_MODEL": settings.llm.reviewer_model,
            "ITER_EXECUTOR": "local",
        }
    )
    env["ITER_LIVE_COALESCE_MS"] = str(coalesce_ms)
    if not live:
        env["ITER_LIVE_EVENTS"] = "0"
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def start_viewer(kind: str, address: str, workflow_id: str, out: Path, log: Path) -> subprocess.Popen[bytes]:
    if kind.startswith("extra:"):
        cmd = kind.removeprefix("extra:").format(
            workflow=shlex.quote(workflow_id), out=shlex.quote(str(out)), address=shlex.quote(address)
        )
        return subprocess.Popen(cmd, shell=True, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    argv = [sys.executable, __file__, "--viewer", kind, "--address", address, "--workflow", workflow_id]
    return subprocess.Popen([*argv, "--out", str(out)], cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def wait_ready(outs: list[Path]) -> None:
    """Each viewer writes {"ready": true} once it reads the stream."""
    deadline = time.monotonic() + VIEWER_START_S
    while not all('"ready"' in out.read_text() for out in outs):
        if time.monotonic() > deadline:
            print("a viewer did not get ready in time; measuring anyway", file=sys.stderr)
            return
        await asyncio.sleep(0.1)


async def history_size(client: Client, workflow_id: str) -> tuple[int, int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(e.ByteSize() for e in history.events), len(history.events)


async def one_request(client: Client, settings: Settings, root: Path, run: Run, fake: TimedModel, address: str) -> None:
    workflow_id = f"iter-calc-req_01-lat-{uuid.uuid4().hex[:8]}"
    workspace = root / workflow_id
    shutil.copytree(EXAMPLE, workspace)
    handle = await client.start_workflow(
        RequestWorkflow.run,
        RequestInput(project=project(), request_id="req_01", workspace=str(workspace), settings=settings),
        id=workflow_id,
        task_queue=settings.temporal.task_queue,
    )
    with fake.lock:
        fake.sends.clear()
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for kind in run.viewers:
        out = root / f"{workflow_id}.{kind.split(':')[0]}.jsonl"
        out.touch()
        procs[kind] = (start_viewer(kind, address, workflow_id, out, root / f"{workflow_id}.{kind[:8]}.log"), out)
    await wait_ready([out for _, out in procs.values()])
    fake.viewers_ready.set()
    result = await handle.result()
    fake.viewers_ready.clear()
    if result.state.outcome != "passed":
        raise RuntimeError(f"{workflow_id} ended {result.state.outcome}: {result.state.error}")
    for kind, (proc, _) in procs.items():
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"viewer {kind} did not end; killed", file=sys.stderr)
    sent = sends_by_call(list(fake.sends))
    for kind, (_, out) in procs.items():
        seen = [json.loads(line) for line in out.read_text().splitlines() if '"chars"' in line]
        run.latency.setdefault(kind.split(":")[0], []).extend(latencies(sent, seen))
    size, events = await history_size(client, workflow_id)
    run.history_bytes.append(size)
    run.history_events.append(events)


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    env = await start_temporal()
    root = Path(tempfile.mkdtemp(prefix="iter-bench-latency-"))
    fake = TimedModel(token_delay_s=1.0 / args.tokens_per_s, chunk_chars=CHARS_PER_TOKEN, record_sends=True)
    fake.viewers_ready = threading.Event()
    for schema, answer in ANSWERS.items():
        fake.default(schema, answer)
    address = env.client.service_client.config.target_host
    extra = [f"extra:{cmd}" for cmd in args.extra_viewer]
    runs = [
        Run("baseline: no live events", [], live=False),
        Run("live events, line + TUI viewers", ["line", "tui", *extra]),
        *([] if args.skip_contrib else [Run("live events, contrib subscribe() viewer", ["contrib"])]),
    ]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with FakeModelServer(fake, provider="ollama") as server:
            assert server.httpd is not None
            server.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
            for run in runs:
                if not run.viewers:
                    fake.viewers_ready.set()  # nobody to wait for
                settings = Settings.model_validate(
                    {
                        "llm": {
                            "provider": "ollama",
                            "base_url": server.base_url,
                            "model": "coder",
                            "reviewer_model": "reviewer",
                        },
                        "executor": {"backend": "local", "step_timeout_s": 60},
                        "temporal": {"address": address, "task_queue": f"iter-lat-{uuid.uuid4().hex[:8]}"},
                        "data_dir": str(root / "data"),
                    }
                )
                worker = start_worker(settings, root / "data", run.live, root / "w.log", args.coalesce_ms)
                workers.append(worker)
                for n in range(args.requests):
                    await one_request(env.client, settings, root, run, fake, address)
                    print(f"{run.label}: request {n + 1}/{args.requests} done", file=sys.stderr)
                worker.terminate()
                worker.wait(30)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        await env.shutdown()
    base = statistics.mean(runs[0].history_bytes)
    report: dict[str, Any] = {
        "tokens_per_s": args.tokens_per_s,
        "requests": args.requests,
        "coalesce_ms": args.coalesce_ms,
        "load_average": os.getloadavg()[0],
        "runs": [],
    }
    for run in runs:
        mean_bytes = statistics.mean(run.history_bytes)
        report["runs"].append(
            {
                "label": run.label,
                "history_bytes_per_request": round(mean_bytes),
                "history_events_per_request": round(statistics.mean(run.history_events), 1),
                "history_ratio_to_baseline": round(mean_bytes / base, 2),
                "latency": {k: stats(v) for k, v in run.latency.items()},
            }
        )
    shutil.rmtree(root, ignore_errors=True)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nfake model at {report['tokens_per_s']} tokens/s, {report['requests']} request(s) per configuration, "
        f"live events coalesced every {report['coalesce_ms']} ms, load average {report['load_average']:.1f}\n"
    )
    print(f"{'configuration':<42} {'history/request':>18} {'ratio':>6}   latency p50 / p95 (n)")
    for run in report["runs"]:
        lat = "; ".join(
            f"{k} {v['p50_ms']:.0f} / {v['p95_ms']:.0f} ms ({v['n']})" for k, v in run["latency"].items() if v["n"]
        )
        hist = f"{run['history_bytes_per_request']:,} B {run['history_events_per_request']:.0f} ev"
        print(f"{run['label']:<42} {hist:>18} {run['history_ratio_to_baseline']:>5.2f}x   {lat or '-'}")
    live = report["runs"][1]
    ok_hist = live["history_ratio_to_baseline"] <= TARGET_HISTORY_RATIO
    print(
        f"\nhistory with live events: {live['history_ratio_to_baseline']:.2f}x the baseline "
        f"(target <= {TARGET_HISTORY_RATIO}x: {'met' if ok_hist else 'NOT met'})"
    )
    for kind in ("line", "tui"):
        v = live["latency"].get(kind, {"n": 0})
        if v["n"]:
            met = v["p95_ms"] <= TARGET_P95_S * 1000
            print(
                f"{kind} p95 {v['p95_ms']:.0f} ms "
                f"(target <= {TARGET_P95_S * 1000:.0f} ms: {'met' if met else 'NOT met'})"
            )
    if len(report["runs"]) < 3:
        return
    contrib = report["runs"][2]["latency"].get("contrib", {"n": 0})
    line = live["latency"].get("line", {"n": 0})
    if contrib["n"] and line["n"]:
        print(
            f"query-polling reader vs contrib subscribe(): p50 {line['p50_ms'] / contrib['p50_ms']:.2f}x, "
            f"history {live['history_ratio_to_baseline']:.2f}x vs {report['runs'][2]['history_ratio_to_baseline']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3, help="requests per configuration")
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="the fake model's rate")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--coalesce-ms", type=int, default=100, help="the worker's ITER_LIVE_COALESCE_MS")
    parser.add_argument("--skip-contrib", action="store_true", help="do not measure the contrib subscribe() viewer")
    parser.add_argument(
        "--extra-viewer", action="append", default=[], help="a viewer command ({workflow}, {out}, {address})"
    )
    parser.add_argument("--viewer", choices=sorted(VIEWERS), help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--workflow", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer:
        run_viewer(args.viewer, args.address, args.workflow, args.out)
        return
    report = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
