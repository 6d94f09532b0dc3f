"""``iter dashboard``: the web page that shows requests and sessions live and steers them.

Bound to 127.0.0.1 unless asked otherwise; any other address needs a token (one is generated
and printed when none is given), checked on every request."""

from __future__ import annotations

import re
import secrets
import socket

import typer

from cli import runtime
from cli.output import console, fail
from dashboard.guard import is_loopback
from models.config import Settings

DEFAULT_PORT = 8765
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{16,256}")


def dashboard(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs a token."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on; 0 picks a free one."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="ITER_DASHBOARD_TOKEN",
        help="Access token (16+ letters, digits, '-' or '_'); generated when another address than loopback is used.",
    ),
    temporal_ui: str = typer.Option(
        "", "--temporal-ui", help="Base URL of the Temporal web UI for links (default http://localhost:<ui_port>)."
    ),
) -> None:
    """Serve the web dashboard: requests and sessions, live output, checks, usage, and the controls."""
    if token is not None and not TOKEN_CHARS.fullmatch(token):
        fail("the token must be 16 to 256 letters, digits, '-' or '_'")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    if temporal_ui and not re.match(r"https?://", temporal_ui):
        fail(f"--temporal-ui must be an http(s) URL, not {temporal_ui!r}")
    cfg = runtime.settings()
    sock = _bind(host, port)
    runtime.run(_serve(cfg, sock, host, token, temporal_ui or f"http://localhost:{cfg.temporal.ui_port}"))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port (0 picks a free one)")


async def _serve(cfg: Settings, sock: socket.socket, host: str, token: str | None, temporal_ui: str) -> None:
    import uvicorn

    from dashboard.app import create_app
    from dashboard.view import Links

    client = await runtime.client_for(cfg)
    app = create_app(client, Links(temporal_ui=temporal_ui, namespace=cfg.temporal.namespace), token)
    port = sock.getsockname()[1]
    shown = host if is_loopback(host) or host not in ("0.0.0.0", "::") else socket.gethostname()
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"Dashboard: {url}", soft_wrap=True, markup=False, highlight=False)
    if token:
        console.print("Anyone with this URL can steer your work: keep the token private.", highlight=False)
    console.print("Ctrl-C stops the dashboard; the workflows go on.", highlight=False)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    await uvicorn.Server(config).serve(sockets=[sock])
