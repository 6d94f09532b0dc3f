"""Token-to-browser latency: from the model server sending a token to that token being in the
dashboard's page in a real headless Chromium, p50 and p95.

Every part is its own process, as on a real deployment: the Temporal dev server, the worker
(``python -m worker``), the dashboard (``iter dashboard``) and Chromium (Debian's, driven by
Playwright); this process runs the fake model server (tests/fake_llm.py, which records when each
chunk left it) and starts the request. The coder's answer is a valid plan whose summary is a run of
numbered markers, one chunk each, sent at a fixed pace; a MutationObserver in the page notes when
each marker appears in the live panel's text. Both clocks are this machine's wall clock.

    .venv/bin/python bench/latency_browser.py                 # 150 tokens, 20 ms apart
    .venv/bin/python bench/latency_browser.py --tokens 300 --delay 0.01 --json

As a viewer of bench_latency.py (which measures the terminal and the TUI the same way, in one
table): ``--viewer --address ADDR --workflow ID --out FILE`` opens the dashboard on that workflow
in Chromium and appends bench_latency's records to FILE: ``{"ready": true}`` once the page's feed
answers, then ``{"t", "call", "chars"}`` after the page has put each piece of model text into the
DOM (``call`` counts model_start events from 1; ``chars`` is cumulative within the call):

    .venv/bin/python bench/bench_latency.py --extra-viewer \
      ".venv/bin/python bench/latency_browser.py --viewer --address {address} --workflow {workflow} --out {out}"

Target (issue 11): p95 <= 250 ms."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from common import EXAMPLE, REPO, percentile, start_temporal  # first: it puts the repository (tests/) on the path
from temporalio.client import Client

from models.config import Settings
from models.project import FeatureRequest, Project
from models.request import RequestInput
from tests import browser
from tests.dashboard import dashboard_env, running_dashboard
from tests.fake_llm import FakeModel, FakeModelServer, Reply
from workflows.request import RequestWorkflow

TARGET_P95_MS = 250.0
MARKER = "<{:05d}>"  # 7 characters: one chunk each
MARKER_RE = re.compile(r"<(\d{5})>")

# In the page: when each marker first appears in the live panel (DOM time, before paint).
OBSERVER = """
window.__marks = {};
new MutationObserver(() => {
  const live = document.getElementById("live");
  if (!live) return;
  const now = Date.now();
  const text = live.textContent;
  const re = /<(\\d{5})>/g;
  let m;
  while ((m = re.exec(text)) !== null) if (!(m[1] in window.__marks)) window.__marks[m[1]] = now;
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


# In the page, for bench_latency.py: wraps EventSource so that each "live" listener of the page
# runs first (the text is in the DOM), then the record is made.
RECORDER = """
(() => {
  let call = 0, chars = 0;
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(...args) {
      super(...args);
      super.addEventListener("state", () => window.__iterRecord({ ready: true }), { once: true });
      super.addEventListener("end", () => window.__iterRecord({ end: true }));
    }
    addEventListener(type, listener, options) {
      if (type !== "live") return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => {
        listener(event);
        const data = JSON.parse(event.data);
        if (data.kind === "model_start") { call += 1; chars = 0; }
        else if (data.kind === "tokens") {
          chars += data.text.length;
          window.__iterRecord({ t: Date.now() / 1000, call, chars });
        }
      }, options);
    }
  };
})();
"""
VIEWER_MAX_S = 900.0


async def view(address: str, workflow_id: str, out: Path) -> None:
    """bench_latency.py's browser viewer: a dashboard of its own and Chromium, records to ``out``."""
    from playwright.async_api import async_playwright

    ended = asyncio.Event()
    env = dashboard_env(address, tempfile.mkdtemp(prefix="iter-viewer-"))
    with out.open("a") as fh, running_dashboard(env) as dash:

        def record(item: dict[str, object]) -> None:
            if item.get("end"):
                ended.set()
                return
            fh.write(json.dumps(item) + "\n")
            fh.flush()

        async with async_playwright() as pw:
            chromium = await pw.chromium.launch(
                executable_path=browser.executable(), args=browser.CHROMIUM_ARGS, headless=True
            )
            page = await chromium.new_page()
            await page.expose_function("__iterRecord", record)
            await page.add_init_script(RECORDER)
            await page.goto(f"{dash.base}/#{workflow_id}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), VIEWER_MAX_S)
            await chromium.close()


@dataclass
class Column:
    """One viewer's latencies, in milliseconds."""

    name: str
    tokens: int
    seen: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, name: str, tokens: int, latencies: list[float]) -> Column:
        if not latencies:
            return cls(name, tokens, 0, float("nan"), float("nan"), float("nan"))
        return cls(
            name, tokens, len(latencies), statistics.median(latencies), percentile(latencies, 0.95), max(latencies)
        )

    def line(self) -> str:
        return (
            f"{self.name:>8}: {self.seen}/{self.tokens} tokens, p50 {self.p50_ms:.0f} ms, "
            f"p95 {self.p95_ms:.0f} ms, max {self.max_ms:.0f} ms"
        )


@dataclass
class Result:
    delay_s: float
    load_1m: float  # the machine's load average when the run ended: latency follows it
    browser: Column
    stream: Column  # the same events read by this process straight from the stream: the baseline

    def lines(self) -> list[str]:
        verdict = "PASS" if self.browser.p95_ms <= TARGET_P95_MS else "FAIL"
        return [
            self.browser.line(),
            self.stream.line(),
            f"one token every {self.delay_s * 1000:.0f} ms; load average {self.load_1m:.1f}; "
            f"browser target p95 <= {TARGET_P95_MS:.0f} ms: {verdict}",
        ]


def marker_plan(tokens: int) -> str:
    """A valid plan whose summary is ``tokens`` markers; the rest is a single cheap step."""
    summary = "".join(MARKER.format(i) for i in range(tokens))
    return json.dumps(
        {"summary": summary, "steps": [{"id": "s1", "type": "verify", "command": "true"}]}, separators=(",", ":")
    )


def send_times(fake: FakeModel, text: str) -> dict[str, float]:
    """When the chunk that completed each marker left the model server."""
    out: dict[str, float] = {}
    position = 0
    ends = {m.end(): m.group(1) for m in MARKER_RE.finditer(text)}
    for sent_at, piece in fake.sends:
        start, position = position, position + len(piece)
        for end, number in ends.items():
            if start < end <= position:
                out[number] = sent_at
    return out


async def measure(client: Client, settings: Settings, fake: FakeModel, dashboard_base: str, tokens: int) -> Result:
    """One request whose coder streams ``tokens`` markers; the page is open before it starts."""
    from playwright.async_api import async_playwright, expect

    text = marker_plan(tokens)
    fake.chunk_chars = len(MARKER.format(0))
    fake.record_sends = True
    fake.sends.clear()
    fake.script("plan", Reply(text))
    workspace = Path(tempfile.mkdtemp(prefix="iter-latency-"))
    shutil.copytree(EXAMPLE, workspace, dirs_exist_ok=True)
    project = Project(
        name="latency", stack="python", requests=[FeatureRequest(id="req_01", description="latency", criteria=[])]
    )
    wid = f"iter-latency-req_01-{uuid.uuid4().hex[:6]}"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=browser.executable(), args=browser.CHROMIUM_ARGS, headless=True
        )
        page = await chromium.new_page()
        await page.add_init_script(OBSERVER)
        handle = await client.start_workflow(
            RequestWorkflow.run,
            RequestInput(project=project, request_id="req_01", workspace=str(workspace), settings=settings),
            id=wid,
            task_queue=settings.temporal.task_queue,
            start_signal="pause",  # held before its first phase until the page listens
        )
        await page.goto(f"{dashboard_base}/#{wid}")
        # A locator, not wait_for_function: the dashboard's CSP forbids the eval that one needs.
        await expect(page.locator("#wf-status")).to_have_text("running", timeout=60_000)
        direct: dict[str, float] = {}
        reader = asyncio.create_task(read_stream(client, wid, direct, tokens))
        await handle.signal(RequestWorkflow.resume)
        deadline = time.monotonic() + 60 + tokens * fake.token_delay_s * 3
        marks: dict[str, float] = {}
        while time.monotonic() < deadline:
            marks = await page.evaluate("window.__marks")
            if len(marks) >= tokens and len(direct) >= tokens:
                break
            await asyncio.sleep(0.25)
        reader.cancel()
        await chromium.close()
    await handle.cancel()
    shutil.rmtree(workspace, ignore_errors=True)
    sent = send_times(fake, text)
    if not marks:
        raise SystemExit(f"no token reached the page within the time allowed ({len(fake.sends)} chunks sent)")
    return Result(
        delay_s=fake.token_delay_s,
        load_1m=os.getloadavg()[0],
        browser=Column.of("browser", tokens, [marks[n] - sent[n] * 1000 for n in marks if n in sent]),
        stream=Column.of("stream", tokens, [direct[n] - sent[n] * 1000 for n in direct if n in sent]),
    )


async def read_stream(client: Client, workflow_id: str, marks: dict[str, float], tokens: int) -> None:
    """The baseline: when each marker arrives through temporal/events.subscribe in this process."""
    from models.events import Tokens
    from temporal.events import subscribe

    text = ""
    async for item in subscribe(client, workflow_id):
        if isinstance(item.event, Tokens):
            text += item.event.text
            now = time.time() * 1000
            for m in MARKER_RE.finditer(text):
                marks.setdefault(m.group(1), now)
            if len(marks) >= tokens:
                return


async def run(tokens: int, delay: float) -> Result:
    env = await start_temporal()
    tmp = tempfile.mkdtemp(prefix="iter-latency-data-")
    fake = FakeModel(token_delay_s=delay)
    fake.default("safety_review", Reply(status=503, error_body="the benchmark ends at the review"))
    address = env.client.service_client.config.target_host
    queue = f"iter-latency-{uuid.uuid4().hex[:6]}"
    try:
        with FakeModelServer(fake) as server:
            settings = Settings.model_validate(
                {
                    "llm": {"provider": "ollama", "base_url": server.base_url, "model": "coder"},
                    "executor": {"backend": "local"},
                    "temporal": {"address": address, "task_queue": queue},
                    "data_dir": f"{tmp}/data",
                }
            )
            worker_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("ITER_")},
                "ITER_TEMPORAL_ADDRESS": address,
                "ITER_TASK_QUEUE": queue,
                "ITER_DATA_DIR": f"{tmp}/data",
                # The worker owns its model and executor settings (models/ownership.py): its own env.
                "ITER_LLM_PROVIDER": "ollama",
                "ITER_LLM_BASE_URL": server.base_url,
                "ITER_MODEL": "coder",
                "ITER_EXECUTOR": "local",
            }
            worker = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=REPO,
                env=worker_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                with running_dashboard(dashboard_env(address, tmp)) as dash:
                    return await measure(env.client, settings, fake, dash.base, tokens)
            finally:
                worker.terminate()
                worker.wait(30)
    finally:
        await env.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between tokens")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--viewer", action="store_true", help="be bench_latency.py's browser viewer")
    parser.add_argument("--address", default=os.environ.get("ITER_TEMPORAL_ADDRESS", ""))
    parser.add_argument("--workflow", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if problem := browser.missing():
        raise SystemExit(problem)
    if args.viewer:
        if not (args.address and args.workflow and args.out):
            raise SystemExit("--viewer needs --address, --workflow and --out")
        asyncio.run(view(args.address, args.workflow, Path(args.out)))
        return
    result = asyncio.run(run(args.tokens, args.delay))
    print(json.dumps(dataclasses.asdict(result)) if args.json else "\n".join(result.lines()))


if __name__ == "__main__":
    main()
