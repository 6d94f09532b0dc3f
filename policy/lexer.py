"""Shell tokens: words (with their quoting removed), operators and redirections.

The gate needs to see what bash will run, not what the text looks like, so quoting is undone the
way bash undoes it (``r'm'``, ``"rm"`` and ``\\rm`` are all ``rm``), and everything that is only
known at run time (``$VAR``, ``$(...)``, backticks, globs, brace expansion) is marked on the word.
The sources of command and process substitutions are kept so that the parser can check them too.

Anything the lexer cannot read with confidence raises ``ShellSyntaxError``: unknown means blocked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from policy.tokens import Op, Redir, ShellSyntaxError, Token, Word

# bash's metacharacters end a word unless quoted.
_METACHARS = frozenset(" \t\n;&|()<>")
# Words that keep the lexer at "command position": what follows them is a new command.
_CMD_START_WORDS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"})
_OPERATORS = ("&&", "||", ";;&", ";;", ";&", "|&", "&", "|", ";", "(", ")")
_REDIRECT = re.compile(r"(\d+)?(&>>|&>|<<<|<<-|<<|<>|<&|>&|>>|>\||<|>)")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v"}


@dataclass
class _WordBuilder:
    raw_start: int
    text: list[str] = field(default_factory=list)
    dynamic: bool = False
    glob: bool = False
    brace_open: bool = False
    brace: bool = False
    tilde: bool = False
    subs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)


def tokenize(src: str) -> list[Token]:
    tokens, _ = _Lexer(src, 0).run(nested=False)
    return tokens


def find_substitutions(text: str, respect_single_quotes: bool = True) -> list[str]:
    """Sources of ``$(...)`` and backticks in free text (a ``${...}`` body or a heredoc)."""
    found: list[str] = []
    lexer = _Lexer(text, 0)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == "'" and respect_single_quotes:
            close = text.find("'", i + 1)
            i = n if close < 0 else close + 1
        elif text.startswith("$((", i):
            i = lexer.skip_arith(i + 3)
        elif text.startswith("$(", i):
            inner, i = lexer.read_subst(i + 2)
            found.append(inner)
        elif c == "`":
            inner, i = lexer.read_backticks(i + 1)
            found.append(inner)
        else:
            i += 1
    return found


class _Lexer:
    def __init__(self, src: str, pos: int) -> None:
        self.src = src
        self.i = pos
        self.tokens: list[Token] = []
        self.pending_heredocs: list[Redir] = []
        self.at_cmd_start = True
        self.after_for = False

    # ---- the main loop -------------------------------------------------------------------------
    def run(self, nested: bool) -> tuple[list[Token], int]:
        """Tokens up to the end, or (nested) up to the ``)`` that closes a ``$(``."""
        src, depth, case_depth = self.src, 0, 0
        while self.i < len(src):
            c = src[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and src.startswith("\\\n", self.i):
                self.i += 2
            elif c == "\n":
                self._emit(Op("\n"))
                self.i += 1
                self._read_heredoc_bodies()
            elif c == "#" and self._word_boundary_before():
                nl = src.find("\n", self.i)
                self.i = len(src) if nl < 0 else nl
            elif src.startswith(("<(", ">("), self.i):
                self._emit(self._read_word())
            elif (m := _REDIRECT.match(src, self.i)) and (m.group(1) is None or self._word_boundary_before()):
                self.i = m.end()
                self._read_redirect(m.group(2), m.group(1))
            elif (op := next((o for o in _OPERATORS if src.startswith(o, self.i)), None)) is not None:
                if nested and op == ")" and depth == 0 and case_depth == 0:
                    self.i += 1
                    break
                if op == "(" and (self.at_cmd_start or self.after_for) and src.startswith("((", self.i):
                    self._emit(self._read_arith_command())
                    continue
                depth += {"(": 1, ")": -1}.get(op, 0) if case_depth == 0 else 0
                self.i += len(op)
                self._emit(Op(op))
            else:
                cond = self.at_cmd_start and src.startswith("[[", self.i)
                word = self._read_word()
                if self.at_cmd_start and word.text == "case":
                    case_depth += 1
                elif self.at_cmd_start and word.text == "esac":
                    case_depth = max(0, case_depth - 1)
                self._emit(word)
                if cond and word.text == "[[":
                    self._read_conditional()
        else:
            if nested:
                raise ShellSyntaxError("unterminated $( ... )")
        if self.pending_heredocs:
            raise ShellSyntaxError(f"here-document <<{self.pending_heredocs[0].delimiter} is not terminated")
        return self.tokens, self.i

    def _emit(self, tok: Token) -> None:
        self.tokens.append(tok)
        if isinstance(tok, Op):
            self.at_cmd_start, self.after_for = True, False
        elif isinstance(tok, Word):
            starts = self.at_cmd_start and tok.text in _CMD_START_WORDS and not tok.raw.startswith(("'", '"'))
            self.after_for = self.at_cmd_start and tok.text in ("for", "select")
            self.at_cmd_start = starts

    def _word_boundary_before(self) -> bool:
        return self.i == 0 or self.src[self.i - 1] in _METACHARS

    # ---- redirections and here-documents -------------------------------------------------------
    def _read_redirect(self, op: str, fd: str | None) -> None:
        while self.i < len(self.src) and self.src[self.i] in " \t":
            self.i += 1
        at_end = self.i >= len(self.src)
        if at_end or (self.src[self.i] in _METACHARS and not self.src.startswith(("<(", ">("), self.i)):
            raise ShellSyntaxError(f"redirection {op} has no target")
        target = self._read_word()
        redir = Redir(op=op, fd=fd, target=target)
        if op in ("<<", "<<-"):
            redir.delimiter = target.text
            redir.heredoc_expands = target.raw == target.text
            self.pending_heredocs.append(redir)
        self.tokens.append(redir)

    def _read_heredoc_bodies(self) -> None:
        for redir in self.pending_heredocs:
            lines: list[str] = []
            while True:
                if self.i >= len(self.src):
                    raise ShellSyntaxError(f"here-document <<{redir.delimiter} is not terminated")
                nl = self.src.find("\n", self.i)
                end = len(self.src) if nl < 0 else nl
                line = self.src[self.i : end]
                self.i = end + 1
                if (line.lstrip("\t") if redir.op == "<<-" else line) == redir.delimiter:
                    break
                lines.append(line)
            redir.heredoc = "\n".join(lines)
        self.pending_heredocs = []

    # ---- words ---------------------------------------------------------------------------------
    def _read_word(self, stops: frozenset[str] = _METACHARS) -> Word:
        src, b = self.src, _WordBuilder(self.i)
        if src.startswith(("<(", ">("), self.i):
            inner, self.i = self.read_subst(self.i + 2)
            b.subs.append(inner)
            b.dynamic = True
            b.text.append(src[b.raw_start : self.i])
        while self.i < len(src) and src[self.i] not in stops:
            self._read_unit(b, src[self.i])
        text = "".join(b.text)
        return Word(
            raw=src[b.raw_start : self.i], text=text, dynamic=b.dynamic, glob=b.glob, brace=b.brace,
            tilde=b.tilde, subs=tuple(b.subs), params=tuple(b.params),
        )

    def _read_unit(self, b: _WordBuilder, c: str) -> None:
        src = self.src
        if c == "\\":
            if src.startswith("\\\n", self.i):
                self.i += 2
            else:
                b.text.append(src[self.i + 1 : self.i + 2] or "\\")
                self.i += 2
        elif c == "'":
            close = src.find("'", self.i + 1)
            if close < 0:
                raise ShellSyntaxError("unbalanced single quote")
            b.text.append(src[self.i + 1 : close])
            self.i = close + 1
        elif c == '"' or src.startswith('$"', self.i):
            self.i += 1 if c == '"' else 2
            self._read_double_quoted(b)
        elif src.startswith("$'", self.i):
            b.text.append(self._read_ansi_c())
        elif c == "$":
            self._read_dollar(b)
        elif c == "`":
            inner, end = self.read_backticks(self.i + 1)
            b.subs.append(inner)
            b.dynamic = True
            b.text.append(src[self.i : end])
            self.i = end
        else:
            if c in "*?[":
                b.glob = True
            elif c == "{":
                b.brace_open = True
            elif c in ",." and b.brace_open and (c == "," or src.startswith("..", self.i)):
                b.brace = True
            elif c == "~" and self.i == b.raw_start:
                b.tilde = True
            b.text.append(c)
            self.i += 1

    def _read_double_quoted(self, b: _WordBuilder) -> None:
        src = self.src
        while True:
            if self.i >= len(src):
                raise ShellSyntaxError("unbalanced double quote")
            c = src[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.i + 1 < len(src) and src[self.i + 1] in '$`"\\\n':
                if src[self.i + 1] != "\n":
                    b.text.append(src[self.i + 1])
                self.i += 2
            elif c == "$":
                self._read_dollar(b)
            elif c == "`":
                inner, end = self.read_backticks(self.i + 1)
                b.subs.append(inner)
                b.dynamic = True
                b.text.append(src[self.i : end])
                self.i = end
            else:
                b.text.append(c)
                self.i += 1

    def _read_dollar(self, b: _WordBuilder) -> None:
        src, start = self.src, self.i
        if src.startswith("$((", self.i):
            end = self.skip_arith(self.i + 3)
            b.subs.extend(find_substitutions(src[self.i + 3 : end - 2]))
        elif src.startswith("$(", self.i):
            inner, end = self.read_subst(self.i + 2)
            b.subs.append(inner)
        elif src.startswith("${", self.i):
            end = self._skip_braces(self.i + 2)
            body = src[self.i + 2 : end - 1]
            b.subs.extend(find_substitutions(body))
            if m := re.match(r"[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])", body):
                b.params.append(m.group(1))
        elif m := _PARAM.match(src, self.i + 1):
            end = m.end()
            b.params.append(m.group(0))
        else:  # a lone $ is literal
            b.text.append("$")
            self.i += 1
            return
        b.dynamic = True
        b.text.append(src[start:end])
        self.i = end

    def _read_ansi_c(self) -> str:
        src, i, out = self.src, self.i + 2, []
        while i < len(src) and src[i] != "'":
            if src[i] == "\\" and i + 1 < len(src):
                nxt = src[i + 1]
                if m := re.match(r"x([0-9a-fA-F]{1,2})", src[i + 1 : i + 4]):
                    out.append(chr(int(m.group(1), 16)))
                    i += 1 + len(m.group(0))
                    continue
                if m := re.match(r"[0-7]{1,3}", src[i + 1 : i + 4]):
                    out.append(chr(int(m.group(0), 8)))
                    i += 1 + len(m.group(0))
                    continue
                out.append(_ANSI_C.get(nxt, nxt))
                i += 2
            else:
                out.append(src[i])
                i += 1
        if i >= len(src):
            raise ShellSyntaxError("unbalanced $'...' quote")
        self.i = i + 1
        return "".join(out)

    def _read_conditional(self) -> None:
        """``[[ ... ]]``: inside, ``<``, ``>``, ``&&`` and parentheses are words, not operators."""
        stops = frozenset(" \t\n;")
        while True:
            while self.i < len(self.src) and self.src[self.i] in " \t":
                self.i += 1
            if self.i >= len(self.src) or self.src[self.i] in "\n;":
                raise ShellSyntaxError("unterminated [[ ... ]]")
            word = self._read_word(stops)
            self.tokens.append(word)
            if word.text == "]]":
                self.at_cmd_start = False
                return

    def _read_arith_command(self) -> Word:
        start = self.i
        end = self.skip_arith(self.i + 2)
        self.i = end
        text = self.src[start:end]
        return Word(raw=text, text=text, dynamic=True, subs=tuple(find_substitutions(text[2:-2])))

    # ---- matching closers (shared with find_substitutions) -------------------------------------
    def read_subst(self, pos: int) -> tuple[str, int]:
        """``pos`` is just after ``$(``: the inner source and the index after the closing ``)``."""
        inner = _Lexer(self.src, pos)
        inner.run(nested=True)
        return self.src[pos : inner.i - 1], inner.i

    def read_backticks(self, pos: int) -> tuple[str, int]:
        out, i = [], pos
        while i < len(self.src):
            c = self.src[i]
            if c == "\\" and i + 1 < len(self.src):
                nxt = self.src[i + 1]
                out.append(nxt if nxt in "`$\\" else c + nxt)
                i += 2
            elif c == "`":
                return "".join(out), i + 1
            else:
                out.append(c)
                i += 1
        raise ShellSyntaxError("unbalanced backtick")

    def skip_arith(self, pos: int) -> int:
        depth, i = 2, pos
        while i < len(self.src):
            c = self.src[i]
            depth += {"(": 1, ")": -1}.get(c, 0)
            i += 1
            if depth == 0:
                return i
        raise ShellSyntaxError("unterminated $(( ... ))")

    def _skip_braces(self, pos: int) -> int:
        depth, i, src = 1, pos, self.src
        while i < len(src):
            c = src[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                close = src.find("'", i + 1)
                if close < 0:
                    break
                i = close + 1
                continue
            if c == '"':
                i = self._skip_double_quoted(i + 1)
                continue
            if c == "`":
                _, i = self.read_backticks(i + 1)
                continue
            if src.startswith("$(", i) and not src.startswith("$((", i):
                _, i = self.read_subst(i + 2)
                continue
            depth += {"{": 1, "}": -1}.get(c, 0)
            i += 1
            if depth == 0:
                return i
        raise ShellSyntaxError("unterminated ${ ... }")

    def _skip_double_quoted(self, pos: int) -> int:
        i, src = pos, self.src
        while i < len(src):
            c = src[i]
            if c == "\\":
                i += 2
            elif c == '"':
                return i + 1
            elif src.startswith("$(", i) and not src.startswith("$((", i):
                _, i = self.read_subst(i + 2)
            elif c == "`":
                _, i = self.read_backticks(i + 1)
            else:
                i += 1
        raise ShellSyntaxError("unbalanced double quote")
