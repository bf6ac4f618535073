"""No import cycles among modelops/, tasks/ and flows/, counting every import the scanner sees
(inside functions, under TYPE_CHECKING, importlib with a literal name): moving an import into
a function hides a cycle from Python's import order, not from this test."""

from __future__ import annotations

import textwrap

from support_imports import cycles, graph, loop_through, modules, scan, scan_source


def test_there_is_no_import_cycle() -> None:
    edges = graph(scan(), modules())
    found = [
        f"{' -> '.join(loop_through(group, edges))} (the cycle's modules: {', '.join(group)})"
        for group in cycles(edges)
    ]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_the_cycle_check_sees_cycles_hidden_in_functions_and_importlib() -> None:
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.main"}
    sources = {
        "pkg.a": "def f():\n    from pkg import b\n",  # a submodule, not the package
        "pkg.b": "import importlib\nX = importlib.import_module('pkg.a')\n",
        "pkg.c": "from importlib import import_module as load\nload('.d', package='pkg')\n",
        "pkg.d": "from . import c\n",
        # A script block is its own program: it may import the module it sits in.
        "pkg.main": "import pkg.a\nif __name__ == '__main__':\n    import pkg.main\n",
    }
    imports = [
        i
        for module, text in sources.items()
        for i in scan_source(textwrap.dedent(text), module, known=known)[0]
    ]
    edges = graph(imports, known)
    assert cycles(edges) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
    assert loop_through(["pkg.a", "pkg.b"], edges) == ["pkg.a", "pkg.b", "pkg.a"]


def test_the_cycle_check_sees_a_cycle_through_a_package_init() -> None:
    """``from pkg.sub.x import y`` runs ``pkg/sub/__init__`` first: a cycle through it fails at
    import time although no module names the package itself."""
    known = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.x"}
    sources = {
        "pkg.a": "from pkg.sub.x import y\n",
        "pkg.sub": "from pkg.a import f\n",
        "pkg.sub.x": "y = 1\n",
    }
    imports = [
        i
        for module, text in sources.items()
        for i in scan_source(textwrap.dedent(text), module, known=known)[0]
    ]
    assert cycles(graph(imports, known)) == [["pkg.a", "pkg.sub"]]
