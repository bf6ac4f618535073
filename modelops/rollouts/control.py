"""A running rollout, as every door sees it: its server and the hold on that server's split,
the record the rollout keeps under ``MODELOPS_HOME`` while it runs, its status read live, and
the operator's abort.

The record (``serving/rollouts/<model>/rollout.json``, readable by this user only: it holds the
split's token) is written when the candidate starts taking traffic, updated at every step, and
removed when the rollout ends. A record whose server no longer holds the split (the lease ran
out) belongs to a rollout that stopped without ending: it is shown as such, and the next
rollout of the model replaces it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, DeploymentFailed, ModelOpsError, TransientError
from modelops.naming import local_server_key
from modelops.processes import write_record
from modelops.registry.audit import write_event
from modelops.rollouts.analysis import Analysis, Criteria, analyse
from modelops.rollouts.plan import RolloutPlan
from modelops.serving.evidence import COLUMNS
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient

ABORTED_TAG = "modelops.rollout.aborted"


@dataclass(frozen=True)
class Pods:
    """A rollout's two-version servers on Kubernetes: the ready pods with these labels, each
    reached through the API server's pod proxy (each holds its own split and evidence)."""

    namespace: str
    labels: dict[str, str]
    port: int


@dataclass(frozen=True)
class RolloutServer:
    """The two-version server of a rollout (or its pods), and the rollout's hold on its split."""

    url: str
    token: str
    lease_seconds: float
    evidence_path: str | None = None
    pods: Pods | None = None  # on Kubernetes; None: the local server at ``url``


@dataclass(frozen=True)
class Abort:
    """Who took the candidate out, why, and when (Unix time)."""

    actor: str
    reason: str
    at: float


@dataclass(frozen=True)
class RolloutRecord:
    """What a running rollout keeps on disk for the other doors (status, abort)."""

    plan: RolloutPlan
    server: RolloutServer
    flow_run_id: str | None
    mlflow_run_id: str | None
    started: float
    step: int = 0  # 1-based: the step being judged (0: starting)
    step_started: float | None = None
    last: dict[str, Any] | None = None  # the last finished step's analysis
    abort: Abort | None = None
    awaiting_approval: bool = False  # every step passed; the candidate is out until approved
    serving: dict[str, Any] | None = None  # on Kubernetes: the ServingSpec (without the rollout)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> RolloutRecord:
        plan = dict(data["plan"])
        plan["steps"] = tuple(plan["steps"])
        plan["criteria"] = Criteria(**plan["criteria"])
        abort = data.get("abort")
        return cls(
            **{
                **data,
                "plan": RolloutPlan(**plan),
                "server": RolloutServer(
                    **{
                        **data["server"],
                        "pods": Pods(**pods) if (pods := data["server"].get("pods")) else None,
                    }
                ),
                "abort": Abort(**abort) if abort else None,
            }
        )


class RolloutAborted(ModelOpsError):
    """An operator took the candidate out of traffic while the rollout ran."""

    def __init__(self, abort: Abort) -> None:
        super().__init__(f"aborted by {abort.actor}: {abort.reason}")
        self.abort = abort


def record_path(home: Path, model_name: str) -> Path:
    """Where the running rollout of ``model_name`` is recorded."""
    return home / "serving" / "rollouts" / local_server_key(model_name) / "rollout.json"


def save(home: Path, record: RolloutRecord) -> RolloutRecord:
    """Write the record whole (this user only: it holds the split's token)."""
    write_record(record_path(home, record.plan.name), record.as_dict(), private=True)
    return record


def current(home: Path, record: RolloutRecord) -> RolloutRecord:
    """This rollout's record as it is on disk now.

    Raises:
        RolloutAborted: an operator's abort is recorded, or the record is gone (an abort that
            found no flow to end the rollout ended it) or is another rollout's.
    """
    now = load(home, record.plan.name)
    if now is None or now.server.token != record.server.token:
        raise RolloutAborted(Abort("someone", "the rollout's record is gone", time.time()))
    if now.abort is not None:
        raise RolloutAborted(now.abort)
    return now


def update(home: Path, record: RolloutRecord, **changes: Any) -> RolloutRecord:
    """Save ``changes`` onto this rollout's record as it is on disk now.

    Raises:
        RolloutAborted: as :func:`current`.
    """
    return save(home, replace(current(home, record), **changes))


