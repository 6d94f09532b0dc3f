"""Shell, read by a maintained grammar (tree-sitter-bash), into the simple commands bash will run.

The rules look at simple commands (``rm -rf x``), so the tree is flattened into one ordered list,
keeping on each command what matters for safety: is it piped, backgrounded, inside a subshell, a
loop, a condition, a function body. Loops and function bodies are kept as ranges so that liveness
rules can see ``while true`` with no ``break`` and a function that calls itself (a fork bomb).

Words are unquoted the way bash unquotes them (``r'm'``, ``"rm"``, ``\\rm`` and ``$'\\x72m'`` are
all ``rm``); what is only known at run time (``$VAR``, ``$(...)``, globs, brace expansion) is
marked, and the sources of command substitutions are kept so that they are checked too.

A tree with an ERROR or MISSING node, or a construct this module does not know, raises
``ShellSyntaxError``: what cannot be read is never fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from policy.tokens import Redir, ShellSyntaxError, Word

_PARSER = Parser(Language(tree_sitter_bash.language()))
_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v"}
_LITERAL = frozenset({"word", "number", "variable_name", "extglob_pattern", "regex", "test_operator",
                      "file_descriptor", "special_variable_name", "heredoc_start"})
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_DECLARATIONS = frozenset({"declaration_command", "unset_command"})
_INPUT_OPS = frozenset({"<", "<<", "<<-", "<<<"})


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


@dataclass(frozen=True)
class _Ctx:
    subshells: tuple[int, ...] = ()
    conditional: bool = False
    function: str | None = None


def parse(src: str) -> Script:
    data = _join_continued_lines(src.encode("utf-8", "surrogateescape"))
    tree = _PARSER.parse(data)
    if tree.root_node.has_error:
        raise ShellSyntaxError(_error_text(tree.root_node, data))
    builder = _Builder(data)
    builder.sequence(tree.root_node, _Ctx())
    return builder.script


def _join_continued_lines(data: bytes) -> bytes:
    """bash removes backslash-newline before it splits words (``r\\<newline>m`` is ``rm``); the
    grammar does not, so remove them first, except where they are literal: single quotes,
    comments and the bodies of quoted here-documents, which the first parse finds."""
    if b"\\\n" not in data:
        return data
    tree = _PARSER.parse(data)
    keep: list[tuple[int, int]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in ("raw_string", "comment", "heredoc_body"):
            keep.append((node.start_byte, node.end_byte))
            continue
        stack.extend(node.children)
    out, i = bytearray(), 0
    while i < len(data):
        if data.startswith(b"\\\n", i) and not any(a <= i < b for a, b in keep):
            i += 2
            continue
        if data[i : i + 1] == b"\\":  # an escaped backslash stays, with what follows it
            out += data[i : i + 2]
            i += 2
            continue
        out += data[i : i + 1]
        i += 1
    return bytes(out)


def _error_text(root: Node, data: bytes) -> str:
    bad = _first_error(root)
    if bad is None:
        return "the shell grammar rejects it"
    line = bad.start_point[0] + 1
    if bad.is_missing:
        return f"'{bad.type}' is missing (line {line})"
    near = data[bad.start_byte : bad.end_byte].decode("utf-8", "replace").strip().splitlines()
    shown = near[0][:30] if near else ""
    return f"syntax error near {shown!r} (line {line})" if shown else f"syntax error at line {line}"


def _first_error(node: Node) -> Node | None:
    if node.is_error or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = _first_error(child)
            if found is not None:
                return found
    return None


class _Builder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.script = Script()
        self.next_id = 0

    def text(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")

    # ---- statements ----------------------------------------------------------------------------
    def sequence(self, parent: Node, ctx: _Ctx, children: list[Node] | None = None) -> None:
        """Statements separated by ; & or newlines (a program, a group, a loop body...)."""
        kids = children if children is not None else list(parent.children)
        for i, node in enumerate(kids):
            if not node.is_named or node.type == "comment":
                continue
            start = len(self.script.commands)
            self.statement(node, ctx)
            made = self.script.commands[start:]
            if not made:
                continue
            sep = self._separator(kids, i)
            if sep == "&":
                for cmd in made:
                    cmd.background = True
            if not made[-1].joined_by:
                made[-1].joined_by = sep

    def _separator(self, kids: list[Node], i: int) -> str:
        nxt = kids[i + 1] if i + 1 < len(kids) else None
        if nxt is not None and not nxt.is_named and nxt.type in (";", "&", ";;", ";&", ";;&"):
            return nxt.type
        following = next((k for k in kids[i + 1 :] if k.is_named and k.type != "comment"), None)
        if following is not None and b"\n" in self.data[kids[i].end_byte : following.start_byte]:
            return "\n"
        return ""

    def statement(self, node: Node, ctx: _Ctx) -> None:
        kind = node.type
        if kind == "command":
            self._command(node, ctx)
        elif kind in _DECLARATIONS:
            self._declaration(node, ctx)
        elif kind in ("variable_assignment", "variable_assignments"):
            cmd = self._new(ctx)
            for assign in [node] if kind == "variable_assignment" else node.named_children:
                cmd.assigns.extend(self._assignment(assign))
        elif kind == "redirected_statement":
            self._redirected(node, ctx)
        elif kind == "pipeline":
            self._pipeline(self._pipeline_elements(node), ctx)
        elif kind == "list":
            self._list(node, ctx)
        elif kind == "negated_command":
            for child in node.named_children:
                self.statement(child, ctx)
        elif kind == "subshell":
            self.next_id += 1
            self.sequence(node, _Ctx((*ctx.subshells, self.next_id), ctx.conditional, ctx.function))
        elif kind == "compound_statement":
            self._compound(node, ctx)
        elif kind == "if_statement":
            self._if(node, _Ctx(ctx.subshells, True, ctx.function))
        elif kind == "while_statement":
            self._while(node, ctx)
        elif kind in ("for_statement", "c_style_for_statement"):
            self._for(node, ctx)
        elif kind == "case_statement":
            self._case(node, ctx)
        elif kind == "function_definition":
            self._function(node, ctx)
        elif kind == "test_command":
            self._new(ctx).words.extend(self._test_words(node))
        else:
            raise ShellSyntaxError(f"the shell construct '{kind}' is not one the rules can read")

    def _new(self, ctx: _Ctx) -> SimpleCommand:
        index = len(self.script.commands)
        cmd = SimpleCommand(
            words=[], assigns=[], redirects=[], index=index, subshells=ctx.subshells,
            conditional=ctx.conditional or ctx.function is not None, function=ctx.function, pipeline=index,
        )
        self.script.commands.append(cmd)
        return cmd

    def _command(self, node: Node, ctx: _Ctx) -> SimpleCommand:
        cmd = self._new(ctx)
        for child in node.children:
            if not child.is_named:
                continue
            if child.type == "variable_assignment" and not cmd.words:
                cmd.assigns.extend(self._assignment(child))
            elif child.type == "command_name":
                cmd.words.extend(self.word(c) for c in child.named_children)
            elif child.type in _REDIRECTS:
                self._redirect(child, cmd, ctx)
            elif child.type == "subshell":  # `cmd (x)` is not bash: refuse rather than guess
                raise ShellSyntaxError("unexpected '(' after a command")
            else:
                cmd.words.append(self.word(child))
        return cmd

    def _declaration(self, node: Node, ctx: _Ctx) -> None:
        cmd = self._new(ctx)
        for child in node.children:
            if not child.is_named:
                if child.type not in ("(", ")"):
                    cmd.words.append(Word(child.type, child.type))
                continue
            if child.type == "variable_assignment":
                cmd.words.extend(self._assignment(child))
            elif child.type in _REDIRECTS:
                self._redirect(child, cmd, ctx)
            else:
                cmd.words.append(self.word(child))

    def _assignment(self, node: Node) -> list[Word]:
        """``FOO=1`` is one word; ``a=(x "$y" $(z))`` is ``a=`` and the elements."""
        value = node.child_by_field_name("value")
        if value is not None and value.type == "array":
            head = self.text(node)[: value.start_byte - node.start_byte]
            return [Word(head, head), *(self.word(e) for e in value.named_children if e.type != "comment")]
        return [self.word(node)]

    def _redirected(self, node: Node, ctx: _Ctx) -> None:
        body = node.child_by_field_name("body")
        redirects = [c for c in node.children if c.type in _REDIRECTS]
        if body is None:  # a redirection alone: `> file`
            cmd = self._new(ctx)
            for r in redirects:
                self._redirect(r, cmd, ctx)
            return
        start = len(self.script.commands)
        self.statement(body, ctx)
        made = self.script.commands[start:]
        simple = body.type in ("command", *_DECLARATIONS, "variable_assignment", "variable_assignments")
        # `a | b > out`, `a && b > out`: the grammar hangs the redirection on the whole pipeline or
        # list, bash on its last simple command.
        last = self._last_simple(body)
        if made and (simple or last):
            target = made[-1]
            for r in redirects:
                self._redirect(r, target, ctx)
            return
        group = self._new(ctx)
        group.group_redirect = True
        for r in redirects:
            self._redirect(r, group, ctx)
        if any(r.op in _INPUT_OPS for r in group.redirects):
            for loop in self.script.loops:
                if loop.start == start and loop.end == len(self.script.commands) - 1:
                    loop.stdin_redirected = True

    @staticmethod
    def _last_simple(body: Node) -> bool:
        node = body
        while node.type in ("pipeline", "list"):
            named = [c for c in node.named_children if c.type != "comment"]
            if not named:
                return False
            node = named[-1]
        return node is not body and node.type == "command"

    def _pipeline_elements(self, node: Node) -> list[Node]:
        out: list[Node] = []
        for child in node.named_children:
            if child.type == "pipeline":
                out.extend(self._pipeline_elements(child))
            elif child.type != "comment":
                out.append(child)
        return out

    def _pipeline(self, elements: list[Node], ctx: _Ctx, first: SimpleCommand | None = None) -> None:
        """Elements joined by ``|``; ``first``: a command already made that feeds the first element."""
        pipeline_id = first.pipeline if first is not None else len(self.script.commands)
        previous: list[SimpleCommand] = [first] if first is not None else []
        for element in elements:
            start = len(self.script.commands)
            self.statement(element, ctx)
            made = self.script.commands[start:]
            if not made:
                continue
            if previous:
                for cmd in previous:
                    cmd.pipe_out = True
                previous[-1].joined_by = previous[-1].joined_by or "|"
                made[0].pipe_in = True
            for cmd in made:
                cmd.pipeline = pipeline_id
            previous = made

    def _list(self, node: Node, ctx: _Ctx) -> None:
        kids = list(node.children)
        for i, child in enumerate(kids):
            if not child.is_named or child.type == "comment":
                continue
            start = len(self.script.commands)
            self.statement(child, ctx)
            made = self.script.commands[start:]
            op = kids[i + 1].type if i + 1 < len(kids) and kids[i + 1].type in ("&&", "||") else ""
            if made and op and not made[-1].joined_by:
                made[-1].joined_by = op

    def _compound(self, node: Node, ctx: _Ctx) -> None:
        first = node.children[0] if node.children else None
        if first is not None and first.type == "((":  # (( arithmetic )): only its substitutions run
            raw = self.text(node)
            self._new(ctx).words.append(Word(raw, raw, dynamic=True, subs=tuple(self._subs_in(node))))
            return
        self.sequence(node, ctx)

    def _if(self, node: Node, ctx: _Ctx) -> None:
        body: list[Node] = []
        for child in node.children:
            if child.type in ("elif_clause", "else_clause"):
                self.sequence(child, ctx)
            else:
                body.append(child)
        self.sequence(node, ctx, body)

    def _while(self, node: Node, ctx: _Ctx) -> None:
        kind = node.children[0].type  # while or until
        inner = _Ctx(ctx.subshells, True, ctx.function)
        loop = Loop(kind=kind, start=len(self.script.commands))
        cond = [c for c in node.children if node.field_name_for_child(_index(node, c)) == "condition"]
        self.sequence(node, inner, cond)
        loop.cond_end = len(self.script.commands)
        body = node.child_by_field_name("body")
        if body is not None:
            self.sequence(body, inner)
        loop.end = len(self.script.commands)
        self.script.loops.append(loop)

    def _for(self, node: Node, ctx: _Ctx) -> None:
        kind = node.children[0].type  # for or select
        inner = _Ctx(ctx.subshells, True, ctx.function)
        loop = Loop(kind=kind, start=len(self.script.commands))
        body = node.child_by_field_name("body")
        header_nodes = [c for c in node.children[1:] if c != body and c.type not in (";", "\n", "do", "done")]
        if node.type == "c_style_for_statement":
            end = body.start_byte if body is not None else node.end_byte
            raw = self.data[node.children[1].start_byte : end].decode("utf-8", "surrogateescape").rstrip(" ;\n")
            header = [Word(raw, raw, dynamic=True, subs=tuple(self._subs_in(node, stop=body)))]
        else:
            header = [self.word(c) if c.is_named else Word(c.type, c.type) for c in header_nodes]
        loop.header = " ".join(w.raw for w in header)
        cmd = self._new(inner)
        cmd.words = [Word(kind, kind), *header]
        cmd.joined_by = ";"
        loop.cond_end = len(self.script.commands)
        if body is not None:
            self.sequence(body, inner) if body.type == "do_group" else self.statement(body, inner)
        loop.end = len(self.script.commands)
        self.script.loops.append(loop)

    def _case(self, node: Node, ctx: _Ctx) -> None:
        inner = _Ctx(ctx.subshells, True, ctx.function)
        value = node.child_by_field_name("value")
        cmd = self._new(inner)
        cmd.words = [Word("case", "case"), *([self.word(value)] if value is not None else []), Word("in", "in")]
        cmd.joined_by = ";"
        for item in node.named_children:
            if item.type != "case_item":
                continue
            # the patterns are matched, never run; the statements after ')' run
            kids = list(item.children)
            close = next((i for i, c in enumerate(kids) if c.type == ")"), -1)
            self.sequence(item, inner, kids[close + 1 :])

    def _function(self, node: Node, ctx: _Ctx) -> None:
        name_node = node.child_by_field_name("name")
        name = self.text(name_node) if name_node is not None else ""
        body = node.child_by_field_name("body")
        start = len(self.script.commands)
        if body is not None:
            self.statement(body, _Ctx(ctx.subshells, True, name))
        self.script.functions[name] = (start, len(self.script.commands))

    def _test_words(self, node: Node) -> list[Word]:
        words = [Word(node.children[0].type, node.children[0].type)]
        stack = list(reversed(node.named_children))
        while stack:
            child = stack.pop()
            if child.type in ("binary_expression", "unary_expression", "parenthesized_expression",
                              "negated_expression", "ternary_expression", "postfix_expression"):
                stack.extend(reversed(child.children))
            elif child.is_named:
                words.append(self.word(child))
            elif child.type not in ("(", ")"):
                words.append(Word(child.type, child.type))
        closing = node.children[-1].type
        words.append(Word(closing, closing))
        return words

    # ---- redirections --------------------------------------------------------------------------
    def _redirect(self, node: Node, cmd: SimpleCommand, ctx: _Ctx) -> None:
        fd_node = node.child_by_field_name("descriptor")
        fd = self.text(fd_node) if fd_node is not None else None
        op = next((c.type for c in node.children if not c.is_named), "")
        if node.type == "file_redirect":
            dest = [c for c in node.children if node.field_name_for_child(_index(node, c)) == "destination"]
            if len(dest) != 1:
                raise ShellSyntaxError(f"redirection {op} has no single target")
            cmd.redirects.append(Redir(op=op, fd=fd, target=self.word(dest[0])))
        elif node.type == "herestring_redirect":
            target = next((c for c in node.named_children if c.type != "file_descriptor"), None)
            if target is None:
                raise ShellSyntaxError("here-string <<< has no word")
            cmd.redirects.append(Redir(op="<<<", fd=fd, target=self.word(target)))
        else:
            self._heredoc(node, cmd, ctx, op, fd)

    def _heredoc(self, node: Node, cmd: SimpleCommand, ctx: _Ctx, op: str, fd: str | None) -> None:
        start = next((c for c in node.children if c.type == "heredoc_start"), None)
        body = next((c for c in node.children if c.type == "heredoc_body"), None)
        if start is None:
            raise ShellSyntaxError("here-document without a delimiter")
        raw_delim = self.text(start)
        delimiter = self.word(start).text if any(q in raw_delim for q in "'\"\\") else raw_delim
        delimiter = delimiter.replace("'", "").replace('"', "").replace("\\", "")
        expands = not any(q in raw_delim for q in "'\"\\")
        text = self.text(body) if body is not None else ""
        text = text[:-1] if text.endswith("\n") else text
        subs = tuple(self._subs_in(body)) if body is not None and expands else ()
        redir = Redir(op=op, fd=fd, target=Word(raw_delim, delimiter), heredoc=text, heredoc_expands=expands,
                      delimiter=delimiter, heredoc_subs=subs)
        cmd.redirects.append(redir)
        # What follows the delimiter on its line hangs inside this node: `<<EOF > f`, `| sh`, `&& x`
        kids = list(node.children)
        for i, child in enumerate(kids):
            if child.type == "file_redirect":
                self._redirect(child, cmd, ctx)
            elif child.type == "pipeline":
                self._pipeline(self._pipeline_elements(child), ctx, first=cmd)
            elif child.type in ("&&", "||") and i + 1 < len(kids):
                cmd.joined_by = child.type
                self.statement(kids[i + 1], ctx)

    # ---- words ---------------------------------------------------------------------------------
    def word(self, node: Node) -> Word:
        b = _WordBuilder()
        self._unit(node, b)
        return Word(
            raw=self.text(node), text="".join(b.text), dynamic=b.dynamic, glob=b.glob, brace=b.brace,
            tilde=b.tilde, subs=tuple(b.subs), params=tuple(b.params),
        )

    def _unit(self, node: Node, b: _WordBuilder) -> None:
        kind, raw = node.type, self.text(node)
        if kind in _LITERAL:
            self._literal(raw, b)
        elif kind == "raw_string":
            b.add(raw[1:-1])
        elif kind == "ansi_c_string":
            b.add(_ansi_c(raw[2:-1]))
        elif kind in ("string", "translated_string"):
            self._quoted(node, b)
        elif kind == "simple_expansion":
            b.dynamic = True
            b.add(raw)
            b.params.append(raw[1:])
        elif kind == "expansion":
            b.dynamic = True
            b.add(raw)
            if m := re.match(r"[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])", raw[2:]):
                b.params.append(m.group(1))
            b.subs.extend(self._subs_in(node))
        elif kind == "command_substitution":
            b.dynamic = True
            b.add(raw)
            b.subs.append(_substitution_source(raw))
        elif kind == "process_substitution":
            b.dynamic = True
            b.add(raw)
            b.subs.append(raw[2:-1])
        elif kind == "arithmetic_expansion":
            b.dynamic = True
            b.add(raw)
            b.subs.extend(self._subs_in(node))
        elif kind == "brace_expression":
            b.brace = True
            b.add(raw)
        elif kind in ("concatenation", "variable_assignment"):
            self._pieces(node, b, node.start_byte, node.end_byte)
        elif kind == "array":
            b.add(raw)
            b.subs.extend(self._subs_in(node))
            b.dynamic = b.dynamic or bool(b.subs)
        else:  # anything else is kept as written and treated as known only at run time
            b.dynamic = True
            b.add(raw)
            b.subs.extend(self._subs_in(node))

    def _pieces(self, node: Node, b: _WordBuilder, start: int, end: int, quoted: bool = False) -> None:
        """The children of a word, with the text between them (``=`` in FOO=1) as literal text."""
        pos = start
        for child in node.children:
            if child.start_byte > pos:
                gap = self.data[pos : child.start_byte].decode("utf-8", "surrogateescape")
                b.add(_unescape_double(gap)) if quoted else self._literal(gap, b)
            if child.start_byte >= pos and child.end_byte <= end:
                if quoted and child.type == "string_content":
                    b.add(_unescape_double(self.text(child)))
                elif quoted and not child.is_named:
                    pass  # the quotes themselves
                else:
                    self._unit(child, b) if child.is_named else self._literal(self.text(child), b)
            pos = max(pos, child.end_byte)
        if end > pos:
            tail = self.data[pos:end].decode("utf-8", "surrogateescape")
            b.add(_unescape_double(tail)) if quoted else self._literal(tail, b)

    def _quoted(self, node: Node, b: _WordBuilder) -> None:
        first = node.children[0] if node.children else None
        opening = first.end_byte if first is not None and not first.is_named else node.start_byte
        last = node.children[-1] if node.children else None
        closing = last.start_byte if last is not None and not last.is_named and last != first else node.end_byte
        inner = [c for c in node.children if c not in (first, last) or c.is_named]
        pos = opening
        for child in inner:
            if child.start_byte > pos:
                b.add(_unescape_double(self.data[pos : child.start_byte].decode("utf-8", "surrogateescape")))
            if child.type == "string_content":
                b.add(_unescape_double(self.text(child)))
            elif child.is_named:
                self._unit(child, b)
            pos = child.end_byte
        if closing > pos:
            b.add(_unescape_double(self.data[pos:closing].decode("utf-8", "surrogateescape")))
        b.started = True

    def _literal(self, raw: str, b: _WordBuilder) -> None:
        """Unquoted text: backslashes escape, ``* ? [`` glob, ``{a,b}`` expands, a leading ``~`` is home."""
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                if raw.startswith("\\\n", i):
                    i += 2
                    continue
                b.add(raw[i + 1 : i + 2] or "\\")
                i += 2
                continue
            if c in "*?[":
                b.glob = True
            elif c == "{":
                b.brace_open = True
            elif c in ",." and b.brace_open and (c == "," or raw.startswith("..", i)):
                b.brace = True
            elif c == "~" and not b.started:
                b.tilde = True
            b.add(c)
            i += 1

    def _subs_in(self, node: Node | None, stop: Node | None = None) -> list[str]:
        """Sources of the command substitutions anywhere below ``node`` (not below ``stop``)."""
        if node is None:
            return []
        found: list[str] = []
        stack = [node]
        while stack:
            n = stack.pop()
            if n == stop:
                continue
            if n.type == "command_substitution":
                found.append(_substitution_source(self.text(n)))
                continue
            if n.type == "process_substitution":
                found.append(self.text(n)[2:-1])
                continue
            stack.extend(reversed(n.children))
        return found


@dataclass
class _WordBuilder:
    text: list[str] = field(default_factory=list)
    dynamic: bool = False
    glob: bool = False
    brace_open: bool = False
    brace: bool = False
    tilde: bool = False
    started: bool = False
    subs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    def add(self, piece: str) -> None:
        if piece:
            self.text.append(piece)
            self.started = True


def _index(parent: Node, child: Node) -> int:
    for i, c in enumerate(parent.children):
        if c == child:
            return i
    return -1


def _substitution_source(raw: str) -> str:
    if raw.startswith("$("):
        return raw[2:-1]
    inner, out, i = raw[1:-1], [], 0  # `...`: backslash escapes only ` $ and backslash
    while i < len(inner):
        if inner[i] == "\\" and i + 1 < len(inner) and inner[i + 1] in "`$\\":
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(inner[i])
            i += 1
    return "".join(out)


def _unescape_double(text: str) -> str:
    """Inside double quotes a backslash escapes only $ ` " \\ and newline."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ansi_c(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if m := re.match(r"x([0-9a-fA-F]{1,2})", body[i + 1 : i + 4]):
                out.append(chr(int(m.group(1), 16)))
                i += 1 + len(m.group(0))
                continue
            if m := re.match(r"[0-7]{1,3}", body[i + 1 : i + 4]):
                out.append(chr(int(m.group(0), 8)))
                i += 1 + len(m.group(0))
                continue
            out.append(_ANSI_C.get(nxt, nxt))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)
