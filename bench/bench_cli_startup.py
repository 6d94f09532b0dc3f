"""How long the ``iter`` command takes before it does anything, against ``python -c pass`` measured
in the same run (the ratio is what survives a loaded machine; the seconds are what a user feels).

    .venv/bin/python bench/bench_cli_startup.py            # 15 rounds, medians
    .venv/bin/python bench/bench_cli_startup.py --rounds 30 --json

Each round runs every command once, interleaved, so load changes hit all of them alike. With
``--status`` it also times a whole ``iter status`` listing against a Temporal dev server it starts
(that one includes connecting and querying, so it is reported, not held to the 0.2 s target)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ITER = str(BIN / "iter")
CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "iter --help": [ITER, "--help"],
    "iter status --help": [ITER, "status", "--help"],
    "iter version": [ITER, "version"],
}
TARGET_S = 0.2


def _time(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return took


def _dev_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    env["ITER_TEMPORAL_ADDRESS"] = address
    subprocess.run([ITER, "status"], env=env, capture_output=True, timeout=120)  # warm: search attributes
    return proc, address


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--status", action="store_true", help="also time a whole `iter status` listing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="iter-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update({"HOME": workdir, "XDG_CONFIG_HOME": f"{workdir}/config", "ITER_DATA_DIR": f"{workdir}/data"})
    cases = dict(CASES)
    server = None
    if args.status:
        server, _ = _dev_server(env)
        cases["iter status (listing)"] = [ITER, "status"]
    try:
        for cmd in cases.values():  # warm the file cache and .pyc files
            _time(cmd, env, workdir)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, cmd in cases.items():
                samples[name].append(_time(cmd, env, workdir))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    base = statistics.median(samples["python -c pass"])
    load = os.getloadavg()[0]
    rows = []
    for name, values in samples.items():
        med = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        rows.append({"command": name, "median_s": round(med, 4), "p90_s": round(p90, 4), "ratio": round(med / base, 2)})
    if args.json:
        print(json.dumps({"rounds": args.rounds, "load_avg_1m": load, "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    print(f"{args.rounds} rounds, load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'command':<24} {'median':>8} {'p90':>8} {'x pass':>7}")
    for row in rows:
        print(f"{row['command']:<24} {row['median_s']:>7.3f}s {row['p90_s']:>7.3f}s {row['ratio']:>6.2f}x")
    print(f"target: iter --help and iter status start in <= {TARGET_S} s")


if __name__ == "__main__":
    main()
