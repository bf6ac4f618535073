"""The layout's rules, checked: what may import what, what ships, what is public."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest
from support_imports import Import, computed_imports, modules, scan, scan_source

ROOT = Path(__file__).resolve().parents[2]


# The layers, as they must read. Entry points may import everything below them; the Prefect
# layer never imports an entry point (and tasks/ never imports flows/); the core (modelops/
# minus both) imports neither Prefect, nor the Prefect layer, nor an entry point.
# modelops.warmstart is core, not an entry point, although it has a ``python -m`` program: the
# worker (Prefect layer) uses it, and its warm process must not have imported Prefect.
ENTRY_POINTS = ("modelops.cli", "modelops.graphql", "modelops.__main__")
PREFECT_LAYER = ("tasks", "flows", "modelops.orchestration")
PREFECT_LIBRARIES = ("prefect", "prefect_kubernetes", "prefect_dask")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_of(imp: Import) -> str:
    """The layer of the code that makes the import: an ``if __name__ == "__main__":`` block is
    a program (``python -m flows.training``), so it is an entry point wherever it sits."""
    if imp.main_block or _within(imp.module, ENTRY_POINTS):
        return "entry point"
    if _within(imp.module, PREFECT_LAYER):
        return "Prefect layer"
    return "core"


def layer_violations(imports: list[Import]) -> list[str]:
    """One line per import that goes against the layers."""
    out = []
    for imp in imports:
        where, target = layer_of(imp), imp.target
        if where == "core":
            wrong = (
                _within(target, PREFECT_LIBRARIES)
                or _within(target, PREFECT_LAYER)
                or _within(target, ENTRY_POINTS)
            )
        elif where == "Prefect layer":
            wrong = _within(target, ENTRY_POINTS) or (
                _within(imp.module, ("tasks",)) and _within(target, ("flows",))
            )
        else:
            wrong = False
        if wrong:
            out.append(f"{imp.module}:{imp.line} ({where}) imports {target}")
    return out


def test_layers_only_import_downwards() -> None:
    imports = scan()
    assert layer_violations(imports) == [], (
        "the core imports no Prefect, no tasks/flows/modelops.orchestration and no entry "
        "point; the Prefect layer imports no entry point; tasks/ never imports flows/"
    )
    # Each layer is really there: a renamed package would make its rule silently empty.
    seen = {layer_of(i) for i in imports}
    assert seen == {"core", "Prefect layer", "entry point"}
    known = modules()
    assert all(any(_within(m, (top,)) for m in known) for top in ENTRY_POINTS + PREFECT_LAYER)


def test_the_scanner_sees_every_kind_of_import() -> None:
    """The rule is only as good as the scanner: if it stopped seeing one kind of import, the
    layering test would pass on code that breaks the layers."""
    source = textwrap.dedent(
        """
        import importlib
        import importlib as il
        from importlib import import_module
        from importlib import import_module as load
        from . import sibling
        from ..errors import ModelOpsError

        def later():
            import prefect
            from tasks import training
            importlib.import_module("flows.training")
            il.import_module("modelops.orchestration.engine")
            import_module("tasks.data")
            load("prefect_dask")
            __import__("prefect_kubernetes")
            importlib.import_module(".flow_runs", package="modelops.orchestration")
            importlib.import_module(name_from_somewhere)

        if __name__ == "__main__":
            from modelops.cli import run
        """
    )
    known = {"modelops.steps.sibling", "modelops.errors", "tasks.training", "flows.training"}
    found, computed = scan_source(source, "modelops.steps.train", known=known)
    targets = {i.target for i in found if not i.main_block}
    assert {
        "modelops.steps.sibling",
        "modelops.errors",
        "prefect",
        "tasks.training",
        "flows.training",
        "modelops.orchestration.engine",
        "tasks.data",
        "prefect_dask",
        "prefect_kubernetes",
        "modelops.orchestration.flow_runs",
    } <= targets
    assert [source.splitlines()[n - 1].strip() for n in computed] == [
        "importlib.import_module(name_from_somewhere)"
    ]
    main = [i for i in found if i.main_block]
    assert [(i.target, i.importer) for i in main] == [
        ("modelops.cli", "modelops.steps.train:__main__")
    ]
    # Every import in later() but the computed one breaks the core's rule; the module-level
    # ones and the __main__ block do not.
    lines = source.splitlines()
    wrong = {int(v.split(":")[1].split(" ")[0]) for v in layer_violations(found)}
    first = lines.index("def later():") + 2
    assert wrong == set(range(first, first + 8)), [lines[n - 1] for n in sorted(wrong)]


def test_imports_by_a_computed_name_are_only_where_they_are_meant_to_be() -> None:
    """The scanner cannot read a computed module name; these are the places that use one,
    each for a reason, and the core's lazy public API only ever names core modules."""
    import modelops

    assert set(computed_imports()) == {
        "modelops",  # the lazy public API (its names are imported under TYPE_CHECKING too)
        "modelops.cli.options",  # a command's flow, by "module:function" like prefect.yaml
        "modelops.orchestration.engine",  # what a flow will import, while the API starts
        "modelops.warmstart",  # the warm process's preload list
    }
    exported = {m for m in vars(modelops)["_EXPORTS"].values()}
    assert exported and all(not _within(m, PREFECT_LAYER + ENTRY_POINTS) for m in exported), (
        exported
    )


def test_every_package_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("modelops", "tasks", "flows")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add new packages to [tool.setuptools] packages"
    assert config["package-dir"]["modelops.templates"] == "deployments"


def test_public_api_at_the_package_root_is_lazy_and_complete() -> None:
    import modelops
    from modelops import (
        ModelStage,
        get_model_metadata,
        load_production_model,
        promote_model,
    )
    from modelops.api import ModelStage as SeedModelStage
    from modelops.api import promote_model as seed_promote

    assert ModelStage is SeedModelStage and promote_model is seed_promote
    assert callable(get_model_metadata) and callable(load_production_model)
    assert {"ModelStage", "promote_model", "get_model_metadata", "load_production_model"} <= set(
        modelops.__all__
    )
    for name in modelops.__all__:
        assert getattr(modelops, name) is not None, name
    with pytest.raises(AttributeError):
        modelops.no_such_thing  # noqa: B018


def test_the_dockerfile_installs_what_ships_and_runs_the_command_line() -> None:
    """The image cannot be built here (no Docker engine); what it copies and runs can be
    checked: every path it copies exists, it installs the project non-editably, and the
    serving Deployment's command is a program the install provides."""
    import re

    import yaml

    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+) ", text, flags=re.M)
    assert copied and all((ROOT / p).exists() for p in copied), copied
    assert {"modelops", "tasks", "flows", "deployments", "pyproject.toml"} <= set(copied)
    assert re.search(r'pip install "\.\$\{EXTRAS', text) and "-e " not in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    from modelops.k8s.manifests import ServingSpec, render_serving

    spec = ServingSpec(
        model_name="m",
        version="1",
        namespace="ml",
        image="modelops-flows:0.1.0",
        tracking_uri="http://mlflow:5000",
    )
    deployment, _ = render_serving(spec)
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] in scripts and f'"{command[0]}"' in text
    template = yaml.safe_load((ROOT / "deployments/serving/deployment.yaml").read_text())
    mounts = template["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert (
        "MODELOPS_HOME=/var/lib/modelops" in text and mounts[0]["mountPath"] == "/var/lib/modelops"
    )
