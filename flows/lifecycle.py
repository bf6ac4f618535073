"""The `lifecycle` flow: training → gate → registration → staging → promotion → deployment.

Each stage is its own flow run (a subflow), so the Prefect UI shows and retries them one by one,
and a failure stops every stage after it while what came before stays registered and visible.
"""

from __future__ import annotations

from prefect import flow

from flows.deployment import deployment
from flows.promotion import promotion
from flows.training import training
from modelops.params import LifecycleParams, keyword_parameters
from modelops.types import LifecycleResult
from tasks.summary import publish_lifecycle_summary


@flow(name="lifecycle", log_prints=True)
@keyword_parameters(LifecycleParams)
def lifecycle(params: LifecycleParams) -> LifecycleResult:
    """Train, gate, register and stage a model; optionally promote it and deploy production."""
    p = params
    trained = training(**dict(p.training()))
    promoted = served = None
    if p.promote_to == "production":
        promoted = promotion(
            model_name=p.model_name,
            version=trained.version,
            # None: the challenger's own held-out part, never rows it was trained on.
            held_out_path=p.held_out_path,
            target=p.target,
            compare_metrics=p.compare_metrics,
            margin=p.margin,
            actor=p.actor,
            reason="lifecycle run: trained, gated and staged, then promoted",
        )
        if p.deploy:
            served = deployment(
                model_name=p.model_name,
                version=promoted.version,
                target=p.deploy,
                namespace=p.namespace,
            )
    return publish_lifecycle_summary(trained, promoted, served, p.promote_to, p.deploy)


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["run", *sys.argv[1:]])
