"""Executors run a step's command somewhere isolated and survive the death of the worker that
started it: a command is started once, and a later attempt adopts it instead of starting it again."""

from activities.executor.base import CommandOutcome, Executor, ExecutorUnavailable
from activities.executor.factory import executor_for

__all__ = ["CommandOutcome", "Executor", "ExecutorUnavailable", "executor_for"]
