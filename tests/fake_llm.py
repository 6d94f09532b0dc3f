"""A local model server that speaks the exact wire protocols iter uses: Ollama's ``/api/chat``
(NDJSON) and the OpenAI-compatible ``/v1/chat/completions`` (SSE). Tests script its answers by
the schema a request asks for; it records every request it receives.

It stands in for the network edge only: iter's own code runs unchanged against it."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 answers an error; ``break_after`` drops the
    connection after that many chunks; ``stall_after`` goes silent there for ``stall_s``;
    ``truncate`` ends with the length limit."""

    body: Any = None
    status: int = 200
    truncate: bool = False
    break_after: int | None = None
    error_body: str = ""
    stall_after: int | None = None  # send this many chunks, then nothing for ``stall_s``
    stall_s: float = 0.0
    delay_s: float | None = None  # this answer's pause before each chunk (default: the model's)

    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


@dataclass
class FakeModel:
    models: tuple[str, ...] = ("coder", "reviewer")
    token_delay_s: float = 0.0
    context_length: int = 0  # what /props (llama.cpp) and /api/show (Ollama) report; 0: no such endpoint
    chunk_chars: int = 8
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    defaults: dict[str, Reply] = field(default_factory=dict)
    responders: dict[str, Callable[[dict[str, Any]], Reply | dict[str, Any] | str]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # When each content chunk left the server (time.time(), text): latency benchmarks match them
    # to when the text reached a viewer. Off by default: tests need no clock.
    record_sends: bool = False
    sends: list[tuple[float, str]] = field(default_factory=list)
    # What the plans it answered wrote into each file step, by request and step id: asked for a file's code
    # after its plan (models/writing.py), the fake writes what its plan said, as a model that
    # follows its own plan does. A test that wants another answer scripts "file".
    planned: dict[tuple[str, str], str] = field(default_factory=dict)  # (conversation, step id) -> content

    def sent(self, piece: str) -> None:
        if self.record_sends:
            with self.lock:
                self.sends.append((time.time(), piece))

    def script(self, schema: str, *replies: Reply | dict[str, Any] | str) -> None:
        with self.lock:
            self.scripts.setdefault(schema, []).extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def default(self, schema: str, reply: Reply | dict[str, Any] | str) -> None:
        self.defaults[schema] = reply if isinstance(reply, Reply) else Reply(reply)

    def respond(self, schema: str, answer: Callable[[dict[str, Any]], Reply | dict[str, Any] | str]) -> None:
        """Answer every call of ``schema`` with ``answer(request body)``: one fake, many requests."""
        self.responders[schema] = answer

    def reply_for(self, schema: str, body: dict[str, Any]) -> Reply:
        answer = self.responders.get(schema)
        if answer is not None:
            got = answer(body)
            reply = got if isinstance(got, Reply) else Reply(got)
        elif schema == FILE and not (self.scripts.get(FILE) or FILE in self.defaults):
            reply = Reply(self.planned.get((_conversation(body), _asked_step(body)), ""))
        else:
            reply = self.next_reply(schema)
        if schema in ("plan", "session_plan") and reply.status == 200:
            self._remember(_conversation(body), reply)
        return reply

    def _remember(self, conversation: str, reply: Reply) -> None:
        try:
            plan = json.loads(reply.text())
        except ValueError:
            return
        for step in plan.get("steps", []) if isinstance(plan, dict) else []:
            if isinstance(step, dict) and step.get("type") == "file" and isinstance(step.get("content"), str):
                with self.lock:
                    self.planned[(conversation, str(step.get("id")))] = step["content"]

    def next_reply(self, schema: str) -> Reply:
        with self.lock:
            queue = self.scripts.get(schema) or []
            if queue:
                return queue.pop(0)
        return self.defaults.get(schema) or Reply(status=500, error_body=f"fake: nothing scripted for {schema}")

    def calls(self, schema: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.received if schema is None or r["_schema"] == schema]


FILE = "file"  # a call with no schema: a file's code, after its plan


def _schema_name(body: dict[str, Any]) -> str:
    if "format" in body:  # Ollama: the JSON schema itself; iter titles its contracts
        return str(body["format"].get("title", "?"))
    if "response_format" not in body:
        return FILE
    return str(body.get("response_format", {}).get("json_schema", {}).get("name", "?"))


def _conversation(body: dict[str, Any]) -> str:
    """Which request a call belongs to: its first two messages (the system prompt and the request),
    which a plan and the write calls after it share. Requests running at once stay apart."""
    return json.dumps((body.get("messages") or [])[:2], sort_keys=True)


def _asked_step(body: dict[str, Any]) -> str:
    """The file step a write call asks for: "Step ID: now write ..." in its last message."""
    text = str((body.get("messages") or [{}])[-1].get("content", ""))
    match = re.search(r"Step ([A-Za-z0-9_-]+): now write", text)
    return match.group(1) if match else ""


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeModel

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/props" and self.fake.context_length:
            self._send_json(200, {"default_generation_settings": {"n_ctx": self.fake.context_length}})
        elif self.path in ("/api/tags", "/v1/models"):
            self._send_json(
                200, {"models": [{"name": m} for m in self.fake.models], "data": [{"id": m} for m in self.fake.models]}
            )
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.path == "/api/show":  # model metadata, not a chat: not recorded as a call
            info = {"fake.context_length": self.fake.context_length} if self.fake.context_length else {}
            self._send_json(200 if info else 404, {"model_info": info} if info else {"error": "not found"})
            return
        schema = _schema_name(body)
        openai = self.path.endswith("/chat/completions")
        body["_schema"], body["_path"], body["_auth"] = schema, self.path, self.headers.get("Authorization", "")
        with self.fake.lock:
            self.fake.received.append(body)
        if body.get("model") not in self.fake.models:
            msg = (
                f"model '{body.get('model')}' not found"
                if not openai
                else f"The model `{body.get('model')}` does not exist"
            )
            self._send_json(
                404, {"error": msg} if not openai else {"error": {"message": msg, "code": "model_not_found"}}
            )
            return
        reply = self.fake.reply_for(schema, body)
        if reply.status != 200:
            self._send_json(reply.status, {"error": reply.error_body or f"fake error {reply.status}"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if openai else "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            (self._stream_openai if openai else self._stream_ollama)(body, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream (a killed worker)

    def _pieces(self, reply: Reply) -> list[str]:
        return _chunks(reply.text(), self.fake.chunk_chars)

    def _paced(self, n: int, reply: Reply) -> bool:
        """Pace one chunk; False when the script says to drop the connection here."""
        if reply.break_after is not None and n >= reply.break_after:
            self.wfile.flush()
            # shutdown, not close: the handler's file objects keep the socket open otherwise.
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return False
        if reply.stall_after is not None and n == reply.stall_after:
            time.sleep(reply.stall_s)
        delay = self.fake.token_delay_s if reply.delay_s is None else reply.delay_s
        if delay:
            time.sleep(delay)
        return True

    def _stream_ollama(self, body: dict[str, Any], reply: Reply) -> None:
        pieces = self._pieces(reply)
        for n, piece in enumerate(pieces):
            if not self._paced(n, reply):
                return
            chunk = {"model": body["model"], "message": {"role": "assistant", "content": piece}, "done": False}
            self._chunk((json.dumps(chunk) + "\n").encode())
            self.fake.sent(piece)
        final = {
            "model": body["model"],
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "length" if reply.truncate else "stop",
            "prompt_eval_count": sum(len(m["content"]) for m in body["messages"]) // 4,
            "eval_count": len(pieces),
        }
        self._chunk((json.dumps(final) + "\n").encode())
        self._chunk(b"")

    def _stream_openai(self, body: dict[str, Any], reply: Reply) -> None:
        pieces = self._pieces(reply)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": body["model"]}
        for n, piece in enumerate(pieces):
            if not self._paced(n, reply):
                return
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self.fake.sent(piece)
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length" if reply.truncate else "stop"}]}
        self._chunk(f"data: {json.dumps(done)}\n\n".encode())
        if body.get("stream_options", {}).get("include_usage"):
            prompt = sum(len(m["content"]) for m in body["messages"]) // 4
            usage = {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(pieces),
                    "total_tokens": prompt + len(pieces),
                },
            }
            self._chunk(f"data: {json.dumps(usage)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


class FakeModelServer:
    """Runs a ``FakeModel`` on 127.0.0.1 in a thread; ``base_url`` is what ITER_LLM_BASE_URL takes."""

    def __init__(self, fake: FakeModel | None = None, port: int = 0, provider: str = "ollama") -> None:
        self.fake = fake or FakeModel()
        self.provider = provider
        self._port = port
        self.httpd: ThreadingHTTPServer | None = None
        if port == 0:  # bind now to learn the port; a fixed port stays closed until __enter__
            self._bind()

    def _bind(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self.httpd.daemon_threads = True
        self._port = self.httpd.server_address[1]

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.provider == "ollama" else root + "/v1"

    def __enter__(self) -> FakeModelServer:
        if self.httpd is None:
            self._bind()
        assert self.httpd is not None
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()
