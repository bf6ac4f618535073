"""The command line as it stays between commands: the local Prefect server it leaves running,
and the warm process later commands fork from (real processes, a user's shell for each)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelops.cli import warm
from modelops.orchestration import local_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODELOPS = str(Path(sys.executable).with_name("modelops"))


class Shell:
    """A user's shell: its own HOME and MODELOPS_HOME, no Prefect API configured."""

    def __init__(self, root: Path, name: str = "shell") -> None:
        self.home = root / f"{name}-modelops"
        self.user_home = root / f"{name}-user"
        self.user_home.mkdir(parents=True)
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "MODELOPS_", "PREFECT_API_URL", "PREFECT_HOME"))
        }
        self.env = {**keep, "HOME": str(self.user_home), "MODELOPS_HOME": str(self.home)}
        self.cwd = root

    def run(self, cmd: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MODELOPS, *shlex.split(cmd)],
            cwd=self.cwd,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, cmd: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [MODELOPS, *shlex.split(cmd)],
            cwd=self.cwd,
            env={**self.env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def server(self) -> local_server.LocalServer | None:
        return local_server.status(self.home.resolve())

    def warm_pid(self) -> int | None:
        """The warm process listening for this shell's commands, if one is."""
        path = warm.socket_for(self.home.resolve())
        for proc in psutil.process_iter(["cmdline"]):
            if path in (proc.info["cmdline"] or []):
                return int(proc.pid)
        return None

    def wait_warm(self, timeout: float = 120) -> int:
        """The warm process's pid once it listens (it imports for a few seconds first)."""
        path = warm.socket_for(self.home.resolve())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.warm_pid()
            if pid is not None and os.path.exists(path):
                return pid
            time.sleep(0.1)
        raise AssertionError("no warm process came up")

    def stop(self) -> None:
        local_server.stop(self.home.resolve())


def _processes_of(home: Path) -> list[psutil.Process]:
    """Every process this machine runs for ``home`` (its server, its warm process)."""
    socket = warm.socket_for(home.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        with_home = (proc.info.get("environ") or {}).get("MODELOPS_HOME") == str(home)
        if socket in (proc.info["cmdline"] or []) or (
            with_home and "uvicorn" in " ".join(proc.info["cmdline"] or [])
        ):
            found.append(proc)
    return found


def _normal(text: str) -> str:
    """Output without what differs between any two runs (ids, times, ports)."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"\b[0-9a-f]{32}\b", "<run>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "<time>", text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """A shell whose first command (a training) left the server and warm process running."""
    user = Shell(tmp_path_factory.mktemp("cli"))
    try:
        first = user.run("train")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "Registered lead-scoring version 1" in first.stdout
        server = user.server()
        assert server is not None, "the first command left no Prefect server running"
        # It says so, once, and how to stop it; the run can be looked at in its UI.
        notes = [line for line in first.stderr.splitlines() if "left running" in line]
        assert len(notes) == 1 and "modelops server stop" in notes[0], first.stderr[-2000:]
        link = re.search(r"Prefect run: (http://\S+/runs/flow-run/([0-9a-f-]{36}))", first.stdout)
        assert link, first.stdout
        run = httpx.get(f"{server.url}/flow_runs/{link[2]}", timeout=10).json()
        assert run["state"]["type"] == "COMPLETED"
        assert httpx.get(server.ui, timeout=10).status_code == 200  # the UI is on
        user.wait_warm()
        yield user
    finally:
        user.stop()


# The documented commands that answer from the registry or fail early, and what each gives:
# (command line, exit code). Each runs warm and cold and must print the same.
PARITY = [
    ("versions lead-scoring", 0),
    ("versions lead-scoring --json", 0),
    ("history lead-scoring", 0),
    ("versions no-such-model", 2),
    ("train", 0),  # reused: same data, parameters and code
    ("train --data /nonexistent/leads.csv", 3),
    ("train --force --thresholds '{\"roc_auc\": 0.99}'", 4),
    ("promote no-such-model", 2),
    ("train --test-size 3", 2),
    ("train --no-such-option", 2),
]


def test_every_command_answers_the_same_warm_and_cold(shell: Shell) -> None:
    warm_pid = shell.wait_warm()
    for cmd, code in PARITY:
        cold = shell.run(cmd, MODELOPS_WARM="false")
        warm_run = shell.run(cmd)
        for done in (cold, warm_run):
            assert done.returncode == code, (cmd, done.returncode, done.stderr[-2000:])
        assert _normal(warm_run.stdout) == _normal(cold.stdout), cmd
        assert _errors(warm_run.stderr) == _errors(cold.stderr), cmd
        assert "starting cold" not in warm_run.stderr, (cmd, warm_run.stderr[-1000:])
    assert shell.warm_pid() == warm_pid  # the same warm process served them all
    # Prefect was imported by the warm process with its own environment; a command's own
    # Prefect settings still hold (they are read again in each fork), as they would cold.
    for extra in ({}, {"MODELOPS_WARM": "false"}):
        quiet = shell.run(
            "train --data /nonexistent/leads.csv", PREFECT_LOGGING_LEVEL="ERROR", **extra
        )
        assert quiet.returncode == 3 and "starting cold" not in quiet.stderr
        assert " | INFO " not in quiet.stderr, quiet.stderr[-2000:]
        chatty = shell.run(
            "train --data /nonexistent/leads.csv", PREFECT_LOGGING_LEVEL="DEBUG", **extra
        )
        assert " | DEBUG " in chatty.stderr, chatty.stderr[-2000:]
    # --no-warm is the same as MODELOPS_WARM=false, and accepted anywhere.
    assert shell.run("--no-warm versions lead-scoring").returncode == 0
    assert shell.run("versions lead-scoring --no-warm").returncode == 0


def test_a_warm_start_is_recorded_on_the_run(shell: Shell) -> None:
    import mlflow

    done = shell.run("train --force")
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = re.search(r"MLflow run: ([0-9a-f]{32})", done.stdout)[1]
    client = mlflow.MlflowClient(f"sqlite:///{shell.home / 'mlflow.db'}")
    assert client.get_run(run_id).data.tags.get("modelops.warm_start") == str(shell.wait_warm())


def test_two_commands_at_once_start_one_server(tmp_path: Path) -> None:
    user = Shell(tmp_path)
    try:
        starts = [user.start("server start") for _ in range(3)]
        outs = [p.communicate(timeout=180) for p in starts]
        assert all(p.returncode == 0 for p in starts), outs
        server = user.server()
        assert server is not None
        assert {re.search(r"pid (\d+)", out)[1] for out, _ in outs} == {str(server.pid)}
        assert len(_processes_of(user.home)) == 1  # one server, no warm process yet
    finally:
        user.stop()
    assert _processes_of(user.home) == []


def test_a_killed_server_is_replaced_and_another_home_has_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = Shell(tmp_path, "first"), Shell(tmp_path, "second")
    try:
        assert first.run("server start").returncode == 0
        assert second.run("server start").returncode == 0
        one, two = first.server(), second.server()
        assert one is not None and two is not None and one.port != two.port
        os.killpg(one.pid, signal.SIGKILL)
        # A flow command after it: it notices and starts another (the data check runs in the
        # flow, so the flow ran on the new server).
        done = first.run("train --data /nonexistent/leads.csv", MODELOPS_WARM="false")
        assert done.returncode == 3, done.stderr[-2000:]
        again = first.server()
        assert again is not None and again.pid != one.pid
        assert "left running" in done.stderr  # a new server: said again
        assert second.server() == two  # the other home's server was left alone
        # A server that runs but does not answer (here: stopped) is replaced once it is
        # older than a start may take (here 1 s).
        os.kill(again.pid, signal.SIGSTOP)
        time.sleep(1.5)
        monkeypatch.setenv(local_server.START_TIMEOUT_ENV, "1")
        replaced = local_server.ensure(first.home.resolve())
        assert replaced.pid != again.pid and not again.running()
        monkeypatch.delenv(local_server.START_TIMEOUT_ENV)
        assert replaced.ready(120)
    finally:
        first.stop()
        second.stop()


def test_a_busy_port_gives_way_to_another_recorded(tmp_path: Path) -> None:
    import socket

    user = Shell(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (user.home / "prefect").mkdir(parents=True)
        record = {"pid": 1 << 22, "port": port, "started": 0, "home": str(user.home)}
        (user.home / "prefect" / "server.json").write_text(json.dumps(record))
        try:
            assert user.run("server start").returncode == 0
            server = user.server()
            assert server is not None and server.port != port
            assert local_server.recorded(user.home.resolve()) == server
        finally:
            user.stop()


def test_the_warm_process_killed_during_a_command(shell: Shell) -> None:
    warm_pid = shell.wait_warm()
    running = shell.start("train --force")
    deadline = time.monotonic() + 60
    child = None
    while child is None and time.monotonic() < deadline:  # the fork is running the command
        child = next(iter(psutil.Process(warm_pid).children()), None)
        time.sleep(0.05)
    assert child is not None
    os.kill(warm_pid, signal.SIGKILL)
    _out, err = running.communicate(timeout=60)
    assert running.returncode == 75, err[-2000:]
    assert _errors(err) == [
        f"error: the warm process ended while it ran ['modelops', 'train', '--force']; the "
        f"command was stopped with it. Run it again: it starts cold (or set "
        f"{warm.WARM_ENV}=false)"
    ]
    # SIGKILL is sent before the launcher exits but lands when the kernel next runs the fork.
    gone, _alive = psutil.wait_procs([child], timeout=10)
    assert gone or child.status() == psutil.STATUS_ZOMBIE
    # The next command starts cold, and leaves a new warm process for those after it.
    after = shell.run("versions lead-scoring")
    assert after.returncode == 0, after.stderr
    assert shell.wait_warm() != warm_pid


def test_temporary_leaves_nothing_running(tmp_path: Path) -> None:
    user = Shell(tmp_path)
    done = user.run("train --data /nonexistent/leads.csv", MODELOPS_PREFECT="temporary")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "left running" not in done.stderr
    assert not (user.home / "prefect" / "server.json").exists()
    assert _processes_of(user.home) == []
    # A bad mode is refused in one line.
    bad = user.run("train", MODELOPS_PREFECT="sometimes")
    assert bad.returncode == 2
    assert _errors(bad.stderr) == [
        "error: MODELOPS_PREFECT='sometimes' is not one of local, temporary: local leaves a "
        "Prefect server running under MODELOPS_HOME, temporary starts one per command"
    ]


def test_a_users_own_prefect_profile_is_read_never_written(tmp_path: Path) -> None:
    user = Shell(tmp_path)
    profile = user.user_home / ".prefect" / "profiles.toml"
    profile.parent.mkdir()
    profile.write_text('active = "mine"\n\n[profiles.mine]\nPREFECT_LOGGING_LEVEL = "ERROR"\n')
    before = {p: p.stat().st_mtime_ns for p in user.user_home.rglob("*")}
    try:
        done = user.run("train --data /nonexistent/leads.csv")
        assert done.returncode == 3, done.stderr[-2000:]
        assert user.server() is not None
        assert " | INFO " not in done.stderr  # the profile was read
    finally:
        user.stop()
    assert {p: p.stat().st_mtime_ns for p in user.user_home.rglob("*")} == before


def test_the_local_server_writes_nothing_into_the_users_home(shell: Shell) -> None:
    # The module's shell has run a training, a server and a warm process by now.
    assert list(shell.user_home.iterdir()) == []
    assert (shell.home / "prefect" / "prefect.db").is_file()
    status = shell.run("server status")
    assert status.returncode == 0 and "Prefect server: http://127.0.0.1:" in status.stdout
