"""From tokens to the simple commands bash will run, with the structure the rules need.

The rules look at simple commands (``rm -rf x``), so the parser flattens lists, pipelines, groups,
loops, conditionals and functions into one ordered list, and keeps on each command what matters
for safety: is it piped, backgrounded, inside a subshell, a loop, a condition, a function body.
Loops and function bodies are kept as ranges so that liveness rules can see ``while true`` with no
``break`` and a function that calls itself (a fork bomb).

A construct it does not recognise, or one left open, raises ``ShellSyntaxError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from policy.lexer import tokenize
from policy.tokens import Op, Redir, ShellSyntaxError, Word

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "while", "until", "for", "select", "do", "done", "case", "esac",
     "{", "}", "!", "time", "function"}
)
_LOOPS = frozenset({"while", "until", "for", "select"})
_CONDITIONAL = frozenset({"if", "while", "until", "for", "select", "case", "func"})
_PIPES = ("|", "|&")


@dataclass
class SimpleCommand:
    words: list[Word]
    assigns: list[Word]
    redirects: list[Redir]
    index: int
    pipe_in: bool = False  # reads the previous command's output
    pipe_out: bool = False
    joined_by: str = ""  # the operator that follows it: ; && || | & or newline
    background: bool = False
    subshells: tuple[int, ...] = ()  # ids of the ( ... ) it runs in: a cd inside does not leak out
    conditional: bool = False  # may or may not run (if/loop/case/function body)
    function: str | None = None
    group_redirect: bool = False  # carries a redirection that applies to a whole group or loop
    pipeline: int = 0  # commands of one pipeline share this id: curl ... | sh


@dataclass
class Loop:
    kind: str  # while, until, for, select
    start: int  # command indices: [start, cond_end) is the condition or header, [cond_end, end) the body
    cond_end: int = -1
    end: int = -1
    header: str = ""
    stdin_redirected: bool = False  # done < file


@dataclass
class Script:
    commands: list[SimpleCommand] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    functions: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class _Frame:
    kind: str  # ( { if while until for select case
    id: int
    start: int
    state: str = ""  # loops: cond/header/await_do/body; case: header/pattern/body
    header: list[Word] = field(default_factory=list)
    loop: Loop | None = None
    func: str | None = None


def parse(src: str) -> Script:
    return _Parser(tokenize(src)).parse()


class _Parser:
    def __init__(self, tokens: list[Word | Op | Redir]) -> None:
        self.toks = tokens
        self.k = 0
        self.script = Script()
        self.stack: list[_Frame] = []
        self.cur: SimpleCommand | None = None
        self.closed: _Frame | None = None  # a construct just closed: redirections and & after it apply to it
        self.pipe_pending = False
        self.pending_func: str | None = None
        self.next_id = 0
        self.last_pipeline = 0

    def parse(self) -> Script:
        while self.k < len(self.toks):
            tok = self.toks[self.k]
            self.k += 1
            if isinstance(tok, Word):
                self._word(tok)
            elif isinstance(tok, Redir):
                self._redir(tok)
            else:
                self._op(tok.kind)
        self._finish("")
        if self.stack:
            raise ShellSyntaxError(f"'{self.stack[-1].kind}' is never closed")
        if self.pending_func:
            raise ShellSyntaxError(f"function {self.pending_func} has no body")
        if self.pipe_pending:
            raise ShellSyntaxError("a pipe '|' has no command after it")
        return self.script

    # ---- words ---------------------------------------------------------------------------------
    def _word(self, tok: Word) -> None:
        if self.cur is not None:
            self._add_word(self.cur, tok)
            self._array_elements(self.cur, tok)
            return
        top = self.stack[-1] if self.stack else None
        if top and top.kind == "case" and top.state == "pattern":
            self._case_pattern(top, tok)
            return
        if top and top.state == "header":
            self._header_word(top, tok)
            return
        if tok.raw in _RESERVED:
            self._reserved(tok.raw)
            return
        nxt = self.toks[self.k : self.k + 2]
        if nxt == [Op("("), Op(")")] and not _ASSIGNMENT.match(tok.raw):
            self.pending_func = tok.text
            self.k += 2
            return
        self.cur = self._new_command()
        self._add_word(self.cur, tok)
        self._array_elements(self.cur, tok)

    def _array_elements(self, cmd: SimpleCommand, tok: Word) -> None:
        """``a=(x "$y" $(z))``: the elements are words of the assignment, not a subshell."""
        if not (_ASSIGNMENT.match(tok.raw) and tok.raw.endswith("=")) or self.toks[self.k : self.k + 1] != [Op("(")]:
            return
        self.k += 1
        while self.k < len(self.toks) and self.toks[self.k] != Op(")"):
            element = self.toks[self.k]
            self.k += 1
            if isinstance(element, Word):
                (cmd.assigns if tok in cmd.assigns else cmd.words).append(element)
            elif element != Op("\n"):
                raise ShellSyntaxError("unexpected token in an array")
        if self.k >= len(self.toks):
            raise ShellSyntaxError("array assignment without ')'")
        self.k += 1

    @staticmethod
    def _add_word(cmd: SimpleCommand, tok: Word) -> None:
        if not cmd.words and _ASSIGNMENT.match(tok.raw):
            cmd.assigns.append(tok)
        else:
            cmd.words.append(tok)

    def _reserved(self, word: str) -> None:
        top = self.stack[-1] if self.stack else None
        if word == "if":
            self._push("if")
        elif word in ("then", "else", "elif"):
            if not top or top.kind != "if":
                raise ShellSyntaxError(f"'{word}' outside an if")
        elif word == "fi":
            self._close(("if",), word)
        elif word in ("while", "until"):
            frame = self._push(word, state="cond")
            frame.loop = Loop(kind=word, start=len(self.script.commands))
        elif word in ("for", "select"):
            frame = self._push(word, state="header")
            frame.loop = Loop(kind=word, start=len(self.script.commands))
        elif word == "do":
            if not top or top.kind not in _LOOPS or top.state not in ("cond", "await_do"):
                raise ShellSyntaxError("'do' outside a loop")
            self._start_body(top)
        elif word == "done":
            self._close(tuple(_LOOPS), word)
        elif word == "case":
            self._push("case", state="header")
        elif word == "esac":
            self._close(("case",), word)
        elif word == "{":
            self._push("{")
        elif word == "}":
            self._close(("{",), word)
        elif word == "time" and self.k < len(self.toks) and self.toks[self.k] == Word("-p", "-p"):
            self.k += 1
        elif word == "function":
            name = self.toks[self.k] if self.k < len(self.toks) else None
            if not isinstance(name, Word):
                raise ShellSyntaxError("'function' without a name")
            self.pending_func = name.text
            self.k += 1
            if self.toks[self.k : self.k + 2] == [Op("("), Op(")")]:
                self.k += 2
        # '!' negates a pipeline: nothing to record

    def _header_word(self, top: _Frame, tok: Word) -> None:
        if top.kind == "case":
            top.header.append(tok)
            if tok.raw == "in":
                self._emit_header(top)
                top.state = "pattern"
        elif tok.raw == "do":
            self._emit_header(top)
            self._start_body(top)
        else:
            top.header.append(tok)

    def _emit_header(self, top: _Frame) -> None:
        """The words of ``for x in WORDS`` or ``case WORD in`` become a pseudo-command, so that a
        ``$(...)`` in them is checked like any other."""
        if top.header and top.loop is not None:
            top.loop.header = " ".join(w.raw for w in top.header)
        cmd = self._new_command()
        cmd.words = [Word(top.kind, top.kind), *top.header]
        cmd.joined_by = ";"
        top.header = []

    def _start_body(self, top: _Frame) -> None:
        if top.state == "header":
            self._emit_header(top)
        top.state = "body"
        if top.loop is not None:
            top.loop.cond_end = len(self.script.commands)

    def _case_pattern(self, top: _Frame, tok: Word) -> None:
        if tok.raw == "esac":
            self._close(("case",), "esac")
            return
        # the pattern runs up to ')'; it is matched, never run
        while self.k < len(self.toks) and self.toks[self.k] != Op(")"):
            self.k += 1
        if self.k >= len(self.toks):
            raise ShellSyntaxError("case pattern without ')'")
        self.k += 1
        top.state = "body"

    # ---- redirections and operators -------------------------------------------------------------
    def _redir(self, tok: Redir) -> None:
        if self.cur is None and self.closed is not None:
            frame = self.closed
            if frame.loop is not None and tok.op in ("<", "<<", "<<-", "<<<"):
                frame.loop.stdin_redirected = True
            cmd = self._new_command(keep_closed=True)
            cmd.group_redirect = True
            cmd.redirects.append(tok)
            self.cur = None
            return
        if self.cur is None:
            self.cur = self._new_command()
        self.cur.redirects.append(tok)

    def _op(self, kind: str) -> None:
        top = self.stack[-1] if self.stack else None
        if top and top.state == "header" and kind in (";", "\n") and top.kind in _LOOPS:
            self._emit_header(top)
            top.state = "await_do"
            return
        if kind == "\n":
            if self.cur is not None or self.closed is not None:
                self._finish("\n")
            return
        if kind == "(" and top and top.kind == "case" and top.state == "pattern":
            return  # case patterns may open with '(': (a|b) cmd ;;
        if kind == "(":
            if self.cur is not None:
                raise ShellSyntaxError("unexpected '('")
            self._push("(")
        elif kind == ")":
            self._finish("")
            self._close(("(",), ")")
        elif kind in (";;", ";&", ";;&"):
            self._finish(kind)
            if not top or top.kind != "case" or top.state != "body":
                raise ShellSyntaxError(f"'{kind}' outside a case")
            top.state = "pattern"
        else:
            if self.cur is None and self.closed is None:
                raise ShellSyntaxError(f"syntax error near '{kind}'")
            self._finish(kind)

    def _finish(self, joined: str) -> None:
        if self.cur is not None:
            targets = [self.cur]
            self.cur.joined_by = joined
        elif self.closed is not None:
            targets = self.script.commands[self.closed.start :]
        else:
            return
        for cmd in targets:
            if joined in _PIPES:
                cmd.pipe_out = True
            if joined == "&":
                cmd.background = True
        if joined in _PIPES:
            self.pipe_pending = True
        self.cur = None
        self.closed = None

    # ---- constructs ----------------------------------------------------------------------------
    def _new_command(self, keep_closed: bool = False) -> SimpleCommand:
        loop_frames = [f for f in self.stack if f.kind in _CONDITIONAL]
        funcs = [f.func for f in self.stack if f.func]
        cmd = SimpleCommand(
            words=[], assigns=[], redirects=[], index=len(self.script.commands), pipe_in=self.pipe_pending,
            subshells=tuple(f.id for f in self.stack if f.kind == "("),
            conditional=bool(loop_frames or funcs), function=funcs[-1] if funcs else None,
        )
        cmd.pipeline = self.last_pipeline if self.pipe_pending else cmd.index
        self.last_pipeline = cmd.pipeline
        self.pipe_pending = False
        if not keep_closed:
            self.closed = None
        self.script.commands.append(cmd)
        return cmd

    def _push(self, kind: str, state: str = "") -> _Frame:
        if self.cur is not None:
            raise ShellSyntaxError(f"unexpected '{kind}'")
        self.next_id += 1
        frame = _Frame(kind=kind, id=self.next_id, start=len(self.script.commands), state=state)
        if self.pending_func and kind in ("(", "{"):
            frame.func, self.pending_func = self.pending_func, None
        elif self.pending_func:
            raise ShellSyntaxError(f"function {self.pending_func} has no body")
        self.stack.append(frame)
        self.closed = None
        return frame

    def _close(self, kinds: tuple[str, ...], word: str) -> None:
        self._finish("")
        if not self.stack or self.stack[-1].kind not in kinds:
            raise ShellSyntaxError(f"unexpected '{word}'")
        frame = self.stack.pop()
        end = len(self.script.commands)
        if frame.loop is not None:
            if frame.state != "body":
                raise ShellSyntaxError(f"'{frame.kind}' loop without 'do'")
            frame.loop.end = end
            self.script.loops.append(frame.loop)
        if frame.func:
            self.script.functions[frame.func] = (frame.start, end)
        if frame.kind == "case" and frame.state == "header":
            raise ShellSyntaxError("'case' without 'in'")
        self.closed = frame
