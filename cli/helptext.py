"""Help that reads like a person wrote it: plain text (no boxes, quick to print), and an option's
value named after the option (``--request REQUEST``) instead of its Python type (``<str>``)."""

from __future__ import annotations

from typing import Any


def _option_type(self: Any, ctx: Any) -> str | None:
    if self.metavar is not None:
        return str(self.metavar)
    if self.is_flag or self.count:
        return None
    descriptor = getattr(self, "type_descriptor", None)
    if descriptor is not None and descriptor.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ())
    longest = max(self.opts, key=len, default=str(self.name))
    return longest.lstrip("-").replace("-", "_").upper()


def _argument_type(self: Any, ctx: Any) -> str | None:
    return None  # the argument's name (upper-cased below) already says what it is


def _install() -> None:
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:
        return
    TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
    TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]


def plain(command: Any) -> None:
    """Plain help for ``command`` and everything under it; arguments shown in capitals."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument" and param.metavar is None:
            param.metavar = str(param.name).upper()
    for sub in getattr(command, "commands", {}).values():
        plain(sub)


_install()
