"""File steps apply exactly once, even when an attempt dies between its intent and its write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.files import FileStepError, apply_file_step
from models.plan import FileStep


def append(text: str) -> FileStep:
    return FileStep(id="s1", type="file", path="notes.md", action="append", content=text)


def test_a_retried_append_lands_once(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# notes\n")
    run_dir = tmp_path / ".iter/runs/wf/r0-s1"

    assert apply_file_step(append("one\n"), tmp_path, run_dir) == "appended"
    assert apply_file_step(append("one\n"), tmp_path, run_dir) == "appended"  # the retry finds it done

    assert (tmp_path / "notes.md").read_text() == "# notes\none\n"


def test_an_attempt_that_died_after_its_intent_is_completed_by_the_retry(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# notes\n")
    run_dir = tmp_path / ".iter/runs/wf/r0-s1"
    apply_file_step(append("one\n"), tmp_path, run_dir)
    (tmp_path / "notes.md").write_text("# notes\n")  # as if the write never happened after the intent

    apply_file_step(append("one\n"), tmp_path, run_dir)

    assert (tmp_path / "notes.md").read_text() == "# notes\none\n"


def test_a_file_changed_by_someone_else_is_not_guessed_at(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# notes\n")
    run_dir = tmp_path / ".iter/runs/wf/r0-s1"
    apply_file_step(append("one\n"), tmp_path, run_dir)
    (tmp_path / "notes.md").write_text("the user rewrote it\n")

    with pytest.raises(FileStepError, match="changed under the step"):
        apply_file_step(append("one\n"), tmp_path, run_dir)
    assert (tmp_path / "notes.md").read_text() == "the user rewrote it\n"


def test_modify_of_a_missing_file_and_escapes_are_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / ".iter/runs/wf/x"
    with pytest.raises(FileStepError, match="does not exist"):
        apply_file_step(FileStep(id="m", type="file", path="nope.py", action="modify", content="x"), tmp_path, run_dir)
    with pytest.raises(FileStepError, match="climbs out"):
        apply_file_step(FileStep(id="e", type="file", path="../x.py", action="create", content="x"), tmp_path, run_dir)
    assert not (tmp_path.parent / "x.py").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker changes owners")
def test_a_root_worker_writes_files_the_workspace_owner_owns(tmp_path: Path) -> None:
    os.chown(tmp_path, 1000, 1000)
    step = FileStep(id="c", type="file", path="pkg/new/mod.py", action="create", content="x = 1\n")

    apply_file_step(step, tmp_path, tmp_path / ".iter/runs/wf/c")

    for made in (tmp_path / "pkg", tmp_path / "pkg/new", tmp_path / "pkg/new/mod.py"):
        assert (made.stat().st_uid, made.stat().st_gid) == (1000, 1000), made
