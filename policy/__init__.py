"""The deterministic safety gate: rules no model answer can overrule.

``evaluate_steps`` returns one ``Finding`` per violation of the 8 points, each with a verdict
(``block``, or ``hold`` for a person); an empty list means the rules allow the steps. It reads the
code a step runs with the readers in ``parsers/`` (shell by tree-sitter-bash, Python by ``ast``,
Makefiles, programs that run commands), follows it through ``commands``, applies ``rules/`` (one
module per point, plus Python code and test weakening), resolves real paths and reads the files a
step runs, so it is called from activities, never from workflow code. ``digests`` records what the
review saw of each file a step is bound to.
``load_policy`` reads a project's extra rules from ``.iter/policy.yaml`` (see ``config``);
``network_steps`` names the steps those rules approve for network access.
"""

from __future__ import annotations

from policy.config import AllowRule, DenyRule, Policy, load_policy
from policy.engine import evaluate_steps, network_steps
from policy.paths import check_path

__all__ = ["AllowRule", "DenyRule", "Policy", "check_path", "evaluate_steps", "load_policy", "network_steps"]
