"""The local model: a GGUF is recognised by its header, never by its file name, and a file whose
header names another model is never taken for the one asked for."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import pytest

from activities import local_model as lm
from models.config import data_dir, load_settings


def _gguf(path: Path, meta: dict[str, object], pad: int = 0) -> Path:
    """A GGUF header (version 3, no tensors) with string, uint32 and array values."""

    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b""
    for key, value in meta.items():
        body += s(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + s(value)
        elif isinstance(value, list):  # an array of strings, as tokenizer tables are
            body += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(s(v) for v in value)
        else:
            body += struct.pack("<II", 4, int(value))  # type: ignore[call-overload]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)) + body + b"\0" * pad)
    return path


QWEN_META: dict[str, object] = {
    "general.architecture": "qwen2",
    "tokenizer.ggml.tokens": ["a", "bb", "ccc"],  # skipped on the way to the keys asked for
    "general.name": "Qwen2.5 Coder 0.5B Instruct AWQ",
    "general.size_label": "0.5B",
    "general.file_type": 15,
}


def test_header_metadata_is_read_past_arrays(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "m.gguf", QWEN_META)
    meta = lm.gguf_metadata(path, ("general.name", "general.file_type"))
    assert meta == {"general.name": "Qwen2.5 Coder 0.5B Instruct AWQ", "general.file_type": 15}


def test_a_file_is_the_model_only_when_its_header_and_size_say_so(tmp_path: Path) -> None:
    model = lm.QWEN_05B
    path = _gguf(tmp_path / "m.gguf", QWEN_META)
    right_size = model.size_bytes - path.stat().st_size
    assert not lm.is_model(path, model), "a file of the wrong size is incomplete"
    path = _gguf(tmp_path / "m.gguf", QWEN_META, pad=right_size)
    assert lm.is_model(path, model)
    other = _gguf(tmp_path / "o.gguf", {**QWEN_META, "general.name": "Gemma 3 270m"}, pad=right_size)
    assert not lm.is_model(other, model)
    assert not lm.is_model(_gguf(tmp_path / "b.gguf", {**QWEN_META, "general.size_label": "1.5B"}), model)


def test_not_a_gguf_has_no_name(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"PK\x03\x04 not a model")
    assert lm.gguf_name(junk) == ""


def test_unknown_model_says_which_exist() -> None:
    with pytest.raises(lm.LocalModelError, match=r"qwen2\.5-coder-0\.5b"):
        lm.model_named("qwen-7b")


def test_threads_are_bounded() -> None:
    assert 1 <= lm.default_threads() <= lm.MAX_THREADS


@pytest.mark.llama
@pytest.mark.timeout(300)
def test_local_server_answers_a_chat(tmp_path: Path) -> None:
    try:
        lm.server_binary()
        # The machine's cache (.ci/llama.sh fills it): a copy per test would cost 491 MB and 15 s.
        path = lm.ensure_model(lm.DEFAULT_MODEL, data_dir(load_settings()))
    except lm.LocalModelError as exc:
        pytest.skip(str(exc))
    assert lm.gguf_name(path).startswith("Qwen2.5 Coder 0.5B Instruct")
    with lm.LocalServer(model_path=path, alias=lm.QWEN_05B.alias, log_path=tmp_path / "server.log") as server:
        reply = httpx.post(
            server.base_url + "/chat/completions",
            json={"model": lm.QWEN_05B.alias, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
