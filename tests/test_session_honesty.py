"""Honest session output, through `iter build` as a user runs it: a refused operation is printed
with its reason, and an unattended session that completed no task says why and exits non-zero."""

from __future__ import annotations

from pathlib import Path

from models.config import Settings
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel
from tests.test_session_control import iter_cli


async def test_refused_operations_are_printed_with_their_reason(
    settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    s.write_spec(workspace, "# One\n- [ ] one\n", "specs/one.md")
    refused = [{"content": "after a task that does not exist", "depends_on": ["99"]}]
    fake.script("session_plan", s.append_plan("a.txt", "one\n", action="create", new_tasks=refused))

    done = await iter_cli(cli_env, workspace, "build", "--spec", "specs/one.md", "--iterations", "1", "--headless",
                          "--quiet")  # fmt: skip

    out = done.stdout + done.stderr
    assert "0 new task(s), 1 refused" in out, out
    assert "refused add operation" in out and "99" in out, out


async def test_a_headless_session_that_completed_nothing_exits_non_zero(
    settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_fail())
    s.write_spec(workspace, "# One\n- [ ] one\n", "specs/one.md")
    fake.default("session_plan", s.session_plan(r.run("s1", "true"), r.verify("s2", "test -e never.txt")))

    done = await iter_cli(cli_env, workspace, "build", "--spec", "specs/one.md", "--iterations", "2", "--headless",
                          "--quiet", timeout=180)  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert "0/1 tasks completed" in done.stdout
    assert "no task was completed in 2 iteration(s)" in done.stderr, done.stderr
