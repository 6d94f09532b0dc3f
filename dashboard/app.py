"""The dashboard's web application: one static page (HTML, CSS and a small vanilla script; no
build step), JSON for the list and one workflow, an SSE feed per workflow, and POST actions.

Every dynamic value reaches the page as JSON and is put into the page as text by the script, never
as markup: model output is attacker-controlled. ``Guard`` checks the token, the host and the
origin of every request first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from temporalio.client import Client
from temporalio.service import RPCError

from dashboard import feed, view
from dashboard.guard import Guard

STATIC = Path(__file__).parent / "static"
PROJECT_NAME = re.compile(r"[A-Za-z0-9_.-]{0,100}")
MAX_BODY_BYTES = 64_000


def _refused(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(client: Client, links: view.Links, token: str | None) -> Guard:
    """The ASGI application; ``token`` None means loopback-only access without one."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def meta(request: Request) -> Response:
        return JSONResponse(
            {"temporal_ui": links.list_page(), "namespace": links.namespace, "points": view.SAFETY_POINTS}
        )

    async def workflows(request: Request) -> Response:
        project = request.query_params.get("project", "")
        if not PROJECT_NAME.fullmatch(project):
            return _refused("a project name holds letters, digits, '.', '_' and '-' only", 400)
        try:
            return JSONResponse(await view.list_workflows(client, links, project))
        except RPCError as exc:
            return _refused(f"Temporal does not answer ({exc.message})", 503)

    def _id(request: Request) -> str | None:
        wid = str(request.path_params["wid"])
        return wid if view.valid_id(wid) else None

    async def one(request: Request) -> Response:
        wid = _id(request)
        if wid is None:
            return _refused("not an iter workflow id", 404)
        try:
            return JSONResponse(await view.detail(client, links, wid))
        except view.ActionRefused as exc:
            return _refused(str(exc), exc.status)

    async def events(request: Request) -> Response:
        wid = _id(request)
        if wid is None:
            return _refused("not an iter workflow id", 404)
        last = request.headers.get("last-event-id") or request.query_params.get("from", "")
        offset = int(last) + 1 if last.isdigit() else 0
        return StreamingResponse(
            feed.events(client, links, wid, offset),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def action(request: Request) -> Response:
        wid = _id(request)
        if wid is None:
            return _refused("not an iter workflow id", 404)
        # JSON only: a cross-site form cannot send it without a preflight this server never grants.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refused("actions take a JSON body (Content-Type: application/json)", 415)
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _refused(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
        try:
            body: Any = await request.json() if raw else {}
        except ValueError:
            return _refused("the body is not JSON", 400)
        if not isinstance(body, dict):
            return _refused("the body must be a JSON object", 400)
        try:
            message = await view.act(client, wid, str(request.path_params["action"]), body)
        except view.ActionRefused as exc:
            return _refused(str(exc), exc.status)
        return JSONResponse({"ok": True, "message": message})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/meta", meta),
            Route("/api/workflows", workflows),
            Route("/api/workflows/{wid}", one),
            Route("/api/workflows/{wid}/events", events),
            Route("/api/workflows/{wid}/{action}", action, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    return Guard(app, token)
