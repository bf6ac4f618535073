"""Staged promotion on MLflow aliases: staging → production, champion/challenger, rollback.

Aliases are the source of truth: ``staging`` (the candidate), ``production`` (the champion) and
``previous-production`` (what a rollback restores). Every move is journalled and undone if a
later step fails, so production never points at a version without its audit record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops import registry
from modelops.errors import ConfigurationError, ModelNotFound, PromotionRefused, RegistryError
from modelops.evaluation import DIRECTION, evaluate_binary

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

PRODUCTION = "production"
STAGING = "staging"
PREVIOUS_PRODUCTION = "previous-production"
ARCHIVED_TAG = "modelops.archived"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


@dataclass(frozen=True)
class AliasState:
    """Where the lifecycle aliases of one model point (None: unset)."""

    production: str | None
    previous_production: str | None
    staging: str | None

    @classmethod
    def read(cls, client: MlflowClient, name: str) -> AliasState:
        """Read the aliases from the registered model (search_model_versions omits them)."""
        aliases = {k: str(v) for k, v in (registered_model(client, name).aliases or {}).items()}
        return cls(aliases.get(PRODUCTION), aliases.get(PREVIOUS_PRODUCTION), aliases.get(STAGING))


def registered_model(client: MlflowClient, name: str) -> Any:
    """The registered model, with a clear error when it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(
                f"No registered model named {name!r}. Check the name (and MLFLOW_TRACKING_URI / "
                f"MLFLOW_REGISTRY_URI), or train it first."
            ) from exc
        raise


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion:
    """The version ``ref`` names: a number, ``"latest"``, an alias, or ``models:/name/N|@alias``.

    Raises:
        ModelNotFound: the model, version or alias does not exist, or the model has no versions.
        RegistryError: ``ref`` is a ``models:/`` URI of another model.
    """
    text = str(ref).strip()
    registered_model(client, name)
    match = _MODELS_URI.match(text)
    if match:
        if match["name"] != name:
            raise RegistryError(
                f"{text!r} is a version of model {match['name']!r}, not of {name!r}. Promote it "
                f"under its own name, or register it as a version of {name!r} first."
            )
        text = match["version"] or match["alias"]
    if text.isdigit():
        return registry.get_version(client, name, text)
    if text.lower() == "latest":
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise ModelNotFound(
                f"Model {name!r} has no versions yet: train and register one first."
            )
        return max(versions, key=lambda v: int(v.version))
    version = registry.alias_version(client, name, text)
    if version is None:
        raise ModelNotFound(
            f"Model {name!r} has no alias {text!r}. Use a version number, 'latest', or one of its "
            f"aliases: {sorted(registered_model(client, name).aliases or {})}."
        )
    return registry.get_version(client, name, version)


class AliasJournal:
    """Registry writes that can be undone in reverse order: a transaction, as seen by users."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client = client
        self.name = name
        self._undo: list[tuple[str, tuple[Any, ...]]] = []

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        before = registry.alias_version(self.client, self.name, alias)
        self._undo.append(("alias", (alias, before)))
        self.client.set_registered_model_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias``."""
        before = registry.alias_version(self.client, self.name, alias)
        if before is None:
            return
        self._undo.append(("alias", (alias, before)))
        self.client.delete_registered_model_alias(self.name, alias)

    def set_tag(self, version: str, key: str, value: str) -> None:
        """Set a version tag."""
        before = self.client.get_model_version(self.name, version).tags.get(key)
        self._undo.append(("tag", (version, key, before)))
        self.client.set_model_version_tag(self.name, version, key, value)

    def delete_tag(self, version: str, key: str) -> None:
        """Delete a version tag if present."""
        before = self.client.get_model_version(self.name, version).tags.get(key)
        if before is None:
            return
        self._undo.append(("tag", (version, key, before)))
        self.client.delete_model_version_tag(self.name, version, key)

    def audit(self, version: str, event: dict[str, Any]) -> dict[str, Any]:
        """Append an audit event to ``version``."""
        record = registry.write_audit_event(self.client, self.name, version, event)
        self._undo.append(("tag", (version, registry.audit_key_of(record), None)))
        return record

    def undo(self) -> list[str]:
        """Revert every write, newest first; returns what could not be reverted."""
        problems = []
        for kind, args in reversed(self._undo):
            try:
                if kind == "alias":
                    alias, before = args
                    if before is None:
                        self.client.delete_registered_model_alias(self.name, alias)
                    else:
                        self.client.set_registered_model_alias(self.name, alias, before)
                else:
                    version, key, before = args
                    if before is None:
                        self.client.delete_model_version_tag(self.name, version, key)
                    else:
                        self.client.set_model_version_tag(self.name, version, key, before)
            except Exception as exc:  # keep undoing the rest
                problems.append(f"{kind} {args}: {exc}")
        self._undo.clear()
        return problems


