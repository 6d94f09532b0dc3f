"""The deterministic safety gate: rules no model answer can overrule.

``evaluate_steps`` returns one ``Finding`` per violation of the 8 points; an empty list means the
rules allow the steps. It parses the shell (see ``lexer``, ``shell``, ``commands``), resolves real
paths and reads the scripts a step runs, so it is called from activities, never from workflow code.
``load_policy`` reads a project's extra rules from ``.iter/policy.yaml`` (see ``config``);
``network_steps`` names the steps those rules approve for network access.
"""

from __future__ import annotations

from policy.config import AllowRule, DenyRule, Policy, load_policy
from policy.engine import evaluate_steps, network_steps
from policy.paths import check_path

__all__ = ["AllowRule", "DenyRule", "Policy", "check_path", "evaluate_steps", "load_policy", "network_steps"]
