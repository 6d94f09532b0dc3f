"""A tiny calculator."""

from calc.ops import add, subtract

__all__ = ["add", "subtract"]
