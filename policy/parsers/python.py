"""Python, read with Python's own ``ast``: what a snippet or a file calls, resolved.

Calls are named by what they reach, not by how they are spelt: ``import shutil as s; s.rmtree``,
``from os import system as run``, ``getattr(shutil, 'rm' + 'tree')``,
``importlib.import_module('urllib.request')`` and ``__import__('os').system`` all resolve to the
module function. Strings are folded where the code builds them from constants (``+``, ``%``,
f-strings, ``''.join``, ``bytes.fromhex``, ``base64.b64decode``, ``codecs.decode(..., 'rot13')``,
``chr``, slicing), so ``os.system('r' + 'm -rf .')`` is the command ``rm -rf .``. ``exec`` and
``eval`` of a constant are read as Python too; of anything else they are unknown.

The result is facts (``PyFacts``); ``policy.rules.python_code`` judges them.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import shlex
import threading
from dataclasses import dataclass, field

MAX_DEPTH = 3  # exec("exec('...')") nesting read before giving up
MAX_SOURCE = 512 * 1024


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
Value = object  # str | bytes | int | float | list | UNKNOWN

# functions that run a program or a shell command, and whether their first argument is shell code
RUNNERS: dict[str, bool] = {
    "os.system": True, "os.popen": True, "subprocess.getoutput": True, "subprocess.getstatusoutput": True,
    "commands.getoutput": True, "asyncio.create_subprocess_shell": True, "pty.spawn": False,
    "subprocess.run": False, "subprocess.call": False, "subprocess.check_call": False,
    "subprocess.check_output": False, "subprocess.Popen": False, "asyncio.create_subprocess_exec": False,
    "os.execv": False, "os.execve": False, "os.execvp": False, "os.execvpe": False, "os.execl": False,
    "os.execlp": False, "os.execle": False, "os.execlpe": False, "os.spawnv": False, "os.spawnvp": False,
    "os.spawnl": False, "os.spawnlp": False, "os.posix_spawn": False, "os.posix_spawnp": False,
}
_FOLDERS = frozenset({"bytes.fromhex", "base64.b64decode", "base64.b32decode", "base64.b16decode",
                      "base64.urlsafe_b64decode", "base64.decodebytes", "codecs.decode", "binascii.unhexlify",
                      "binascii.a2b_hex", "chr", "str", "os.path.join", "os.path.expanduser", "pathlib.Path",
                      "pathlib.PurePath", "os.fsdecode", "os.getenv", "os.environ.get"})


@dataclass
class PyCall:
    name: str  # resolved dotted name: "os.system", "shutil.rmtree", "open", "Path.write_text"
    args: list[Value]
    kwargs: dict[str, Value]
    line: int
    in_loop: bool = False
    receiver: Value = UNKNOWN  # the folded object of a method call: "x.txt" in Path("x.txt").write_text()


@dataclass
class PyFacts:
    calls: list[PyCall] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)  # every module imported or imported by name
    commands: list[str] = field(default_factory=list)  # shell commands it runs, folded to text
    unknown: list[str] = field(default_factory=list)  # what could not be read: never fine
    env_dumps: list[int] = field(default_factory=list)  # lines that print or serialise os.environ whole
    endless: list[int] = field(default_factory=list)  # `while True` with no way out
    error: str | None = None  # not Python at all


# CPython before 3.11.8 keeps the AST converter's recursion count per interpreter, not per thread
# (gh-106905): a parse on another thread that runs while one converts (a GC callback can switch
# threads) makes it fail with SystemError. Seen here: pytest's own parse failed that way beside a
# worker's. Our parses go one at a time, and a SystemError reads as "cannot read", never a crash.
_AST_LOCK = threading.Lock()
UNREADABLE = (SyntaxError, ValueError, RecursionError, SystemError)


def parse_python(code: str) -> ast.Module:
    """``ast.parse``, one at a time in this process; raises one of ``UNREADABLE``."""
    with _AST_LOCK:
        return ast.parse(code)


def read_python(code: str, depth: int = 0) -> PyFacts:
    facts = PyFacts()
    if len(code) > MAX_SOURCE:
        facts.unknown.append(f"the Python code is too long to read ({len(code)} characters)")
        return facts
    try:
        tree = parse_python(code)
    except UNREADABLE as exc:
        facts.error = f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"
        return facts
    _Reader(facts, depth).run(tree)
    return facts


class _Reader(ast.NodeVisitor):
    def __init__(self, facts: PyFacts, depth: int) -> None:
        self.facts = facts
        self.depth = depth
        self.names: dict[str, str] = {}  # local name -> dotted name it stands for (modules, functions)
        self.values: dict[str, list[Value]] = {}  # local name -> every constant value assigned to it
        self.loops = 0

    def run(self, tree: ast.Module) -> None:
        # two passes: names first (an alias may be defined below a function that uses it)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._import(node)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                self._assign(node)
        self.visit(tree)

    # ---- names ---------------------------------------------------------------------------------
    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.facts.modules.add(alias.name)
                top = alias.name.split(".")[0]
                self.names[alias.asname or top] = alias.name if alias.asname else top
            return
        base = node.module or ""
        self.facts.modules.add(base)
        for alias in node.names:
            if alias.name == "*":
                self.facts.unknown.append(f"`from {base} import *` hides which names it brings")
                continue
            self.facts.modules.add(f"{base}.{alias.name}")
            self.names[alias.asname or alias.name] = f"{base}.{alias.name}"

    def _assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if node.value is None:
            return
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            qual = self.qualname(node.value, quiet=True)
            if qual is not None:
                self.names[target.id] = qual
            else:
                self.values.setdefault(target.id, []).append(self.value(node.value))

    def qualname(self, node: ast.AST, quiet: bool = False) -> str | None:
        """The dotted name an expression stands for, or None."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id, node.id if not quiet or node.id in _BUILTIN_CALLABLES else None)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value, quiet)
            if base is None and quiet:
                return None
            if base is None and isinstance(node.value, ast.Call):
                inner = self.qualname(node.value.func)
                base = f"{inner}()" if inner else "?"
            return f"{base or '?'}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.qualname(node.func)
            if func in ("importlib.import_module", "__import__", "builtins.__import__") and node.args:
                name = self.value(node.args[0])
                if isinstance(name, str):
                    self.facts.modules.add(name)
                    return name
                return None
            if func == "getattr" and len(node.args) >= 2:
                base = self.qualname(node.args[0])
                attr = self.value(node.args[1])
                if base and isinstance(attr, str):
                    return f"{base}.{attr}"
        if isinstance(node, ast.Subscript):  # vars(os)['system'], os.__dict__['system'], globals()['x']
            key = self.value(node.slice)
            holder = node.value
            if isinstance(key, str):
                if isinstance(holder, ast.Attribute) and holder.attr == "__dict__":
                    base = self.qualname(holder.value)
                    return f"{base}.{key}" if base else None
                if isinstance(holder, ast.Call):
                    fname = self.qualname(holder.func)
                    if fname == "vars" and holder.args:
                        base = self.qualname(holder.args[0])
                        return f"{base}.{key}" if base else None
                    if fname in ("globals", "locals"):
                        return self.names.get(key, key)
        return None

    # ---- values --------------------------------------------------------------------------------
    def value(self, node: ast.AST | None) -> Value:
        """The constant an expression folds to, or UNKNOWN."""
        try:
            return self._value(node)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error, OverflowError, LookupError,
                IndexError, KeyError, RecursionError, MemoryError):
            return UNKNOWN

    def _value(self, node: ast.AST | None) -> Value:
        if node is None:
            return UNKNOWN
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = [self._value(v.value) if isinstance(v, ast.FormattedValue) else self._value(v) for v in node.values]
            return "".join(str(p) for p in parts) if all(p is not UNKNOWN for p in parts) else UNKNOWN
        if isinstance(node, ast.List | ast.Tuple):
            return [self._value(e) for e in node.elts]
        if isinstance(node, ast.Name):
            seen = self.values.get(node.id)
            if seen and all(v == seen[0] for v in seen):
                return seen[0]
            return UNKNOWN
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Subscript):
            base, index = self._value(node.value), self._slice(node.slice)
            if isinstance(base, str | bytes | list) and index is not UNKNOWN:
                return base[index]  # type: ignore[index,no-any-return,call-overload]
            return UNKNOWN
        if isinstance(node, ast.Attribute) and self.qualname(node) == "sys.executable":
            return "python"
        if isinstance(node, ast.Call):
            return self._call_value(node)
        return UNKNOWN

    def _slice(self, node: ast.AST) -> object:
        if isinstance(node, ast.Slice):
            parts = [self._value(p) if p is not None else None for p in (node.lower, node.upper, node.step)]
            if any(p is UNKNOWN for p in parts):
                return UNKNOWN
            return slice(*parts)  # type: ignore[arg-type]
        index = self._value(node)
        return index if isinstance(index, int) else UNKNOWN

    def _binop(self, node: ast.BinOp) -> Value:
        left, right = self._value(node.left), self._value(node.right)
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, str | bytes | list):
            return left + right  # type: ignore[operator]
        if isinstance(node.op, ast.Mult) and isinstance(left, str | bytes) and isinstance(right, int) and right < 1000:
            return left * right
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            return left % (tuple(right) if isinstance(right, list) else right)
        if isinstance(node.op, ast.Div) and isinstance(left, str) and isinstance(right, str):
            return f"{left}/{right}"  # pathlib: Path('a') / 'b'
        return UNKNOWN

    def _call_value(self, node: ast.Call) -> Value:
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = self._value(func.value)
            args = [self._value(a) for a in node.args]
            if any(a is UNKNOWN for a in args):
                return UNKNOWN
            if func.attr == "join" and isinstance(owner, str) and args and isinstance(args[0], list):
                return owner.join(str(a) for a in args[0]) if UNKNOWN not in args[0] else UNKNOWN
            if func.attr == "decode" and isinstance(owner, bytes):
                return owner.decode(*[a for a in args if isinstance(a, str)])
            if func.attr == "encode" and isinstance(owner, str):
                return owner.encode()
            if func.attr == "format" and isinstance(owner, str):
                return owner.format(*args)
            if func.attr in ("replace", "strip", "lower", "upper") and isinstance(owner, str):
                return getattr(owner, func.attr)(*args)
            if func.attr == "joinpath" and isinstance(owner, str):
                return "/".join([owner, *(str(a) for a in args)])
            if func.attr in ("expanduser", "resolve", "absolute", "with_name") and isinstance(owner, str) and not args:
                return owner
        name = self.qualname(func)
        if name not in _FOLDERS and name != "home" and not (name or "").endswith("Path.home"):
            return UNKNOWN
        if (name or "").endswith("Path.home"):
            return "~"
        args = [self._value(a) for a in node.args]
        if any(a is UNKNOWN for a in args):
            return UNKNOWN
        first = args[0] if args else ""
        if name == "bytes.fromhex" and isinstance(first, str):
            return bytes.fromhex(first)
        if name in ("binascii.unhexlify", "binascii.a2b_hex") and isinstance(first, str | bytes):
            return binascii.unhexlify(first)
        if name in ("base64.b64decode", "base64.decodebytes", "base64.urlsafe_b64decode") and isinstance(
            first, str | bytes
        ):
            return base64.b64decode(first) if name != "base64.urlsafe_b64decode" else base64.urlsafe_b64decode(first)
        if name == "base64.b32decode" and isinstance(first, str | bytes):
            return base64.b32decode(first)
        if name == "base64.b16decode" and isinstance(first, str | bytes):
            return base64.b16decode(first)
        if name == "codecs.decode" and isinstance(first, str | bytes):
            return codecs.decode(first, *(a for a in args[1:] if isinstance(a, str)))  # type: ignore[call-overload,arg-type]
        if name == "chr" and isinstance(first, int):
            return chr(first)
        if name in ("str", "os.fsdecode"):
            return str(first)
        if name == "os.path.join":
            return "/".join(str(a) for a in args)
        if name in ("os.path.expanduser", "pathlib.Path", "pathlib.PurePath"):
            return "/".join(str(a) for a in args) if args else "."
        if name in ("os.getenv", "os.environ.get") and isinstance(first, str):
            return f"${first}"
        return UNKNOWN

    # ---- the walk ------------------------------------------------------------------------------
    def visit_While(self, node: ast.While) -> None:
        test = self.value(node.test)
        if test not in (UNKNOWN, None, 0, False, "") and not _leaves(node.body):
            self.facts.endless.append(node.lineno)
        self._loop(node)

    def visit_For(self, node: ast.For) -> None:
        self._loop(node)

    def _loop(self, node: ast.While | ast.For) -> None:
        self.loops += 1
        self.generic_visit(node)
        self.loops -= 1

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        if name is None:
            self.facts.unknown.append(f"line {node.lineno}: calls something computed at run time "
                                      f"(`{ast.unparse(node.func)[:60]}`)")
        else:
            call = PyCall(
                name=_canonical(name),
                args=[self.value(a) for a in node.args],
                kwargs={k.arg: self.value(k.value) for k in node.keywords if k.arg},
                line=node.lineno,
                in_loop=self.loops > 0,
                receiver=self.value(node.func.value) if isinstance(node.func, ast.Attribute) else UNKNOWN,
            )
            self.facts.calls.append(call)
            self._special(call, node)
        self.generic_visit(node)

    def _special(self, call: PyCall, node: ast.Call) -> None:
        name = call.name
        if name in ("exec", "eval", "compile", "builtins.exec", "builtins.eval"):
            code = call.args[0] if call.args else UNKNOWN
            if isinstance(code, bytes):
                code = code.decode("utf-8", "replace")
            if isinstance(code, str) and self.depth < MAX_DEPTH:
                inner = read_python(code, self.depth + 1)
                self._merge(inner)
            else:
                self.facts.unknown.append(f"line {call.line}: `{name}` runs code that is only known at run time")
        elif name in ("getattr", "importlib.import_module", "__import__") and call.args:
            if len(call.args) > 1 and name == "getattr" and not isinstance(call.args[1], str):
                self.facts.unknown.append(f"line {call.line}: `getattr` with a name computed at run time")
            elif name != "getattr" and not isinstance(call.args[0], str):
                self.facts.unknown.append(f"line {call.line}: imports a module named at run time")
        elif name in RUNNERS:
            self._runner(call, node)
        if _dumps_environ(self, node):
            self.facts.env_dumps.append(call.line)

    def _runner(self, call: PyCall, node: ast.Call) -> None:
        shell_code = RUNNERS[call.name] or call.kwargs.get("shell") is True
        first = call.args[0] if call.args else call.kwargs.get("args", UNKNOWN)
        if call.name.startswith(("os.exec", "os.spawn", "os.posix_spawn")):
            rest = call.args[1:] if call.name.startswith("os.exec") else call.args[2:]
            argv = rest[0] if rest and isinstance(rest[0], list) else rest
            first = argv if isinstance(argv, list) and argv else UNKNOWN
        if isinstance(first, bytes):
            first = first.decode("utf-8", "replace")
        if isinstance(first, str):
            self.facts.commands.append(first if shell_code else shlex.quote(first))
        elif isinstance(first, list) and first and all(isinstance(a, str) for a in first):
            self.facts.commands.append(" ".join(shlex.quote(str(a)) for a in first))
        else:
            self.facts.unknown.append(
                f"line {call.line}: `{call.name}` runs a command built at run time ({ast.unparse(node)[:60]})"
            )

    def _merge(self, inner: PyFacts) -> None:
        self.facts.calls.extend(inner.calls)
        self.facts.modules |= inner.modules
        self.facts.commands.extend(inner.commands)
        self.facts.unknown.extend(inner.unknown)
        self.facts.env_dumps.extend(inner.env_dumps)
        self.facts.endless.extend(inner.endless)
        if inner.error:
            self.facts.unknown.append(f"`exec` of text that is not Python ({inner.error})")


