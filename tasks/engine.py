"""How Prefect runs this project's flows, wherever they run (the CLI, a worker's flow-run
process, the test harness).

Prefect 3.8 sends flow-run heartbeats by default (every 180 s) from a thread that sleeps in
1-second steps and is joined when a synchronous flow run ends: every flow and subflow run is
rounded up to a whole second (an empty flow: 1.08 s instead of 0.09 s). Heartbeats only matter
to an Automation that detects crashed ("zombie") runs, so this project's flows run without them
unless asked: set ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (30 or more), in the environment or a
Prefect profile, to keep them, at that cost.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def heartbeats_requested() -> bool:
    """Whether the user chose a heartbeat frequency (environment, profile or settings file)."""
    import prefect.context

    if any(os.environ.get(name) for name in HEARTBEAT_VARIABLES):
        return True
    flows = prefect.context.get_settings_context().settings.flows
    return flows.heartbeat_frequency is not None and "heartbeat_frequency" in flows.model_fields_set


def apply_engine_settings() -> None:
    """Turn flow-run heartbeats off for this process unless the user chose them (called when
    ``flows`` is imported, which every way of running our flows does first)."""
    import prefect.context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    current = prefect.context.get_settings_context()
    if current.settings.flows.heartbeat_frequency is None or heartbeats_requested():
        return
    settings = current.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    # The process-wide settings, as Prefect's own test harness replaces them: contexts entered
    # later (the engine's, the harness's) start from these.
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(
        profile=current.profile, settings=settings
    )


@contextlib.contextmanager
def engine_settings() -> Iterator[None]:
    """:func:`apply_engine_settings` for a block only (the test harness, embedding code)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if heartbeats_requested():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
