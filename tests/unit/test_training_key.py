"""The training key: the same inputs give the same digest, anything that shapes the model
changes it, and what never touches fitting does not."""

from __future__ import annotations

import shutil
from pathlib import Path

from modelops import training_key
from modelops.training_key import differences, make_key, source_digest

DATA = {"digest": "496eef62abf2e697", "rows": 5000, "source": "/data/leads.csv"}
PARAMS = {"estimator": {"kind": "logistic_regression", "params": {"C": 1.0}}, "random_seed": 42}


def test_the_same_inputs_give_the_same_key_and_moving_the_file_does_not_change_it() -> None:
    one = make_key("tabular", DATA, PARAMS, ("numpy",))
    two = make_key("tabular", {**DATA, "source": "s3://bucket/leads.csv"}, PARAMS, ("numpy",))
    assert one.digest == two.digest and len(one.digest) == 64 and one.short == one.digest[:12]
    assert one.parts["data"]["source"] == "/data/leads.csv"  # recorded, for reproduce
    assert one.parts["libraries"]["numpy"] != "absent"


def test_data_parameters_kind_and_library_set_each_change_the_key() -> None:
    base = make_key("tabular", DATA, PARAMS, ("numpy",)).digest
    changed = [
        make_key("tabular", {**DATA, "digest": "0" * 16}, PARAMS, ("numpy",)),
        make_key("tabular", DATA, {**PARAMS, "random_seed": 7}, ("numpy",)),
        make_key("tuning", DATA, PARAMS, ("numpy",)),
        make_key("tabular", DATA, PARAMS, ("numpy", "scikit-learn")),
    ]
    assert all(k.digest != base for k in changed)


def test_only_source_that_can_shape_a_model_is_in_the_code_digest(tmp_path: Path) -> None:
    root = Path(training_key.__file__).resolve().parents[1]
    copy = tmp_path / "src"
    for folder in ("modelops", "tasks", "flows"):
        shutil.copytree(root / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(copy)
    (copy / "modelops" / "serving" / "app.py").write_text("# a server change\n", "utf-8")
    assert source_digest(copy) == before
    with open(copy / "modelops" / "training.py", "a", encoding="utf-8") as fh:
        fh.write("\n# a training change\n")
    assert source_digest(copy) != before


def test_differences_name_each_code_and_library_version_that_moved() -> None:
    recorded = {"code": {"commit": "a"}, "libraries": {"numpy": "2.4.6", "torch": "2.13.0"}}
    now = {"code": {"commit": "b"}, "libraries": {"numpy": "2.4.6", "torch": "2.14.0"}}
    assert differences(recorded, now) == [
        "code commit: recorded a, now b",
        "libraries torch: recorded 2.13.0, now 2.14.0",
    ]