_BUILTIN_CALLABLES = frozenset({"exec", "eval", "compile", "open", "getattr", "__import__", "print", "input",
                                "vars", "globals", "locals", "chr", "str", "bytes"})
_PRINTERS = frozenset({"print", "json.dumps", "json.dump", "str", "repr", "pprint.pprint", "pprint.pformat",
                       "sys.stdout.write", "sys.stderr.write", "logging.info", "logging.warning", "logging.debug",
                       "logging.error", "yaml.dump", "yaml.safe_dump"})


def _canonical(name: str) -> str:
    """``pathlib.Path('x').write_text`` and friends keep their method name; aliases of builtins too."""
    if name.startswith("builtins."):
        return name[len("builtins.") :]
    return name


def _leaves(body: list[ast.stmt]) -> bool:
    """Can the loop end from inside: break, return, raise, or an exit call anywhere in it."""
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Break | ast.Return | ast.Raise):
            return True
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "quit", "os._exit"):
            return True
    return False


def _dumps_environ(reader: _Reader, node: ast.Call) -> bool:
    """``print(os.environ)``, ``json.dumps(dict(os.environ))``, ``print(os.environ.items())``..."""
    name = reader.qualname(node.func)
    if name not in _PRINTERS:
        return False
    for arg in node.args:
        for sub in ast.walk(arg):
            if isinstance(sub, ast.Attribute | ast.Name) and reader.qualname(sub) == "os.environ":
                parent_is_key = any(isinstance(p, ast.Subscript) and p.value is sub for p in ast.walk(arg))
                getter = any(isinstance(p, ast.Attribute) and p.value is sub and p.attr in ("get", "setdefault")
                             for p in ast.walk(arg))
                if not parent_is_key and not getter:
                    return True
    return False
