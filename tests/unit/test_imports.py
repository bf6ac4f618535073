"""Cold-start hygiene: importing our modules pulls in nothing heavy and has no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str, cwd: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MODELOPS_HOME": str(cwd / "home")},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_training_flow_never_imports_torch_or_transformers(tmp_path: Path) -> None:
    loaded = _modules_after("import flows.training", tmp_path)
    assert "flows.training" in loaded
    assert not {"torch", "transformers", "tokenizers"} & loaded


def test_core_package_import_is_light_and_writes_nothing(tmp_path: Path) -> None:
    loaded = _modules_after(
        "import modelops, modelops.settings, modelops.errors, modelops.data, modelops.api",
        tmp_path,
    )
    heavy = {"prefect", "mlflow", "great_expectations", "sklearn", "torch", "matplotlib"}
    assert not heavy & {m.split(".")[0] for m in loaded}
    assert list(tmp_path.iterdir()) == []  # no MLflow db, no home folder, nothing


def test_skops_loads_without_torch_dask_or_pytest_and_lists_the_same_trusted_types(
    tmp_path: Path,
) -> None:
    """The first import lists scikit-learn's estimators the slow way and keeps the names; the
    next hands them to skops: the same trusted types, the optional packages never imported."""
    code = (
        "from modelops.model_io import import_skops; import_skops()\n"
        "from skops.io import _trusted_types as t\n"
        "print(json.dumps(t.SKLEARN_ESTIMATOR_TYPE_NAMES))"
    )
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import json, sys\n{code}\n"
                "print(json.dumps(sorted(m for m in ('torch', 'dask', 'pytest', 'sklearn.neural_network')"
                " if m in sys.modules)))",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MODELOPS_HOME": str(tmp_path / "home")},
        )
        names, optional = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
        runs.append(names)
        # sklearn.neural_network: imported by the slow listing only, not by the one from the kept names
        assert optional == ([] if runs[1:] else ["sklearn.neural_network"])
    cached = list((tmp_path / "home" / "cache").glob("skops-trusted-*.json"))
    assert len(cached) == 1
    assert runs[0] == runs[1] and "sklearn.linear_model._logistic.LogisticRegression" in runs[0]
