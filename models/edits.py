"""The ``edit`` action of a file step: search/replace blocks instead of a whole new file.

A small model rewriting a large file whole drops or garbles lines it never meant to touch; asked
for just the lines that change, it gets them right. The blocks live in the step's ``content`` (the
plan schema stays flat: every file step has a string ``content``, which a constrained decoder
handles well), in the format coder models already know:

    <<<<<<< SEARCH
    exact lines of the current file
    =======
    the lines that replace them
    >>>>>>> REPLACE

Each SEARCH text must occur exactly once in the file as it is when the step runs; blocks apply in
order, each to the result of the one before. Pure: parsing and applying, no I/O."""

from __future__ import annotations

import re

BLOCK = re.compile(r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE", re.S)
# Files larger than this are edited with blocks, smaller ones rewritten whole (the prompt says which).
WHOLE_FILE_MAX_BYTES = 4096


class EditError(ValueError):
    """The blocks do not apply to the file as it is; the message says which block and why."""


def parse_blocks(content: str) -> list[tuple[str, str]]:
    """The (search, replace) pairs; raises EditError when there are none or one has no search text."""
    blocks = BLOCK.findall(content)
    if not blocks:
        raise EditError("an edit needs at least one <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block")
    for number, (search, _) in enumerate(blocks, start=1):
        if not search.strip():
            raise EditError(f"block {number} has an empty SEARCH text; use action modify for a whole file")
    return blocks


def apply_blocks(current: str, content: str, path: str = "the file") -> str:
    """``current`` with every block applied, in order."""
    text = current
    for number, (search, replace) in enumerate(parse_blocks(content), start=1):
        count = text.count(search)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise EditError(f"block {number}: its SEARCH text {where} in {path}; copy the lines exactly, once")
        text = text.replace(search, replace, 1)
    return text
