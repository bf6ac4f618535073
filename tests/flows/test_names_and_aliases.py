"""Every legal model name works through every path; bad names and aliases are refused before
any work is done."""

from __future__ import annotations

from typing import Any

import pytest

from flows.training import training
from modelops import ModelStage, get_model_metadata, promote_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _client() -> Any:
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    return get_client(get_settings().resolved_tracking_uri)


@pytest.mark.parametrize("name", ["o'brien", 'say "hi"', "東京 model", "churn.model v2"])
def test_a_name_with_quotes_or_unicode_works_everywhere(
    mlflow_store: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelops import registry
    from modelops.cli import main

    first = training(model_name=name)
    second = training(model_name=name, random_seed=3)
    assert (first.version, second.version) == ("1", "2")
    assert [r["version"] for r in get_model_metadata(name)] == [2, 1]
    # Registering a run again finds its version: idempotency keys work with this name too.
    client = _client()
    v1 = client.get_model_version(name, "1")
    model_id = v1.source.removeprefix("models:/")
    again, created = registry.register_version(client, name, model_id, str(v1.run_id))
    assert not created and str(again.version) == "1"
    row = promote_model(name, "latest", ModelStage.PRODUCTION)  # latest is v2, which is staged
    assert row["version"] == 2 and row["aliases"] == ["production"]
    assert main(["versions", name]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["2", "Production"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_name": "team/churn v2"}, "Invalid model name 'team/churn v2'"),
        ({"model_name": ""}, "Invalid model name '': it is empty"),
        ({"model_name": "both ' and \""}, "holds both ' and \""),
        ({"stage_alias": "production"}, "cannot set 'production'"),
        ({"stage_alias": "bad alias!"}, "Invalid alias 'bad alias!'"),
        ({"stage_alias": "latest"}, "Alias 'latest' is reserved"),
        ({"thresholds": {"roc_auc": 1.5}}, "outside the metric's range [0, 1]"),
        ({"thresholds": {}}, "an empty quality gate would register any model"),
    ],
)
def test_bad_parameters_are_refused_before_any_work(
    mlflow_store: str, kwargs: dict, message: str
) -> None:
    state = training(**kwargs, return_state=True)
    assert state.is_failed()
    assert message in state.message
    assert _client().search_experiments(filter_string="name = 'tests'") == []  # no run at all


def test_registering_without_an_alias_is_allowed(mlflow_store: str) -> None:
    result = training(stage_alias="")
    assert result.alias is None
    assert _client().get_registered_model("lead-scoring").aliases == {}


def test_the_seed_api_audits_its_refusals_and_will_not_archive_production(
    make_version: Any,
) -> None:
    from modelops.errors import PromotionRefused
    from modelops.registry import read_events

    make_version()
    make_version(stage=False)
    with pytest.raises(PromotionRefused, match="does not hold the 'staging' alias"):
        promote_model("lead-scoring", 2, "Production", actor="eve")
    refusal = read_events(_client().get_model_version("lead-scoring", "2"))[-1]
    assert (refusal.action, refusal.actor) == ("promotion-refused", "eve")

    promote_model("lead-scoring", 1, "Production")
    with pytest.raises(PromotionRefused, match="would leave the model without a production"):
        promote_model("lead-scoring", 1, "Archived", actor="eve")
    assert get_model_metadata("lead-scoring", stage="Production")[0]["version"] == 1
    refusal = read_events(_client().get_model_version("lead-scoring", "1"))[-1]
    assert refusal.action == "promotion-refused" and refusal.actor == "eve"


def test_a_first_promotion_does_not_claim_a_comparison(make_version: Any) -> None:
    from flows.promotion import promotion
    from modelops.registry import read_events

    make_version()
    promotion()
    (event,) = [
        e
        for e in read_events(_client().get_model_version("lead-scoring", "1"))
        if e.action == "promote"
    ]
    assert event.basis and event.basis.startswith("no champion in production")
    assert "champion/challenger" not in event.reason
