"""The names module holds only what product code uses: a naming rule nobody calls drifts from
the one that is called (``dns_label`` did, beside ``model_stem``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_function_of_the_names_module_is_used() -> None:
    source = ROOT / "modelops" / "naming.py"
    public = [
        node.name
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    ]
    product = [
        p.read_text()
        for folder in ("modelops", "tasks", "flows")
        for p in (ROOT / folder).rglob("*.py")
        if p != source
    ]
    unused = [
        name for name in public if not any(re.search(rf"\b{name}\b", text) for text in product)
    ]
    assert unused == []
