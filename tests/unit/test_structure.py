"""The layout's rules, checked: what may import what, what ships, what is public."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(folder: str) -> dict[str, set[str]]:
    """Top-level names each module under ``folder`` imports, anywhere in the file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("modelops", {"prefect", "prefect_kubernetes", "prefect_dask", "tasks", "flows"}),
        ("tasks", {"flows"}),
    ],
)
def test_layers_only_import_downwards(folder: str, forbidden: set[str]) -> None:
    offenders = {path: sorted(names & forbidden) for path, names in _imports(folder).items()}
    assert {p: n for p, n in offenders.items() if n} == {}, (
        "modelops/ is the core (no Prefect, no tasks, no flows); tasks/ never imports flows/"
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
