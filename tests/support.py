"""Test support shared by tests and benchmarks (importing it changes no environment)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def register_fixture_version(
    name: str = "lead-scoring", good: bool = True, stage: bool = True
) -> str:
    """Register a real sklearn model version fast (no flow) in the store the environment names.

    A "bad" model is trained on shuffled labels: a challenger that must lose.
    """
    import numpy as np

    from modelops import registry
    from modelops.data import resolve_schema
    from modelops.models import log_sklearn_model
    from modelops.sample import make_leads
    from modelops.settings import get_settings
    from modelops.tracking import child_run, start_parent_run
    from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline, split_dataset

    df = make_leads(3000, seed=11)
    if not good:
        df["won"] = np.random.default_rng(0).permutation(df["won"].to_numpy())
    schema = resolve_schema(df, "won", str(ROOT / "modelops/sample_data/leads.csv"))
    split = split_dataset(df, schema)
    model = fit_pipeline(build_pipeline(schema, EstimatorConfig()), split)
    ctx = start_parent_run(get_settings(), "fixture")
    with child_run(ctx, "train_model") as run_id:
        info = log_sklearn_model(
            ctx, run_id, model, split.X_train.head(3),
            metadata={"target": "won", "positive_label": "1"},
        )  # fmt: skip
    client = ctx.client()
    version, _ = registry.register_version(client, name, info.model_id, run_id)
    if stage:
        registry.set_alias_audited(
            client, name, "staging", str(version.version), action="set-staging",
            actor="fixture", reason="fixture",
        )  # fmt: skip
    return str(version.version)
