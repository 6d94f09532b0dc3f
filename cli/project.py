"""The project model from the command line: project, feature, endpoint, files, request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from pydantic import BaseModel
from rich.table import Table

from cli import project_store as store
from cli.output import console, fail, ok, print_json
from models.project import HTTP_METHODS, Endpoint, Feature, FeatureRequest, Project, new_project_id, slugify

project_app = typer.Typer(help="Create and show the project in this folder.", no_args_is_help=True)
feature_app = typer.Typer(help="Features of the project.", no_args_is_help=True)
endpoint_app = typer.Typer(help="HTTP endpoints of the project.", no_args_is_help=True)
files_app = typer.Typer(help="Files selected as context for every request.", no_args_is_help=True)
request_app = typer.Typer(help="Feature requests.", no_args_is_help=True)

JsonFlag = typer.Option(False, "--json", help="Print JSON for programs.")


@project_app.command("create")
def project_create(
    name: str = typer.Option(..., "--name", help="Project name."),
    stack: str = typer.Option("python", "--stack", help="Stack, which picks the coding charter."),
) -> None:
    """Create .iter/project.yaml in the current folder."""
    root = Path.cwd()
    if store.find_root(root) == root.resolve():
        fail(f"a project already exists here ({store.project_file(root)}); edit it or remove it first")
    if not name.strip():
        fail("the project name must not be empty")
    store.save(root, Project(id=new_project_id(), name=name.strip(), stack=stack))
    ok(f"Project created: {name} ({store.project_file(root)})")


@project_app.command("show")
def project_show(as_json: bool = JsonFlag) -> None:
    """Show the project: features, endpoints, files and requests."""
    root = store.require_root()
    project = store.load(root)
    if as_json:
        print_json(project)
        return
    console.print(f"[bold]{project.name}[/bold]  id {project.id}  stack {project.stack}  ({root})")
    console.print(
        f"features {len(project.features)}, endpoints {len(project.endpoints)}, "
        f"selected files {len(project.selected_files)}, requests {len(project.requests)}"
    )


@feature_app.command("add")
def feature_add(
    name: str = typer.Option(..., "--name", help="The feature's name, e.g. Arithmetic."),
    type_: str = typer.Option("feature", "--type", help="What kind of work: feature, bugfix, refactor..."),
) -> None:
    """Add a feature; its id is the name in lower-case with dashes."""
    with store.editing() as (_, project):
        fid = slugify(name)
        if any(f.id == fid for f in project.features):
            fail(f"feature {name!r} exists already (id {fid})")
        project.features.append(Feature(id=fid, name=name, type=type_))
    ok(f"Feature added: {name} (id {fid})")


def show_rows(items: Sequence[BaseModel], columns: tuple[str, ...], as_json: bool) -> None:
    """A list for people (a table of ``columns``) or for programs (every field, as JSON)."""
    if as_json:
        print_json([item.model_dump() for item in items])
        return
    table = Table(*columns)
    for item in items:
        table.add_row(*(str(getattr(item, column) or "") for column in columns))
    console.print(table)


@feature_app.command("list")
def feature_list(as_json: bool = JsonFlag) -> None:
    """List the features."""
    show_rows(store.load(store.require_root()).features, ("id", "name", "type"), as_json)


@endpoint_app.command("add")
def endpoint_add(
    name: str = typer.Option(..., "--name", help="The endpoint's name, e.g. create-user."),
    path: str = typer.Option(..., "--path", help="Its URL path, starting with /."),
    method: str = typer.Option("GET", "--method", help="The HTTP method."),
) -> None:
    """Add an HTTP endpoint of the project."""
    method = method.upper()
    if method not in HTTP_METHODS:
        fail(f"unknown method {method!r}; use one of {', '.join(HTTP_METHODS)}")
    if not path.startswith("/"):
        fail(f"endpoint path {path!r} must start with /")
    with store.editing() as (_, project):
        if any(e.name == name for e in project.endpoints):
            fail(f"endpoint {name!r} exists already")
        if any(e.path == path and e.method == method for e in project.endpoints):
            fail(f"{method} {path} exists already")
        project.endpoints.append(Endpoint(name=name, path=path, method=method))
    ok(f"Endpoint added: {method} {path} ({name})")


@endpoint_app.command("list")
def endpoint_list(as_json: bool = JsonFlag) -> None:
    """List the endpoints."""
    show_rows(store.load(store.require_root()).endpoints, ("method", "path", "name"), as_json)


def _relative_file(root: Path, raw: str) -> str:
    path = (Path.cwd() / raw).resolve()
    if not path.is_file():
        fail(f"file not found: {raw}")
    try:
        rel = str(path.relative_to(root.resolve()))
    except ValueError:
        fail(f"{raw} is outside the project folder {root} (or a symlink that leads out of it)")
    _refuse_secret(root, raw, rel)
    return rel


def _refuse_secret(root: Path, *names: str) -> None:
    """Selected and affected files go into every prompt and into workflow history: never a secret."""
    from policy import load_policy  # the policy is imported only by the commands that need it
    from policy.rules.secrets import secret_file

    try:
        extra = load_policy(root).secret_files
    except ValueError:
        extra = []
    for name in names:
        what = secret_file(name, extra)
        if what:
            fail(f"refusing {name}: it is a secret file ({what}); iter never sends those to a model")


@files_app.command("select")
def files_select(paths: list[str] = typer.Argument(..., help="Files to include in every prompt.")) -> None:
    """Select files as context for every request."""
    with store.editing() as (root, project):
        rels = [_relative_file(root, p) for p in paths]
        added = [r for r in rels if r not in project.selected_files]
        project.selected_files.extend(added)
    ok(f"Selected {len(added)} file(s); {len(project.selected_files)} in all")


@files_app.command("list")
def files_list(as_json: bool = JsonFlag) -> None:
    """List the selected files."""
    project = store.load(store.require_root())
    if as_json:
        print_json(project.selected_files)
        return
    for rel in project.selected_files:
        console.print(rel)


@request_app.command("add")
def request_add(
    description: str = typer.Option(..., "--description", help="What to build, in your words."),
    feature: str | None = typer.Option(None, "--feature", help="The feature it belongs to (id or name)."),
    criteria: list[str] = typer.Option([], "--criteria", help="An acceptance criterion; repeat for more."),
    files: list[str] = typer.Option([], "--file", help="A file the request affects; repeat for more."),
) -> None:
    """Add a feature request; prints its id."""
    if not description.strip():
        fail("the description must not be empty")
    with store.editing() as (root, project):
        fid = None
        if feature:
            found = project.feature(feature)
            if found is None:
                known = ", ".join(f.id for f in project.features) or "none yet; add one with `iter feature add`"
                fail(f"unknown feature {feature!r} (known: {known})")
            fid = found.id
        affected = [_relative_file(root, f) if (Path.cwd() / f).exists() else f for f in files]
        _refuse_secret(root, *affected)
        rid = project.next_request_id()
        project.requests.append(
            FeatureRequest(
                id=rid, description=description.strip(), feature=fid, criteria=criteria, affected_files=affected
            )
        )
    typer.echo(rid)


@request_app.command("list")
def request_list(as_json: bool = JsonFlag) -> None:
    """List the requests and where each stands (asking Temporal about those last seen running)."""
    root = store.require_root()
    project = store.load(root)
    if any(r.status == "running" for r in project.requests):
        from cli.control import refresh_running

        if not refresh_running(project):
            console.print("[dim]Temporal does not answer: running statuses are as last recorded[/dim]")
        project = store.load(root)
    show_rows(project.requests, ("id", "status", "feature", "description"), as_json)


@request_app.command("show")
def request_show(
    request_id: str = typer.Argument(..., help="The request id, e.g. req_01."), as_json: bool = JsonFlag
) -> None:
    """Show a request: description, criteria, files, status."""
    project = store.load(store.require_root())
    req = project.request(request_id)
    if req is None:
        fail(f"no request {request_id!r}; `iter request list` shows them")
    if as_json:
        print_json(req)
        return
    console.print(f"[bold]{req.id}[/bold]  {req.status}" + (f"  feature {req.feature}" if req.feature else ""))
    console.print(req.description)
    for c in req.criteria:
        console.print(f"  • {c}")
    for f in req.affected_files:
        console.print(f"  file {f}")
