"""The ``modelops worker``: Prefect's process worker, with warm starts for its flow runs.

Prefect's process worker starts each flow run as ``python -m prefect.engine`` (in 3.8, behind
a workspace supervisor that then execs the engine: Python starts twice per run), and a
training run then spends 6-9 s importing its libraries. This worker is the same worker — same
pools, same job variables, same cancellation — with two differences when a deployment does not
set its own ``command``:

- the flow run is started through :mod:`modelops.warmstart`, as a fork of a process started
  with the worker that has the heavy libraries imported (a flow run starts in ~0.1 s instead of
  seconds; it falls back to a cold start whenever a warm one is not safe);
- its working directory is the worker's (Prefect would use a temporary one), which is what
  relative ``data_path`` parameters and ``MODELOPS_HOME`` are documented to resolve against.

A deployment that sets ``command`` in its job variables is run exactly as Prefect runs it, and
one that sets ``working_dir`` gets that directory. Unlike Prefect's default start, a warm start
does not prepare a uv project workspace for the run (it uses the worker's environment, as a
process worker in a project's virtual environment does), a worker's own ``PREFECT_*`` settings
take precedence over the same ones in a job's ``env`` (Prefect's rule for runs with a command),
and a crashed or cancelled run's hooks are loaded in the worker's process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from prefect.utilities.processutils import command_to_string
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

from modelops import warmstart


class WarmJobConfiguration(ProcessJobConfiguration):
    """A process job that starts warm, in the worker's working directory."""

    def prepare_for_flow_run(self, flow_run: Any, *args: Any, **kwargs: Any) -> None:
        super().prepare_for_flow_run(flow_run, *args, **kwargs)
        if self._command_configured:
            return  # the deployment's own command, exactly as Prefect runs it
        self.command = command_to_string(
            [sys.executable, "-m", "modelops.warmstart", "-m", "prefect.engine"]
        )
        self._command_configured = True
        with contextlib.suppress(OSError):  # no private socket directory: the launcher runs cold
            self.env[warmstart.SOCKET_ENV] = warmstart.socket_path(os.getpid())
        if self.working_dir is None:
            self.working_dir = Path.cwd()


with warnings.catch_warnings():  # it replaces "process" in this process's worker registry
    warnings.simplefilter("ignore")

    class WarmProcessWorker(ProcessWorker):
        """Prefect's process worker whose flow runs start warm (see the module docstring)."""

        type = "process"
        job_configuration = WarmJobConfiguration


async def serve(pool: str, name: str | None = None, limit: int | None = None) -> None:
    """Poll ``pool`` and run its flow runs until interrupted, with a warm process beside."""
    owner = os.getpid()
    try:
        warmstart.start_server(warmstart.socket_path(owner), owner)
    except OSError as exc:
        logging.getLogger("prefect.workers").warning("Flow runs will start cold: %s", exc)
    async with WarmProcessWorker(work_pool_name=pool, name=name, limit=limit) as worker:
        await worker.start()
