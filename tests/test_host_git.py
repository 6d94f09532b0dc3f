"""iter's own git commands on the host run nothing a repository configures: a hook, an fsmonitor, a
filter, a diff driver, a pager or a credential helper planted in ``.git/config`` (or in a file it
includes) stays inert, and the caller's ``GIT_*`` variables and global config are not seen.

Each planted program would create a marker file; after every command iter runs on the repository
(status, diff, log, add, commit, the worktree of a request, its landing), no marker exists."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from activities.git import commit_paths, dirty, git
from activities.worktree import diff, land, prepare
from models.config import Settings
from models.worktree import LandInput, PrepareInput

PLANTS = ("hook", "fsmonitor", "clean", "smudge", "process", "textconv", "diffcmd", "external", "pager", "cred", "incl")


def user_git(cwd: Path, *args: str) -> str:
    """The user's own git, as a person would run it (not iter's)."""
    ident = ["-c", "user.email=u@example.com", "-c", "user.name=u"]
    return subprocess.run(["git", *ident, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose config and hooks would run a program at every step iter takes."""
    repo, marks = tmp_path / "repo", tmp_path / "marks"
    marks.mkdir()
    repo.mkdir()
    user_git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("one\n")
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    user_git(repo, "add", "-A")
    user_git(repo, "commit", "-qm", "first")

    def touch(name: str) -> str:
        return f"touch {marks}/{name}"

    included = f'[core]\n\tsshCommand = "{touch("incl")}"\n\tfsmonitor = "{touch("incl")}; echo"\n'
    (repo / ".git" / "extra.cfg").write_text(included)
    with (repo / ".git" / "config").open("a") as cfg:
        cfg.write(
            f'[core]\n\tfsmonitor = "{touch("fsmonitor")}; echo"\n\tpager = "{touch("pager")}; cat"\n'
            f'[filter "evil"]\n\tclean = "{touch("clean")}; cat"\n\tsmudge = "{touch("smudge")}; cat"\n'
            f'\tprocess = "{touch("process")}"\n\trequired = true\n'
            f'[diff "evil"]\n\ttextconv = "{touch("textconv")}; cat"\n\tcommand = "{touch("diffcmd")}"\n'
            f'[diff]\n\texternal = "{touch("external")}"\n'
            f'[credential]\n\thelper = "!{touch("cred")}"\n'
            f"[include]\n\tpath = extra.cfg\n"
            f'[includeIf "gitdir:{repo}/"]\n\tpath = extra.cfg\n'
        )
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "reference-transaction", "pre-auto-gc"):
        hook = repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\n{touch('hook')}\n")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return repo, marks


def test_the_plants_are_live_for_the_users_own_git(planted: tuple[Path, Path]) -> None:
    """The control: the same repository does run them for a plain git, so the test can fail."""
    repo, marks = planted
    (repo / "a.txt").write_text("two\n")
    for args in (["status", "--porcelain"], ["-c", "user.email=u@e", "commit", "-qam", "second"]):
        subprocess.run(["git", *args], cwd=repo, capture_output=True)  # it may fail: the plants ran first
    assert {"incl", "process"} <= {p.name for p in marks.iterdir()}, sorted(marks.iterdir())  # fsmonitor, filter


async def test_iters_host_git_runs_nothing_a_repository_configures(
    planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, marks = planted
    # The caller's environment must not steer iter's git either.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", f"touch {marks}/envdiff")
    monkeypatch.setenv("GIT_PAGER", f"touch {marks}/envpager")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[core]\n\tfsmonitor = "touch {marks}/global; echo"\n')
    monkeypatch.setenv("HOME", str(home))

    (repo / "a.txt").write_text("two\n")
    (repo / "b.txt").write_text("new\n")
    assert set(await dirty(repo, repo)) == {"a.txt", "b.txt"}
    assert "+two" in await git(repo, "diff")
    await commit_paths(repo, ["a.txt", "b.txt"], "iter commits")
    assert "+new" in await git(repo, "log", "-p", "-1")

    settings = Settings(data_dir=str(tmp_path / "data"))
    sandbox = await prepare(PrepareInput(origin=str(repo), item="req_01", run_key="wf.run", settings=settings))
    (Path(sandbox.path) / "c.txt").write_text("from the step\n")
    assert "c.txt" in await diff(repo, "req_01", stat_only=True)
    out = await land(LandInput(sandbox=sandbox, passed=True, message="iter req_01"))
    assert out.landing == "applied", out
    assert (repo / "c.txt").read_text() == "from the step\n"

    ran = sorted(p.name for p in marks.iterdir())
    assert ran == [], f"planted programs ran: {ran} (possible: {', '.join(PLANTS)})"
