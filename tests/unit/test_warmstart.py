"""Warm starts (modelops.warmstart), with real processes: a warm process, launchers that hand
it their streams, and children that must behave exactly as ``python -m`` would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from modelops import warmstart

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="warm starts need fork"),
    # Real processes with deadlines of seconds: `make test` runs these alone, after the
    # parallel part (under four workers' load their start-ups overran the deadlines).
    pytest.mark.timing,
]

PROBE = """
import os, sys
import numpy
print("warm=" + os.environ.get("MODELOPS_WARM_START", ""), "preloaded=" + str("helper" in
      sys.modules), "cwd=" + os.getcwd(), "argv=" + ",".join(sys.argv[1:]),
      "marker=" + os.environ.get("MODELOPS_PROBE_MARKER", ""),
      "rand=" + str(numpy.random.rand()), flush=True)
print("on stderr", file=sys.stderr, flush=True)
if sys.argv[1:2] == ["sleep"]:
    open(sys.argv[2], "w").write(str(os.getpid()))
    import time
    time.sleep(60)
if sys.argv[1:2] == ["pool"]:  # an idle pool thread in a module variable must not block the exit
    from concurrent.futures import ThreadPoolExecutor
    POOL = ThreadPoolExecutor(2)
    POOL.submit(print, "pooled").result()
if sys.argv[1:2] == ["interrupt"]:
    raise KeyboardInterrupt
raise SystemExit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
"""


@pytest.fixture
def warm(tmp_path: Path):
    """A warm process preloading ``helper`` (a module of a project folder), owned by a
    stand-in worker process; yields a function that runs ``python -m probe`` via a launcher."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "probe.py").write_text(PROBE)
    (project / "helper.py").write_text("VALUE = 1\n")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    # A short folder: a socket path has ~107 bytes at most, and pytest-xdist's tmp_path is long.
    short = tempfile.mkdtemp(prefix="mw-")
    sock = warmstart.socket_path(owner.pid, short)
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        warmstart.SOCKET_ENV: sock,
        warmstart.PRELOAD_ENV: "helper,numpy",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "modelops.warmstart", "--serve", sock, "--owner", str(owner.pid)],
        env=env,
    )
    _wait_for(lambda: os.path.exists(sock))

    def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelops.warmstart", "-m", "probe", *args],
            env={**env, **kw.pop("env", {})},
            cwd=kw.pop("cwd", project),
            capture_output=True,
            text=True,
            timeout=60,
            **kw,
        )

    run.project, run.owner, run.server, run.sock, run.env = project, owner, server, sock, env  # type: ignore[attr-defined]
    yield run
    owner.kill()
    owner.wait()
    server.wait(timeout=10)  # it ends with its owner
    shutil.rmtree(short, ignore_errors=True)


def _wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _fields(out: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in out.split())


def test_a_warm_child_runs_as_python_dash_m_would(warm, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = warm("3", "a;b", env={"MODELOPS_PROBE_MARKER": "from-the-launcher"}, cwd=elsewhere)
    assert done.returncode == 3  # its exit code
    seen = _fields(done.stdout)
    assert seen["warm"] == str(warm.server.pid)  # forked from the warm process...
    assert seen["preloaded"] == "True"  # ...which had imported the helper
    assert seen["cwd"] == str(elsewhere)  # the launcher's directory, environment, arguments
    assert seen["marker"] == "from-the-launcher"
    assert seen["argv"] == "3,a;b"
    assert done.stderr.strip() == "on stderr"  # the launcher's own streams
    again = warm("0")
    assert again.returncode == 0
    assert _fields(again.stdout)["rand"] != seen["rand"]  # each child's own random numbers


def test_exits_as_a_cold_start_would_with_pool_threads_or_a_ctrl_c(warm) -> None:
    pooled = warm("pool")
    assert pooled.returncode == 0 and "pooled" in pooled.stdout
    assert _fields(pooled.stdout.splitlines()[0])["warm"] == str(warm.server.pid)
    interrupted = warm("interrupt")
    assert interrupted.returncode == -signal.SIGINT  # as python -m would end
    assert "KeyboardInterrupt" in interrupted.stderr


def _sleeping_run(warm, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A launcher whose warm child sleeps; the launcher and the child's pid."""
    pidfile = tmp_path / "child.pid"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "modelops.warmstart", "-m", "probe", "sleep", str(pidfile)],
        env=warm.env,
        cwd=warm.project,
    )
    _wait_for(lambda: pidfile.exists() and pidfile.read_text())
    return launcher, int(pidfile.read_text())


