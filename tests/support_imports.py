"""Every import in modelops/, tasks/ and flows/, read from the source: the one scanner that
both the layering test and the import-cycle test use, so the two cannot disagree on what an
import is.

It sees ``import`` and ``from ... import`` statements wherever they are (module level, inside
functions, under ``if TYPE_CHECKING:``), relative imports resolved to absolute names, and
calls of ``importlib.import_module`` / ``import_module`` / ``__import__`` with a literal name
(under whatever name the file bound them). A dynamic import whose name is computed is listed
apart (:func:`computed_imports`), so a test can say where those are allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("modelops", "tasks", "flows")


@dataclass(frozen=True)
class Import:
    """One import: who imports what (an absolute dotted name), where."""

    module: str  # the importing module, e.g. "modelops.cli.commands"
    target: str  # the imported module: the deepest module of ours it names, else as written
    line: int
    main_block: bool  # inside ``if __name__ == "__main__":`` (runs only as a script)

    @property
    def importer(self) -> str:
        """The module graph's node for the importing code: a ``__main__`` block is a program
        of its own (``python -m flows.training`` runs it as module ``__main__``, a different
        module object from ``flows.training``), so it gets a node of its own."""
        return f"{self.module}:__main__" if self.main_block else self.module


def modules(root: Path = ROOT, tops: Iterable[str] = TOPS) -> dict[str, Path]:
    """Our modules by dotted name (a package by its own name, from its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_main_guard(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and len(node.test.comparators) == 1
        and isinstance(node.test.comparators[0], ast.Constant)
        and node.test.comparators[0].value == "__main__"
    )


def _walk(node: ast.AST, in_main: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it sits in the body of a ``__main__`` guard."""
    yield node, in_main
    for field, value in ast.iter_fields(node):
        children = value if isinstance(value, list) else [value]
        inside = in_main or (_is_main_guard(node) and field == "body")
        for child in children:
            if isinstance(child, ast.AST):
                yield from _walk(child, inside)


def _absolute(package: str, level: int, name: str | None) -> str:
    """``from .name import`` (``level`` dots) as an absolute name, seen from ``package``."""
    if not level:
        return name or ""
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        raise ImportError(f"relative import beyond the top level from {package!r}")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _ours(name: str, known: Collection[str]) -> str:
    """The deepest module of ours that ``name`` names (``modelops.cli.main`` → ``modelops.cli``
    if main is not a module), or ``name`` itself when it is none of ours."""
    probe = name
    while probe:
        if probe in known:
            return probe
        probe = probe.rpartition(".")[0]
    return name


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def scan_source(
    text: str, module: str, *, is_package: bool = False, known: Collection[str] = frozenset()
) -> tuple[list[Import], list[int]]:
    """The imports of one module's source, and the lines of dynamic imports with a computed
    name. ``known`` names our modules (to resolve ``from pkg import sub`` to the submodule)."""
    tree = ast.parse(text, module)
    package = module if is_package else module.rpartition(".")[0]
    # Names this file bound to importlib and to its import functions.
    importlib_names = {"importlib"}
    function_names = {"__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            importlib_names |= {a.asname or a.name for a in node.names if a.name == "importlib"}
        elif isinstance(node, ast.ImportFrom) and node.module in ("importlib", "builtins"):
            function_names |= {
                a.asname or a.name for a in node.names if a.name in ("import_module", "__import__")
            }
        elif isinstance(node, ast.Import) and any(a.name == "builtins" for a in node.names):
            importlib_names.add("builtins")

    found: list[Import] = []
    computed: list[int] = []

    def add(target: str, node: ast.AST, main: bool) -> None:
        resolved = _ours(target, known)
        line = getattr(node, "lineno", 0)
        found.append(Import(module, resolved, line, main))
        # Importing a.b.c runs a/__init__ and a/b/__init__ first: they are dependencies too,
        # unless they are the importer's own ancestors (initialised before it anyway).
        parts = resolved.split(".")
        for i in range(1, len(parts)):
            ancestor = ".".join(parts[:i])
            if ancestor in known and not (module + ".").startswith(ancestor + "."):
                found.append(Import(module, ancestor, line, main))

    for node, main in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, main)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if alias.name == "*" or sub not in known:
                    add(base, node, main)  # a name defined by the package (or module) itself
                    continue
                add(sub, node, main)  # ``from pkg import sub``: the submodule (and pkg's __init__)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                dynamic = func.id in function_names
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                dynamic = func.value.id in importlib_names and func.attr in (
                    "import_module",
                    "__import__",
                )
            else:
                dynamic = False
            if not dynamic:
                continue
            name = _literal(node.args[0]) if node.args else _literal(_keyword(node, "name"))
            if name is None:
                computed.append(node.lineno)
                continue
            if name.startswith("."):
                anchor = _keyword(node, "package")
                where = _literal(anchor) or (package if anchor is not None else "")
                dots = len(name) - len(name.lstrip("."))
                name = _absolute(where, dots, name.lstrip(".") or None)
            add(name, node, main)
    return found, computed


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def scan(root: Path = ROOT, tops: Iterable[str] = TOPS) -> list[Import]:
    """Every import of every module under ``tops``."""
    known = modules(root, tops)
    found: list[Import] = []
    for module, path in known.items():
        found += scan_source(
            path.read_text(), module, is_package=path.name == "__init__.py", known=known
        )[0]
    return found


def computed_imports(root: Path = ROOT, tops: Iterable[str] = TOPS) -> dict[str, list[int]]:
    """Modules that import a module whose name is computed at run time, with the lines."""
    known = modules(root, tops)
    out: dict[str, list[int]] = {}
    for module, path in known.items():
        lines = scan_source(
            path.read_text(), module, is_package=path.name == "__init__.py", known=known
        )[1]
        if lines:
            out[module] = lines
    return out


def graph(imports: Iterable[Import], known: Iterable[str]) -> dict[str, set[str]]:
    """The import graph among our modules: node → the modules it imports (ours only)."""
    nodes = set(known)
    edges: dict[str, set[str]] = {n: set() for n in nodes}
    for i in imports:
        if i.target in nodes and i.target != i.module:
            edges.setdefault(i.importer, set()).add(i.target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import each other, directly or round a loop (the strongly
    connected components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return sorted(sorted(group) for group in groups)


def loop_through(group: Iterable[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest loop from the group's first module back to itself, inside the group."""
    group = set(group)
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(edges.get(v, set()) & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    following.append(w)
        frontier = following
    return sorted(group)  # not reached: every module of a group is on a loop