def _transaction(journal: AliasJournal, steps: Any) -> Any:
    """Run ``steps(journal)``; on any error undo its writes and re-raise."""
    try:
        return steps(journal)
    except BaseException as exc:
        problems = journal.undo()
        if problems:
            raise RegistryError(
                f"{exc} — and undoing the partial change failed for: {'; '.join(problems)}. "
                f"Check the aliases of {journal.name!r} with `python -m modelops versions "
                f"{journal.name}`."
            ) from exc
        raise


def check_staged(version: ModelVersion, staging: str | None, override_reason: str | None) -> bool:
    """Refuse a version that does not hold ``staging`` unless an override reason is given.

    Returns:
        True when the override was used (it is recorded in the audit trail).

    Raises:
        PromotionRefused: not staged and no override.
    """
    if staging == str(version.version):
        return False
    if override_reason and override_reason.strip():
        return True
    raise PromotionRefused(
        f"Version {version.version} of {version.name!r} does not hold the 'staging' alias "
        f"(staging is {'version ' + staging if staging else 'unset'}). Promote the staged "
        f"version, or pass override_staging_reason to promote this one anyway (the override "
        f"is recorded in the audit trail)."
    )


@dataclass
class Comparison:
    """Champion vs challenger on the same held-out data."""

    passed: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_scored: int = 0

    def markdown(self, name: str, champion: str, challenger: str) -> str:
        """The comparison as a markdown table."""
        lines = [
            f"**Champion/challenger for {name}: "
            f"{'challenger wins' if self.passed else 'challenger REFUSED'}** "
            f"(champion v{champion}, challenger v{challenger}, {self.rows_scored:,} held-out rows)",
            "",
            "| metric | champion | challenger | difference | allowed | result |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in self.rows:
            verdict = "ok" if r["passed"] else "**worse**"
            lines.append(
                f"| {r['metric']} | {r['champion']:.4f} | {r['challenger']:.4f} | "
                f"{r['difference']:+.4f} | {r['allowed']} | {verdict} |"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {"passed": self.passed, "rows": self.rows, "rows_scored": self.rows_scored}


def compare(
    champion: dict[str, float], challenger: dict[str, float], metrics: list[str], margin: float
) -> Comparison:
    """The challenger passes if, on every metric, it is not worse than the champion by more
    than ``margin`` (absolute; lower-is-better metrics such as log_loss are handled).

    Raises:
        ConfigurationError: an unknown metric or a negative margin.
    """
    unknown = sorted(set(metrics) - set(DIRECTION))
    if unknown or not metrics:
        raise ConfigurationError(
            f"Comparison metrics must be a non-empty subset of {', '.join(DIRECTION)}; "
            f"got unknown {unknown}"
            if unknown
            else "Give at least one comparison metric."
        )
    if margin < 0:
        raise ConfigurationError(f"margin must be >= 0, got {margin}")
    rows = []
    for name in metrics:
        higher = DIRECTION[name]
        diff = challenger[name] - champion[name]
        ok = diff >= -margin if higher else diff <= margin
        rows.append(
            {
                "metric": name,
                "champion": champion[name],
                "challenger": challenger[name],
                "difference": diff,
                "allowed": f">= {-margin:+.4f}" if higher else f"<= {margin:+.4f}",
                "passed": bool(ok),
            }
        )
    return Comparison(passed=all(r["passed"] for r in rows), rows=rows)


@dataclass
class ScoringModel:
    """A registered sklearn model ready to score a held-out table."""

    version: str
    model: Any
    inputs: list[str]
    target: str | None
    positive_label: str | None


def load_scoring_model(client: MlflowClient, name: str, version: str) -> ScoringModel:
    """Load a version's sklearn flavour (for probabilities) and its declared inputs."""
    import mlflow.sklearn
    from mlflow.models import get_model_info

    from modelops.tracking import use_tracking_uri

    uri = f"models:/{name}/{version}"
    with use_tracking_uri(client.tracking_uri):
        info = get_model_info(uri)
        model = mlflow.sklearn.load_model(uri)
    schema = info.signature.inputs if info.signature is not None else None
    inputs = list(schema.input_names()) if schema is not None else []
    meta = info.metadata or {}
    return ScoringModel(version, model, inputs, meta.get("target"), meta.get("positive_label"))


def score_on(model: ScoringModel, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """Metrics of ``model`` on ``frame``.

    Raises:
        ConfigurationError: the frame lacks columns the model's signature needs, or the target.
    """
    missing = [c for c in model.inputs if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"The held-out data does not match the signature of version {model.version}: "
            f"missing column(s) {missing}; the model expects {model.inputs}."
        )
    if target not in frame.columns:
        raise ConfigurationError(
            f"The held-out data has no target column {target!r} (columns: {list(frame.columns)})."
        )
    from modelops.training import encode_target

    positive: Any = model.positive_label
    values = set(frame[target].dropna().unique().tolist())
    if positive is not None and positive not in values:
        for candidate in values:  # metadata stores labels as text
            if str(candidate) == positive:
                positive = candidate
    y, _ = encode_target(frame[target], positive if positive in values else None)
    X = frame[model.inputs]
    numeric = [c for c in model.inputs if X[c].dtype.kind in "iub"]
    if numeric:
        X = X.astype(dict.fromkeys(numeric, "float64"))
    try:
        proba = model.model.predict_proba(X)[:, 1]
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"Version {model.version} could not score the held-out data: {exc}"
        ) from exc
    return evaluate_binary(y, proba).metrics


@dataclass
class PromotionResult:
    """What a promotion did."""

    name: str
    version: str
    previous_production: str | None
    changed: bool
    event: dict[str, Any] | None = None


def promote_to_production(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    archive_existing: bool = True,
    override_reason: str | None = None,
    extra: dict[str, Any] | None = None,
    expected_champion: str | object | None = ...,
) -> PromotionResult:
    """Move ``production`` to ``version`` as one undoable step.

    The old champion gets ``previous-production`` (for rollback) and, with
    ``archive_existing``, the archived tag. ``staging`` is cleared when it pointed at the
    promoted version: staging names the candidate *awaiting* promotion, and leaving it would
    make the next "promote staging" silently re-promote the current champion.
    Both versions get audit events. Promoting the current production version is a no-op.

    ``expected_champion`` is the production version the decision was made against (the one
    the challenger was compared with); if production has moved since, nothing is changed.

    Raises:
        RegistryError: production moved since the decision (``expected_champion``), a
            concurrent change was detected after the move, or undoing a failed move failed.
    """
    version = str(version)
    state = AliasState.read(client, name)
    if state.production == version:
        return PromotionResult(name, version, state.previous_production, changed=False)
    champion = state.production
    if expected_champion is not ... and expected_champion != champion:
        raise RegistryError(
            f"Production of {name!r} moved from {expected_champion} to {champion} after this "
            f"promotion compared against it; nothing was changed. Run the promotion again."
        )
    base = {
        "actor": actor,
        "reason": reason,
        "flow_run_id": flow_run_id,
        "metrics": metrics or {},
        **(extra or {}),
    }
    if override_reason:
        base["staging_override"] = override_reason
    if expected_champion is not ...:
        base["compared_with"] = expected_champion

    def steps(journal: AliasJournal) -> dict[str, Any]:
        journal.set_alias(PRODUCTION, version)
        if champion is not None:
            journal.set_alias(PREVIOUS_PRODUCTION, champion)
            if archive_existing:
                journal.set_tag(champion, ARCHIVED_TAG, "true")
        if state.staging == version:
            journal.delete_alias(STAGING)
        journal.delete_tag(version, ARCHIVED_TAG)
        event = journal.audit(
            version,
            {"action": "promote", "alias": PRODUCTION, "from_version": champion,
             "to_version": version, **base},
        )  # fmt: skip
        if champion is not None:
            journal.audit(
                champion,
                {"action": "archive" if archive_existing else "demote",
                 "alias": PREVIOUS_PRODUCTION, "from_version": champion,
                 "to_version": version, **base},
            )  # fmt: skip
        return event

    event = _transaction(AliasJournal(client, name), steps)
    after = AliasState.read(client, name)
    if after.production != version:
        raise RegistryError(
            f"Another promotion of {name!r} changed production to {after.production} while this "
            f"one moved it to {version}. Run promotions of one model one at a time (the "
            f"promotion flow takes a lock for this)."
        )
    return PromotionResult(name, version, champion, changed=True, event=event)


def rollback_production(
    client: MlflowClient,
    name: str,
    *,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
) -> PromotionResult:
    """Put ``production`` back on ``previous-production`` in one undoable step.

    The rolled-back version is tagged archived; ``previous-production`` then points at the
    version that was production before the restored one (from its audit trail), or is removed,
    so repeated rollbacks walk back through history instead of ping-ponging.

    Raises:
        PromotionRefused: there is no previous production version, or the reason is empty.
    """
    if not reason or not reason.strip():
        raise PromotionRefused("A rollback needs a reason: say why production is being reverted.")
    state = AliasState.read(client, name)
    if state.previous_production is None:
        raise PromotionRefused(
            f"Model {name!r} has no 'previous-production' version to roll back to "
            f"(production is {state.production}). Promote a specific version instead."
        )
    target = state.previous_production
    bad = state.production
    restored = registry.get_version(client, name, target)
    earlier = None
    for event in reversed(registry.audit_events(restored)):
        if event.get("action") in ("promote", "rollback") and event.get("to_version") == target:
            earlier = event.get("from_version")
            break
    if earlier is not None and earlier in (bad, target):
        earlier = None
    base = {"actor": actor, "reason": reason, "flow_run_id": flow_run_id}

    def steps(journal: AliasJournal) -> dict[str, Any]:
        journal.set_alias(PRODUCTION, target)
        journal.delete_tag(target, ARCHIVED_TAG)
        if earlier is not None:
            journal.set_alias(PREVIOUS_PRODUCTION, str(earlier))
        else:
            journal.delete_alias(PREVIOUS_PRODUCTION)
        if bad is not None:
            journal.set_tag(bad, ARCHIVED_TAG, "true")
            journal.audit(
                bad,
                {"action": "rolled-back", "alias": PRODUCTION, "from_version": bad,
                 "to_version": target, **base},
            )  # fmt: skip
        return journal.audit(
            target,
            {"action": "rollback", "alias": PRODUCTION, "from_version": bad,
             "to_version": target, **base},
        )  # fmt: skip

    event = _transaction(AliasJournal(client, name), steps)
    return PromotionResult(name, target, bad, changed=True, event=event)
