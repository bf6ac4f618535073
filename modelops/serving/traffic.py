"""Two versions in one server: which one answers a request, and what feedback may say.

A server started with a candidate serves the *stable* version (production by default) and the
*candidate* side by side:

- ``shadow``: the stable version answers every request; the candidate scores the same request
  after the answer has gone (off the request path), and both predictions are kept, paired by
  request id, for the live analysis.
- ``canary``: a share ``weight`` of the requests is answered by the candidate. With a sticky
  header, the header's value decides (a hash of it), so the same user always meets the same
  version; without one, each request draws.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

from modelops.errors import ConfigurationError

MODES = ("shadow", "canary")
STABLE, CANDIDATE = "stable", "candidate"
MAX_FEEDBACK_ITEMS = 10_000  # per request: a bigger batch is split by the client
# What a rollout's server reads from its environment (Rollout below sets it).
ROLLOUT_TOKEN_ENV = "MODELOPS_ROLLOUT_TOKEN"
ROLLOUT_LEASE_ENV = "MODELOPS_ROLLOUT_LEASE_SECONDS"
ROLLOUT_EVIDENCE_ENV = "MODELOPS_ROLLOUT_EVIDENCE"


@dataclass(frozen=True)
class TrafficConfig:
    """How traffic is split between the stable version and the candidate."""

    mode: str = "canary"
    weight: float = 0.1  # canary: the share the candidate answers
    sticky_header: str | None = None  # canary: the header whose value picks the version

    def check(self) -> TrafficConfig:
        """This config, if it is one a server can run.

        Raises:
            ConfigurationError: an unknown mode, or a weight outside (0, 1).
        """
        if self.mode not in MODES:
            raise ConfigurationError(
                f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}."
            )
        if not (isinstance(self.weight, int | float) and 0 < self.weight < 1):
            raise ConfigurationError(
                f"--weight must be a share strictly between 0 and 1 (0.1 sends a tenth of the "
                f"requests to the candidate), not {self.weight!r}."
            )
        if self.sticky_header is not None and not _is_token(self.sticky_header):
            raise ConfigurationError(
                f"--sticky-header must be an HTTP header name such as X-User-Id, "
                f"not {self.sticky_header!r}."
            )
        return self


@dataclass(frozen=True)
class Rollout:
    """A candidate to serve beside the stable version, as a rollout starts it (on this machine
    or in a Deployment's pods): the split, and the rollout's hold on it (the token of
    ``PUT /rollout/traffic`` and its lease)."""

    candidate: str
    mode: str
    weight: float
    token: str
    lease_seconds: float
    evidence_path: str | None = None  # None: the server's own default, under MODELOPS_HOME
    sticky_header: str | None = None

    @property
    def rollout_id(self) -> str:
        """A short name of this rollout that shows nothing of its token (a pod label: the pods
        of this rollout, not an earlier one's, hold this token)."""
        return hashlib.blake2b(self.token.encode(), digest_size=5).hexdigest()

    def serve_options(self) -> list[str]:
        """The ``modelops serve`` options for it."""
        options = ["--candidate", self.candidate, "--mode", self.mode]
        if self.mode == "canary":
            options += ["--weight", repr(self.weight)]
            if self.sticky_header:
                options += ["--sticky-header", self.sticky_header]
        return options

    def public_environment(self) -> dict[str, str]:
        """What the server reads from its environment, but the token: what a manifest may
        hold as literal values."""
        found = {ROLLOUT_LEASE_ENV: repr(self.lease_seconds)}
        if self.evidence_path is not None:
            found[ROLLOUT_EVIDENCE_ENV] = self.evidence_path
        return found

    def environment(self) -> dict[str, str]:
        """What the server reads from its environment (a token never goes on a command line,
        where every user of the machine can read it)."""
        return {ROLLOUT_TOKEN_ENV: self.token, **self.public_environment()}


def _is_token(name: str) -> bool:
    allowed = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return bool(name) and set(name) <= allowed


def sticky_share(key: str) -> float:
    """Where ``key`` falls in [0, 1): the same key always falls in the same place, on every
    worker and every restart (a hash, not Python's salted ``hash``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def candidate_answers(weight: float, sticky_key: str | None) -> bool:
    """Whether the candidate answers this canary request, at ``weight``."""
    share = sticky_share(sticky_key) if sticky_key else random.random()
    return share < weight


@dataclass(frozen=True)
class Label:
    """One label sent to ``/feedback``: the truth for the rows of one answered request."""

    request_id: str
    values: tuple[Any, ...]  # one per row of the request


def parse_feedback(body: Any, classes: list[Any] | None) -> list[Label]:
    """The labels in a ``/feedback`` body: ``{"request_id": ID, "label": L}`` or a list of such
    objects (``label`` a list with one value per row when the request had several rows).

    ``classes`` are the model's labels (None for a regressor: labels are then numbers); a label
    given as text is taken when it spells one of them (``"1"`` for the class ``1``).

    Raises:
        ConfigurationError: the body is not such an object or list, or an item is malformed or
            names a label the model does not know; the message says which item.
    """
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_FEEDBACK_ITEMS:
        raise ConfigurationError(
            f"Send between 1 and {MAX_FEEDBACK_ITEMS} labels per request, not {len(items)}."
        )
    known = {str(c): c for c in classes or []}
    labels, seen = [], set()
    for index, item in enumerate(items):
        where = f"item {index}" if isinstance(body, list) else "the body"
        if not isinstance(item, dict) or set(item) != {"request_id", "label"}:
            raise ConfigurationError(
                f"{where} must be an object with exactly request_id and label, e.g. "
                f'{{"request_id": "…", "label": 1}}.'
            )
        request_id = item["request_id"]
        if not isinstance(request_id, str) or not request_id:
            raise ConfigurationError(f"{where}: request_id must be a non-empty string.")
        if request_id in seen:
            raise ConfigurationError(f"{where}: request {request_id!r} is labelled twice.")
        seen.add(request_id)
        raw = item["label"]
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise ConfigurationError(f"{where}: label is an empty list.")
        labels.append(Label(request_id, tuple(_label(v, known, where) for v in values)))
    return labels


def _label(value: Any, known: dict[str, Any], where: str) -> Any:
    if known:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigurationError(f"{where}: label {value!r} is not one of {list(known)}.")
        text = str(value)
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        if text not in known:
            raise ConfigurationError(
                f"{where}: the model does not know the label {value!r}; its labels are "
                f"{list(known.values())}."
            )
        return known[text]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{where}: label {value!r} must be a finite number.")
    return float(value)
