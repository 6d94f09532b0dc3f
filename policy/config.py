"""A project's own rules: ``.iter/policy.yaml``.

```yaml
hold: ask                    # held steps: ask a person (default), block them, or allow them
max_timeout_s: 1200          # steps may not ask for longer timeouts (point 7)
max_sleep_s: 120             # `sleep N` above this is a stall (point 7)
deny:                        # extra rules, never overruled
  - pattern: '^terraform (apply|destroy)'
    point: 2
    reason: terraform changes real infrastructure
allow:                       # exemptions, for points 4, 5 and 7 only
  - pattern: '^pip install (-r requirements\\.txt|requests)$'
    points: [5]
    network: true            # the executor may give this step network access
    reason: our dependencies
```

Patterns are Python regular expressions searched in the *normalized* simple command: the command
name without its directory, then its arguments, quotes removed, separated by single spaces, with
wrappers such as ``sudo``, ``env``, ``timeout N`` and ``bash -c`` already seen through. So
``/usr/bin/env FOO=1 "pip" install  requests`` is matched as ``pip install requests``.

An allow rule lifts a point for the simple commands it matches, one by one: ``curl ... | sh`` is
reported on the ``curl``, so an allow rule for that exact ``curl`` (points [4, 5]) lifts it.
Nothing lifts what cannot be read (unparseable shell, commands computed at run time, scripts the
rules cannot see) nor the step-level checks (``timeout_s`` above ``max_timeout_s``).

Why allow rules stop at points 4, 5 and 7: those are the points where a project legitimately
needs exceptions (its package index, its network tests, its long-running dev server). Paths
outside the workspace (1), destruction (2), secrets (3), privilege (6) and plan consistency (8)
are never a project's choice: a pattern that is too broad must not be able to open them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.holds import HoldMode

POLICY_FILE = Path(".iter") / "policy.yaml"
EXEMPTABLE_POINTS = frozenset({4, 5, 7})


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(min_length=1)
    reason: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
        return value

    def matches(self, normalized: str) -> bool:
        return re.search(self.pattern, normalized) is not None


def _all_exemptable() -> list[Literal[4, 5, 7]]:
    return [4, 5, 7]


class DenyRule(_Rule):
    point: int = Field(ge=1, le=8)


class AllowRule(_Rule):
    points: list[Literal[4, 5, 7]] = Field(default_factory=_all_exemptable, min_length=1)
    network: bool = False

    @model_validator(mode="after")
    def _network_needs_point_5(self) -> AllowRule:
        if self.network and 5 not in self.points:
            raise ValueError(f"allow rule {self.pattern!r} sets network: true, so its points must include 5")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: HoldMode | None = None  # None: the run decides (ask; block for --headless sessions)
    max_timeout_s: int = Field(default=1800, ge=1, le=3600)
    max_sleep_s: int = Field(default=300, ge=0, le=3600)
    deny: list[DenyRule] = Field(default_factory=list)
    allow: list[AllowRule] = Field(default_factory=list)
    secret_files: list[str] = Field(default_factory=list)
    """Patterns (Python regular expressions, searched in a workspace path) of the project's own
    secret files, on top of the built-in list (``.env*``, ``.envrc``, key files...): no step reads
    them, and iter never sends them to a model."""

    @field_validator("secret_files")
    @classmethod
    def _patterns_compile(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"secret_files pattern {value!r} is not a valid regular expression: {exc}") from None
        return values

    def exempts(self, point: int, normalized: str) -> bool:
        return point in EXEMPTABLE_POINTS and any(point in r.points and r.matches(normalized) for r in self.allow)

    def allows_network(self, normalized: str) -> bool:
        return any(r.network and r.matches(normalized) for r in self.allow)


def load_policy(workspace: Path) -> Policy:
    """The workspace's ``.iter/policy.yaml``, or the defaults. A bad file raises ``ValueError``
    with a one-line message that names the file and the problem."""
    path = workspace / POLICY_FILE
    if not path.is_file():
        return Policy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{POLICY_FILE}: cannot read it as YAML ({first})") from None
    if data is None:
        return Policy()
    if not isinstance(data, dict):
        raise ValueError(f"{POLICY_FILE}: expected a mapping with deny/allow lists, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise ValueError(f"{POLICY_FILE}: {where}: {err['msg']}") from None
