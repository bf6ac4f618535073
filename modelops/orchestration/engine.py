"""How Prefect runs this project's flows: engine settings and the temporary API server.

Used wherever the flows run: the command line, a worker's flow-run process, the test harness.

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
import threading
from collections.abc import Iterator
from pathlib import Path

from modelops.orchestration import local_server
from modelops.orchestration.local_server import LocalServer

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


class TemporaryApi:
    """Prefect's temporary API server, started before the heavy imports instead of at the
    first API call.

    Without ``PREFECT_API_URL``, Prefect starts a temporary server the first time a flow run
    needs the API (``SubprocessASGIServer``) and waits for it: 3.5-4.5 s in which this process
    does nothing. Started early, in the same way (the same uvicorn command and environment), the
    server comes up on the other core while this process imports what the flow needs. If it
    fails to come up, nothing is lost: Prefect starts its own as usual.
    """

    def __init__(self) -> None:
        import subprocess
        import sys

        import prefect
        from prefect.settings import get_current_settings

        from modelops.processes import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        # No block registration: it imports every installed Prefect collection (prefect-dask,
        # prefect-kubernetes: ~2.5 s of a 10-13 s start here) to register block types that no
        # flow of this project uses, for a server that lives as long as this command.
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "0",
            "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "0",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self._up = threading.Event()
        threading.Thread(target=self._watch, name="temporary-api", daemon=True).start()

    def _watch(self) -> None:
        """Wait for the server in the background, then make its first (slow) answers happen
        while this process is still importing: Prefect's client asks for the API version
        first, and the first flow run looks up its flow."""
        import time

        import httpx

        with httpx.Client(base_url=self.url, timeout=5) as client:
            while self.proc is not None and self.proc.poll() is None:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            else:
                return
            with contextlib.suppress(httpx.HTTPError):
                client.get("/admin/version")
                client.post("/flows/filter", json={"limit": 1})
        self._up.set()

    @classmethod
    def wanted(cls) -> bool:
        """Whether no Prefect API is configured (``PREFECT_API_URL``, in the environment or a
        profile), so that flow runs here need a server started for them. Whether Prefect's own
        ephemeral mode is allowed does not matter: this project starts the server itself."""
        from prefect.settings import get_current_settings

        return not get_current_settings().api.url

    def ready(self, timeout: float) -> bool:
        """Wait until the server answers; False (and stopped) if it exits or times out."""
        import time

        deadline = time.monotonic() + timeout
        while not self._up.wait(0.1):
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
        return True

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Flow runs in this block use the server (links to its UI are not made: it has none
        and goes away with this process)."""
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url, PREFECT_UI_URL: ""}):
            yield

    def close(self) -> None:
        """This command is done with it: stopped (see :meth:`stop`)."""
        self.stop()

    def stop(self) -> None:
        """Stop the server (as Prefect stops its own: terminate, then kill after 5 s)."""
        import subprocess

        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @classmethod
    def start_if_wanted(cls) -> TemporaryApi | None:
        """Start one now if a flow run here would need one."""
        import logging

        if not cls.wanted():
            return None
        server = cls()
        logging.getLogger("prefect").info(
            "Starting temporary server on %s (set PREFECT_API_URL to use a Prefect server)",
            server.url.removesuffix("/api"),
        )
        return server


def prefect_api(home: Path) -> TemporaryApi | LocalServer | None:
    """The Prefect API server this command's flow runs will use, started now (it comes up while
    the flow is imported): None when an API is configured (``PREFECT_API_URL``, a profile);
    else the local server of ``home``, left running (see :mod:`local_server`), or with
    ``MODELOPS_PREFECT=temporary`` a temporary one for this command.

    Raises:
        ConfigurationError: ``MODELOPS_PREFECT`` is neither local nor temporary.
    """
    chosen = local_server.mode()
    if not TemporaryApi.wanted():
        return None
    if chosen == "temporary":
        return TemporaryApi.start_if_wanted()
    return local_server.ensure(home)


@contextlib.contextmanager
def flow_api(
    warm: tuple[str, ...] = (),
    timeout: float = 120,
    server: TemporaryApi | LocalServer | None = None,
) -> Iterator[None]:
    """The Prefect API for flow runs in this block: the configured one, or ``server`` (if one
    was started already, else a temporary one started now) once it answers, while the modules
    ``warm`` names ("module" or "module:function") are imported. A server that does not come
    up is no failure: Prefect then starts its own temporary one, as it would."""
    import importlib

    own = server is None  # started here, so stopped here; else the caller's to close
    server = server or TemporaryApi.start_if_wanted()
    try:
        for name in warm:
            module, _, function = name.partition(":")
            imported = importlib.import_module(module)
            if function:
                getattr(imported, function)()
        if server is None or not server.ready(timeout):
            yield  # the configured API, or Prefect starts its own temporary server as usual
            return
        with server.serving():
            yield
            _drain_prefect_workers()
    finally:
        if own and server is not None:
            server.close()


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued to the API before it stops (as Prefect's test
    harness does), instead of failing to connect after it has gone."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # no log worker was started
        APILogWorker.instance().drain()
    EventsWorker.drain_all()
