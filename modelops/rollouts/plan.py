"""A rollout's plan: which versions, how traffic moves step by step, how long a step may wait
for evidence, and what the evidence must show (checked before anything starts)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from modelops.errors import ConfigurationError
from modelops.rollouts.analysis import Criteria
from modelops.serving.traffic import TrafficConfig

DEFAULT_STEPS = (10.0, 50.0)


@dataclass(frozen=True)
class RolloutPlan:
    """What a rollout will do: the stable version (production), the candidate, and the steps
    (canary: the candidate's share of requests, in percent; shadow: one step)."""

    name: str
    stable: str
    candidate: str
    mode: str
    steps: tuple[float, ...]
    criteria: Criteria = field(default_factory=Criteria)
    sticky_header: str | None = None
    min_step_seconds: float = 0.0  # a step lasts at least this long, even with enough evidence
    max_step_seconds: float = 3600.0  # longer without enough evidence: inconclusive, ended
    poll_seconds: float = 15.0

    @property
    def weights(self) -> list[float]:
        """The candidate's share at each step, as a fraction."""
        return [step / 100 for step in self.steps]


def check_steps(mode: str, steps: list[float] | None) -> tuple[float, ...]:
    """The steps of a rollout, in percent.

    Raises:
        ConfigurationError: an unknown mode, a step outside (0, 100), steps not increasing,
            or steps for a shadow rollout (the candidate answers nothing, so there is one).
    """
    TrafficConfig(mode).check()
    if mode == "shadow":
        if steps:
            raise ConfigurationError(
                "A shadow rollout has no steps (the candidate answers no request): leave "
                "--steps out, or use --mode canary."
            )
        return (100.0,)
    chosen = tuple(float(s) for s in (steps or DEFAULT_STEPS))
    bad = [s for s in chosen if not 0 < s < 100]
    if bad:
        raise ConfigurationError(
            f"Steps are the candidate's share of requests in percent, each strictly between 0 "
            f"and 100 (e.g. 10,50): {bad[0]:g} is not."
        )
    if any(b <= a for a, b in itertools.pairwise(chosen)):
        raise ConfigurationError(
            f"Steps must increase (e.g. 10,50), not {','.join(f'{s:g}' for s in chosen)}."
        )
    return chosen


def check_timing(min_step: float, max_step: float, poll: float) -> None:
    """Raises ConfigurationError when a step could never end or never be judged."""
    if poll <= 0 or max_step <= 0 or min_step < 0:
        raise ConfigurationError(
            "poll_seconds and max_step_seconds must be positive, min_step_seconds at least 0."
        )
    if min_step > max_step:
        raise ConfigurationError(
            f"min_step_seconds ({min_step:g}) cannot be over max_step_seconds ({max_step:g})."
        )
