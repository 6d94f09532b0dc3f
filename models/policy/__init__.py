"""The deterministic safety gate: rules no model answer can overrule.

``evaluate_steps`` returns one ``Finding`` per violation; an empty list means the rules allow the
steps. It resolves real paths, so it is called from activities, never from workflow code.
"""

from __future__ import annotations

from models.policy.engine import evaluate_steps, load_policy, network_steps
from models.policy.paths import check_path

__all__ = ["check_path", "evaluate_steps", "load_policy", "network_steps"]
