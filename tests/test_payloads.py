"""Bad model output stays bounded: answers are capped before they reach history, and large values
travel by reference through the payload store (the claim check), so no payload comes near
Temporal's 2 MB limit and no retry loop comes from a payload's size."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from models.config import PayloadSettings, Settings
from temporal.payloads import ClaimCheckCodec, LocalStore, PayloadStoreError, S3Store, resolve, sigv4_headers
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start

BIG = 300_000


def payload(size: int) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * size + b'"')


# --- the codec and its stores ---------------------------------------------------------------------


async def test_a_large_payload_goes_by_reference_and_comes_back_whole(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(LocalStore(tmp_path / "payloads"), threshold_bytes=100_000)
    small, big = payload(10), payload(BIG)

    encoded = await codec.encode([small, big])

    assert encoded[0] == small  # small values stay inline
    assert encoded[1].ByteSize() < 1_000 and encoded[1].metadata["encoding"] == b"iter/claim-check"
    assert await codec.decode(encoded) == [small, big]
    assert resolve(encoded) == [small, big]  # the same, for code that reads raw history
    assert len(list((tmp_path / "payloads").rglob("*"))) == 2  # one folder, one file
    await codec.encode([big])
    assert len(list((tmp_path / "payloads").rglob("*"))) == 2  # content-addressed: stored once


async def test_an_altered_or_missing_stored_payload_is_a_clear_error(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(LocalStore(tmp_path / "payloads"), threshold_bytes=100_000)
    [ref] = await codec.encode([payload(BIG)])
    stored = Path(json.loads(ref.data)["path"])
    stored.write_bytes(payload(BIG + 1).SerializeToString())
    with pytest.raises(PayloadStoreError, match="does not match its digest"):
        await codec.decode([ref])
    stored.unlink()
    with pytest.raises(PayloadStoreError, match="is missing from"):
        await codec.decode([ref])
    forged = Payload(
        metadata={"encoding": b"iter/claim-check"},
        data=json.dumps({**json.loads(ref.data), "path": "/etc/passwd"}).encode(),
    )
    with pytest.raises(PayloadStoreError, match="not a payload reference"):
        await codec.decode([forged])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3-compatible server (a real HTTP server on loopback); skipped where moto is missing."""
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("moto[server] is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "moto_server did not start in 30 s"
                time.sleep(0.2)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_s3_store_puts_and_gets_through_an_s3_compatible_server(s3_server: str) -> None:
    bucket = f"{s3_server}/iter-test"
    made = httpx.put(bucket, headers=sigv4_headers("PUT", bucket, "us-east-1", b""))
    assert made.status_code == 200, made.text
    settings = PayloadSettings(store="s3", s3_endpoint=s3_server, s3_bucket="iter-test")
    codec = ClaimCheckCodec(S3Store(settings), threshold_bytes=100_000)

    [ref] = await codec.encode([payload(BIG)])

    assert json.loads(ref.data)["object"].startswith("iter-payloads/")
    assert await codec.decode([ref]) == [payload(BIG)]
    listing = httpx.get(bucket, headers=sigv4_headers("GET", bucket, "us-east-1", b"")).text
    assert json.loads(ref.data)["key"] in listing  # it really is in the bucket


def test_the_s3_store_without_credentials_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    store = S3Store(PayloadSettings(store="s3", s3_endpoint="http://127.0.0.1:9", s3_bucket="b"))
    with pytest.raises(PayloadStoreError, match="needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        store.put("0" * 64, b"x")


# --- the cases, end to end ----------------------------------------------------------------


async def _largest_event(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return max(event.ByteSize() for event in history.events)


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    ("answer", "why"),
    [
        pytest.param(
            json.dumps(r.plan(r.write("s1", "big.txt", r.varied(2_000_000)), r.verify("s2"))),
            "the answer was cut off at 200000 bytes",
            id="2MB-valid-plan",
        ),
        pytest.param(
            "{" + '"steps": [' * 1 + r.varied(1_200_000), "the answer was cut off at 200000 bytes", id="1.2MB-invalid"
        ),
    ],
)
async def test_a_huge_model_answer_ends_the_request_clearly_with_history_bounded(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, answer: str, why: str
) -> None:
    fake.chunk_chars = 20_000
    fake.default("plan", answer)
    started = time.monotonic()
    handle = await start(client, settings, workspace)

    state = (await handle.result()).state
    took = time.monotonic() - started

    assert state.outcome == "failed", state
    assert state.error.startswith(
        f"the coder's plan stayed invalid after {settings.bounds.max_parse_repairs + 1} answers"
    )
    assert why in state.error
    assert len(fake.calls("plan")) == settings.bounds.max_parse_repairs + 1  # no retry loop
    largest = await _largest_event(client, handle.id)
    print(f"{len(answer)} B answer: failed in {took:.1f} s; largest history event {largest} B")
    assert largest < settings.payloads.threshold_bytes + 20_000, largest


async def test_a_large_file_content_travels_by_reference(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    content = "".join(f"line {i:06d} of a generated table\n" for i in range(5_000))  # ~150 KB, under the answer cap
    fake.chunk_chars = 20_000
    # s2 prints the table: a 64 KB output (the executor's cap), which the reviewer reads head and tail of.
    fake.default(
        "plan",
        r.plan(r.write("s1", "table.txt", content), r.run("s2", "cat table.txt"), r.verify("s3", "wc -l table.txt")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    handle = await start(client, settings, workspace)
    state = (await handle.result()).state

    assert state.outcome == "passed", state.error
    assert (workspace / "table.txt").read_text() == content
    # The reviewers read the file's head and tail (their context window is 16k tokens); the whole
    # file is what ran, and what the deterministic rules read.
    for review in ("safety_review", "post_review"):
        prompt = fake.calls(review)[0]["messages"][-1]["content"]
        assert "head and tail of 165,000 characters" in prompt and len(prompt) < 40_000, (review, len(prompt))
    largest = await _largest_event(client, handle.id)
    assert largest < settings.payloads.threshold_bytes, largest  # the plan, the state: all by reference