def test_signals_reach_the_child_and_the_launcher_ends_as_it_did(warm, tmp_path: Path) -> None:
    launcher, child = _sleeping_run(warm, tmp_path)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == -signal.SIGTERM  # what the worker sees of a cold run
    _wait_for(lambda: not _alive(child))


def test_ctrl_z_stops_the_child_with_the_launcher_and_fg_continues_both(
    warm, tmp_path: Path
) -> None:
    launcher, child = _sleeping_run(warm, tmp_path)
    try:
        launcher.send_signal(signal.SIGTSTP)  # what Ctrl-Z sends the terminal's foreground
        _wait_for(lambda: _state(launcher.pid) == "T" and _state(child) == "T")
        launcher.send_signal(signal.SIGCONT)  # what a shell's fg or bg sends
        _wait_for(lambda: _state(launcher.pid) == "S" and _state(child) == "S")
        assert launcher.poll() is None  # still running its command
    finally:
        launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == -signal.SIGTERM
    _wait_for(lambda: not _alive(child))


def _state(pid: int) -> str:
    """A process's state letter: S sleeping, T stopped."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_killed_launcher_takes_its_child_with_it(warm, tmp_path: Path) -> None:
    launcher, child = _sleeping_run(warm, tmp_path)
    launcher.kill()
    launcher.wait()
    _wait_for(lambda: not _alive(child))


def test_if_the_warm_process_dies_the_launcher_ends_its_child_and_says_so(warm, tmp_path) -> None:
    launcher, child = _sleeping_run(warm, tmp_path)
    warm.server.kill()
    assert launcher.wait(timeout=30) == -signal.SIGKILL  # not a success nobody saw
    _wait_for(lambda: not _alive(child))


def test_a_changed_project_file_means_a_cold_start_then_a_fresh_warm_process(warm) -> None:
    assert _fields(warm("0").stdout)["warm"] == str(warm.server.pid)
    helper = warm.project / "helper.py"
    helper.write_text("VALUE = 2\n")
    os.utime(helper, (time.time() + 5, time.time() + 5))
    cold = _fields(warm("0").stdout)
    assert cold["warm"] == "" and cold["preloaded"] == "False"  # started cold, correct code
    warm.server.wait(timeout=30)  # the old warm process retired...
    _wait_for(lambda: _fields(warm("0").stdout)["warm"] not in ("", str(warm.server.pid)))


@pytest.mark.parametrize("variable", ["PYTHONHASHSEED", "TZ", "OMP_NUM_THREADS", "LANG"])
def test_what_libraries_read_at_import_must_match_or_the_run_starts_cold(
    warm, variable: str
) -> None:
    other = _fields(warm("0", env={variable: "123"}).stdout)
    assert other["warm"] == "" and other["preloaded"] == "False"


def test_no_warm_process_means_a_cold_start(warm, tmp_path: Path) -> None:
    nowhere = warm("5", env={warmstart.SOCKET_ENV: str(tmp_path / "none.sock")})
    assert nowhere.returncode == 5 and _fields(nowhere.stdout)["warm"] == ""


def test_the_socket_lives_in_a_directory_private_to_the_user(tmp_path: Path) -> None:
    path = Path(warmstart.socket_path(1, str(tmp_path)))
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    path.parent.chmod(0o755)  # someone opened it up: not used
    with pytest.raises(OSError, match="not a directory private"):
        warmstart.socket_path(1, str(tmp_path))


def test_the_warm_process_ends_with_its_owner(warm) -> None:
    warm.owner.kill()
    warm.owner.wait()
    assert warm.server.wait(timeout=30) == 0
    assert not os.path.exists(warm.sock)
    assert _fields(warm("0").stdout)["warm"] == ""  # a launcher then starts cold


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