def load(home: Path, model_name: str) -> RolloutRecord | None:
    """The recorded rollout of ``model_name``, or None (none, or a record of another model)."""
    try:
        record = RolloutRecord.of(json.loads(record_path(home, model_name).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return record if record.plan.name == model_name else None


def forget(home: Path, record: RolloutRecord) -> None:
    """Remove the record, if it still is this rollout's (not a later one's)."""
    now = load(home, record.plan.name)
    if now is not None and now.server.token == record.server.token:
        record_path(home, record.plan.name).unlink(missing_ok=True)


def mark_aborted(
    client: MlflowClient,
    record: RolloutRecord,
    actor: str,
    reason: str,
    steps: list[dict[str, Any]],
) -> None:
    """Tag the candidate with why its rollout was aborted and add the ``rollout-aborted``
    audit entry holding the live evidence (``steps``); production does not move."""
    plan = record.plan
    client.set_model_version_tag(plan.name, plan.candidate, ABORTED_TAG, reason[:4000])
    write_event(
        client,
        plan.name,
        plan.candidate,
        AuditEvent.model_validate(
            {
                "action": "rollout-aborted",
                "actor": actor,
                "reason": reason,
                "alias": "production",
                "from_version": plan.stable,
                "to_version": plan.candidate,
                "flow_run_id": record.flow_run_id,
                "mlflow_run_id": record.mlflow_run_id,
                "basis": f"live {plan.mode} rollout",
                "rollout": steps,  # the live evidence (extra fields are kept)
            }
        ),
    )


# ------------------------------------------------------------------------ the server's split


def _answers(
    server: RolloutServer,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, Any] | None = None,
    timeout: float = 30,
) -> list[tuple[int, bytes]]:
    """``method path`` on the rollout's server, or on each of its pods; every answer.

    Raises:
        TransientError: a server did not answer (or none of the pods is ready).
    """
    headers = {"Authorization": f"Bearer {server.token}"} if method == "PUT" else {}
    if server.pods is not None:
        from modelops.k8s import cluster, pods

        where = server.pods
        api = cluster.connect()
        names = pods.ready_pods(api, where.namespace, where.labels)
        if not names:
            raise TransientError(
                f"No ready pod of the rollout in {where.namespace} ({where.labels}) answers."
            )
        return [
            pods.pod_request(
                api,
                where.namespace,
                name,
                where.port,
                method,
                path,
                body=body,
                query=query,
                headers=headers,
                timeout=timeout,
            )
            for name in names
        ]
    import httpx

    try:
        r = httpx.request(
            method,
            f"{server.url}{path}",
            json=body,
            params=query,
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise TransientError(f"The rollout's server at {server.url} did not answer: {exc}") from exc
    if r.status_code >= 500:
        raise TransientError(f"The rollout's server at {server.url} answered {r.status_code}")
    return [(r.status_code, r.content)]


def _merged_split(answers: list[tuple[int, bytes]]) -> dict[str, Any]:
    """One split for all the pods: out of traffic when any pod was taken out (an abort that
    reached one pod is an abort), in traffic while any pod still sends the candidate some."""
    splits = [json.loads(body) for _, body in answers]
    leases = [s["until"] for s in splits if s.get("until") is not None]
    return {
        **splits[0],
        "active": all(s["active"] for s in splits),
        "in_traffic": any(s["in_traffic"] for s in splits),
        "until": min(leases) if leases else None,
        "servers": len(splits),
    }


def control(server: RolloutServer, **change: Any) -> dict[str, Any]:
    """``PUT /rollout/traffic`` (on every pod): change the split (a weight, the lease,
    ``active``); the split after the change.

    Raises:
        TransientError: the server did not answer (the task retries).
        DeploymentFailed: it refused.
    """
    answers = _answers(server, "PUT", "/rollout/traffic", body=change)
    for status, body in answers:
        if status != 200:
            raise DeploymentFailed(f"The rollout's server refused {change}: {body[:300]!r}")
    return _merged_split(answers)


def evidence(server: RolloutServer, since: float) -> dict[str, Any]:
    """``GET /rollout/evidence``: every answer kept since ``since`` (Unix time), with labels
    (of every pod, one after the other).

    Raises:
        TransientError: the server did not answer.
    """
    kept: dict[str, Any] = {}
    for status, body in _answers(
        server, "GET", "/rollout/evidence", query={"since": since}, timeout=120
    ):
        if status != 200:
            raise TransientError(f"The rollout's server did not give its evidence: {body[:300]!r}")
        part = json.loads(body)
        if not kept:
            kept = part
            continue
        for name in COLUMNS:
            kept[name] += part[name]
        for name, count in part["dropped"].items():
            kept["dropped"][name] = kept["dropped"].get(name, 0) + count
    return kept


def _split(server: RolloutServer) -> dict[str, Any] | None:
    try:
        answers = _answers(server, "GET", "/rollout/traffic", timeout=10)
    except (TransientError, DeploymentFailed):
        return None
    if any(status != 200 for status, _ in answers):
        return None
    return _merged_split(answers)


# ------------------------------------------------------------------------ status and abort


@dataclass(frozen=True)
class RolloutStatus:
    """A running rollout, read now: its plan and step, the split as the server holds it, and
    the analysis of the step's evidence so far."""

    record: RolloutRecord
    answering: bool  # the server answered
    active: bool  # the candidate has not been taken out
    in_traffic: bool  # ... and the rollout still holds its lease
    weight: float | None
    lease_until: float | None
    analysis: Analysis | None  # of the current step's evidence (None before the first step)
    notes: list[str] = field(default_factory=list)
    ended: bool = False  # this status's abort ended the rollout (no flow was left to end it)

    @property
    def state(self) -> str:
        """running; awaiting-approval (every step passed, the candidate is out of traffic until
        someone approves its promotion); aborted (taken out: the stable version answers alone,
        the flow ends the rollout at its next poll); stopped (no longer renewed: the flow was
        killed or lost the server; the stable version answers alone)."""
        if self.record.abort is not None:
            return "aborted"
        if self.record.awaiting_approval:
            return "awaiting-approval"
        if not self.active:
            return "aborted"
        return "running" if self.in_traffic else "stopped"


def status(home: Path, model_name: str) -> RolloutStatus | None:
    """The running rollout of ``model_name``, read live from its server; None if none runs."""
    record = load(home, model_name)
    if record is None:
        return None
    split = _split(record.server)
    notes = []
    analysis = None
    if split is None:
        notes.append(f"the rollout's server at {record.server.url} does not answer")
    elif record.step_started is not None:
        try:
            analysis = analyse(evidence(record.server, record.step_started), record.plan.criteria)
        except TransientError as exc:
            notes.append(str(exc).splitlines()[0])
    if split is not None and split["active"] and not split["in_traffic"] and not record.abort:
        notes.append(
            "the rollout stopped renewing its lease (killed, or cut off): the stable version "
            "answers alone; the next rollout of the model replaces this server"
        )
    until = (split or {}).get("until")
    return RolloutStatus(
        record,
        answering=split is not None,
        active=bool(split and split["active"]),
        in_traffic=bool(split and split["in_traffic"]),
        weight=(split or {}).get("weight") if record.plan.mode == "canary" else None,
        lease_until=None if until is None or math.isinf(until) else float(until),
        analysis=analysis,
        notes=notes,
    )


def request_abort(
    client: MlflowClient, home: Path, model_name: str, actor: str, reason: str
) -> RolloutStatus:
    """Take the running rollout's candidate out of traffic now, and record who did and why.
    A rollout flow that still runs ends the rollout at its next poll (the stable version
    alone, the candidate tagged and audited, the event); for one that stopped without ending
    (its lease ran out), the abort tags and audits the candidate itself and forgets it.

    Raises:
        ConfigurationError: no rollout of ``model_name`` is recorded here, or no reason.
        TransientError: its server did not answer (nothing was changed).
    """
    if not reason.strip():
        raise ConfigurationError("Say why the rollout is aborted (a reason for the audit trail).")
    record = load(home, model_name)
    if record is None:
        raise ConfigurationError(f"No rollout of {model_name!r} is running on this machine.")
    before = _split(record.server)
    if before is None:
        raise TransientError(
            f"The rollout's server at {record.server.url} did not answer: nothing was changed."
        )
    control(record.server, active=False)  # first: out of traffic, then the paperwork
    if record.abort is None:
        record = save(home, replace(record, abort=Abort(actor, reason, time.time())))
    if not before["in_traffic"] and before["active"]:  # nobody renews it: no flow will end it
        why = str(RolloutAborted(record.abort or Abort(actor, reason, time.time())))
        mark_aborted(client, record, actor, why, _steps(record))
        forget(home, record)
    found = status(home, model_name)
    return found if found is not None else _ended(record)


def _steps(record: RolloutRecord) -> list[dict[str, Any]]:
    return [record.last] if record.last else []


def _ended(record: RolloutRecord) -> RolloutStatus:
    """The status of a rollout this call ended (its record is gone)."""
    return RolloutStatus(
        record,
        answering=True,
        active=False,
        in_traffic=False,
        weight=None,
        lease_until=None,
        analysis=None,
        notes=["aborted: the stable version answers alone"],
        ended=True,
    )
