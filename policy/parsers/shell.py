"""Shell, read by a maintained grammar (tree-sitter-bash), into the simple commands bash will run.

The rules look at simple commands (``rm -rf x``), so the tree is flattened into one ordered list,
keeping on each command what matters for safety: is it piped, backgrounded, inside a subshell, a
loop, a condition, a function body. Loops and function bodies are kept as ranges so that liveness
rules can see ``while true`` with no ``break`` and a function that calls itself (a fork bomb).

This module walks the statements; words are read by ``shell_words`` (unquoted the way bash
unquotes them, what is only known at run time marked), redirections by ``shell_redirects``, and
the source is prepared and its errors described by ``shell_source``. Wrappers (``sudo``, ``env``,
``xargs``...) are undone later, by the walker (``policy.commands``, ``policy.interpreters``).

A tree with an ERROR or MISSING node, or a construct this module does not know, raises
``ShellSyntaxError``: what cannot be read is never fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tree_sitter import Node

from policy.parsers.shell_redirects import INPUT_OPS, REDIRECTS, read_redirect
from policy.parsers.shell_source import PARSER, error_text, join_continued_lines
from policy.parsers.shell_words import WordReader
from policy.tokens import Redir, ShellSyntaxError, Word

_DECLARATIONS = frozenset({"declaration_command", "unset_command"})
_SEPARATORS = frozenset({";", "&", ";;", ";&", ";;&", "&&", "||"})


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
    data = join_continued_lines(src.encode("utf-8", "surrogateescape"))
    tree = PARSER.parse(data)
    if tree.root_node.has_error:
        raise ShellSyntaxError(error_text(tree.root_node, data))
    builder = _Builder(data)
    builder.sequence(tree.root_node, _Ctx())
    return builder.script


class _Builder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = WordReader(data)
        self.script = Script()
        self.next_id = 0

    # ---- statements ----------------------------------------------------------------------------
    def sequence(self, parent: Node, ctx: _Ctx, children: list[Node] | None = None) -> None:
        """Statements separated by ; & && || or newlines (a program, a list, a group, a loop body...)."""
        kids = children if children is not None else list(parent.children)
        for i, node in enumerate(kids):
            if not node.is_named or node.type == "comment":
                continue
            made = self._made(node, ctx)
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
        if nxt is not None and not nxt.is_named and nxt.type in _SEPARATORS:
            return nxt.type
        following = next((k for k in kids[i + 1 :] if k.is_named and k.type != "comment"), None)
        if following is not None and b"\n" in self.data[kids[i].end_byte : following.start_byte]:
            return "\n"
        return ""

    def _made(self, node: Node, ctx: _Ctx) -> list[SimpleCommand]:
        """The statement's simple commands, in order."""
        start = len(self.script.commands)
        self.statement(node, ctx)
        return self.script.commands[start:]

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
        elif kind == "list":  # a && b || c
            self.sequence(node, ctx)
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
                cmd.words.extend(self.read.word(c) for c in child.named_children)
            elif child.type in REDIRECTS:
                self._redirect(child, cmd, ctx)
            elif child.type == "subshell":  # `cmd (x)` is not bash: refuse rather than guess
                raise ShellSyntaxError("unexpected '(' after a command")
            else:
                cmd.words.append(self.read.word(child))
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
            elif child.type in REDIRECTS:
                self._redirect(child, cmd, ctx)
            else:
                cmd.words.append(self.read.word(child))

    def _assignment(self, node: Node) -> list[Word]:
        """``FOO=1`` is one word; ``a=(x "$y" $(z))`` is ``a=`` and the elements."""
        value = node.child_by_field_name("value")
        if value is not None and value.type == "array":
            head = self.read.text(node)[: value.start_byte - node.start_byte]
            return [Word(head, head), *(self.read.word(e) for e in value.named_children if e.type != "comment")]
        return [self.read.word(node)]

    def _redirected(self, node: Node, ctx: _Ctx) -> None:
        body = node.child_by_field_name("body")
        redirects = [c for c in node.children if c.type in REDIRECTS]
        if body is None:  # a redirection alone: `> file`
            cmd = self._new(ctx)
            for r in redirects:
                self._redirect(r, cmd, ctx)
            return
        start = len(self.script.commands)
        made = self._made(body, ctx)
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
        for r in redirects:
            self._redirect(r, group, ctx)
        if any(r.op in INPUT_OPS for r in group.redirects):
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
            made = self._made(element, ctx)
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

    def _compound(self, node: Node, ctx: _Ctx) -> None:
        first = node.children[0] if node.children else None
        if first is not None and first.type == "((":  # (( arithmetic )): only its substitutions run
            raw = self.read.text(node)
            self._new(ctx).words.append(Word(raw, raw, dynamic=True, subs=tuple(self.read.subs_in(node))))
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
        cond = node.children_by_field_name("condition")
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
            header = [Word(raw, raw, dynamic=True, subs=tuple(self.read.subs_in(node, stop=body)))]
        else:
            header = [self.read.word(c) if c.is_named else Word(c.type, c.type) for c in header_nodes]
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
        cmd.words = [Word("case", "case"), *([self.read.word(value)] if value is not None else []), Word("in", "in")]
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
        name = self.read.text(name_node) if name_node is not None else ""
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
                words.append(self.read.word(child))
            elif child.type not in ("(", ")"):
                words.append(Word(child.type, child.type))
        closing = node.children[-1].type
        words.append(Word(closing, closing))
        return words

    # ---- redirections --------------------------------------------------------------------------
    def _redirect(self, node: Node, cmd: SimpleCommand, ctx: _Ctx) -> None:
        cmd.redirects.append(read_redirect(node, self.read))
        if node.type != "heredoc_redirect":
            return
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
