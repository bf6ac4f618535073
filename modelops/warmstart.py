"""Warm starts for flow-run processes: a fork server that has the heavy libraries imported.

A process worker starts a new interpreter for every flow run, and a training run spends most
of its first seconds importing Great Expectations, MLflow, scikit-learn, skops, pandas and
matplotlib (6-9 s on a 2-core machine) before it does any work. ``modelops worker`` starts
one *warm* process beside the worker that has imported them once, and runs each flow run as a
fork of it:

- the worker runs ``python -m modelops.warmstart -m prefect.engine`` (the **launcher**) where
  it would run ``python -m prefect.engine``; the launcher imports nothing heavy, hands the
  warm process its environment, working directory and standard streams (the file
  descriptors themselves, over a Unix socket), and waits;
- the warm process forks; the child takes that environment, directory and streams and runs
  ``prefect.engine`` as ``python -m`` would, importing Prefect and the project afresh (only
  third-party libraries, and the module that imports skops without torch, come pre-imported);
- the launcher passes the worker's signals on to the child (Ctrl-Z stops it with the launcher,
  and continuing the launcher continues it) and ends as the child ended (the same exit code, or
  the same signal), so the worker sees what it would have seen; a launcher killed outright takes
  its child with it.

Anything that makes a warm start unsafe makes it a cold one instead, never a failure: no warm
process (or it died), a different interpreter, an environment that differs from the warm
process's in anything but per-run settings (``PREFECT_*``, ``MODELOPS_*``, ``MLFLOW_*``,
``ML_MODEL_*``, which the libraries read when used: a job's ``TZ``, ``OMP_NUM_THREADS``,
``PYTHON*`` or locale would have been read at import), a project or installed-package file
changed since the warm process imported it (it then retires and starts its successor), a
socket that is not this user's, or a platform without Unix sockets that carry descriptors.
Children share the warm process's ``str`` hash seed (set ``PYTHONHASHSEED`` to choose it); the
``random`` and NumPy global generators are re-seeded in each child.

No Prefect here: the launcher must stay light, and the warm process must not have imported
Prefect (whose settings are read from the environment at import).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

SOCKET_ENV = "MODELOPS_WARM_SOCKET"  # where the warm process listens (set by the worker)
WARM_ENV = "MODELOPS_WARM_START"  # set in a warm-started child: the warm process's pid
PRELOAD_ENV = "MODELOPS_WARM_PRELOAD"  # comma-separated modules to import instead of PRELOAD
# What a flow run imports sooner or later and takes seconds to import; "module:function" calls
# the function after importing the module.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.preprocessing",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.model_selection",
    "great_expectations",
    "modelops.model_io:import_skops",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)
_MAX_MESSAGE = 4 << 20  # bytes of one request (the environment, mostly)
_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def socket_path(scope: int | str, directory: str | None = None) -> str:
    """The warm process's socket for ``scope`` (a worker's process id, or what the command
    line names): one per scope and interpreter, in a directory only this user can enter.

    Raises:
        OSError: that directory exists but is not this user's alone (then start cold).
    """
    import stat
    import tempfile

    key = hashlib.sha256(f"{sys.executable}\0{sys.version}\0{scope}".encode()).hexdigest()[:16]
    base = Path(directory or os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    private = base / f"modelops-warm-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        private.mkdir(mode=0o700)
    info = os.lstat(private)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{private} is not a directory private to this user: not used")
    return str(private / f"{key}.sock")


# Why every later request runs cold, once a file the warm process loaded has changed.
RETIRED = "a project or installed-package file changed since the warm process started"
_PER_RUN = ("PREFECT_", "MODELOPS_", "MLFLOW_", "ML_MODEL_")  # read when used, not at import
# A shell's own bookkeeping, different in every terminal and directory, read by no library.
_SHELL = frozenset({"PWD", "OLDPWD", "_", "SHLVL", "COLUMNS", "LINES"})


def _env_differences(env: dict[str, str], own: dict[str, str]) -> list[str]:
    """The variables (outside the per-run settings) a child would see differently from what
    the warm process's libraries saw when it imported them."""
    keys = (env.keys() ^ own.keys()) | {k for k in env.keys() & own.keys() if env[k] != own[k]}
    return sorted(k for k in keys if not k.startswith(_PER_RUN) and k not in _SHELL)


def _same_user(conn: socket.socket) -> bool:
    """Whether the process at the other end of a Unix socket runs as this user (where the
    platform says; elsewhere the private directory is the guard)."""
    import struct

    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    _pid, uid, _gid = struct.unpack(
        "3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    )
    return bool(uid == os.getuid())


# ---------------------------------------------------------------------------- the launcher


def launch(argv: list[str]) -> NoReturn:
    """Run ``python -m MODULE ARGS...`` warm if a warm process takes it, else cold (exec)."""
    if len(argv) < 2 or argv[0] != "-m":
        print("usage: python -m modelops.warmstart -m MODULE [ARGS...]", file=sys.stderr)
        os._exit(2)
    # Its own process group, as Prefect's default start gives a flow run: a Ctrl-C at the
    # worker's terminal does not reach the run, and a signal for the run reaches all of it.
    with contextlib.suppress(OSError):
        os.setsid()
    path = os.environ.get(SOCKET_ENV)
    if path:
        try:
            status = run_warm(path, argv)
        except WarmProcessLost:
            status = -int(signal.SIGKILL)  # as the worker would see a run killed outright
        if status is not None:
            exit_like(status)
    os.execv(sys.executable, [sys.executable, *argv])


class WarmProcessLost(Exception):
    """The warm process ended while it ran a command: the command was killed with it."""


def run_warm(path: str, argv: list[str], env: dict[str, str] | None = None) -> int | None:
    """Run ``python ARGV`` (``-m MODULE ARGS...``) as a fork of the warm process at ``path``,
    with this process's standard streams, directory and ``env`` (default: its environment):
    the child's exit status (negative: killed by that signal), or None to run cold (nothing
    ran; why is printed when the warm process said).

    Raises:
        WarmProcessLost: the warm process ended during the run (the run is killed).
    """
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(path)
        if not _same_user(conn):
            return None
        request = {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ if env is None else env),
            "executable": sys.executable,
        }
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        reply = json.loads(conn.recv(65536) or b"{}")
    except (OSError, ValueError):
        return None  # none listening (not up yet, or gone), or it went away: cold
    if "pid" not in reply:  # it said why not (see _Server._accept)
        print(f"modelops.warmstart: starting cold: {reply.get('cold')}", file=sys.stderr)
        return None
    pid = int(reply["pid"])

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)  # the child leads its own group: it and what it started

    def suspend(_signum: int, _frame: Any) -> None:
        # Ctrl-Z stops the terminal's foreground group: this process, not the child (it is in
        # the warm process's session). Stop the child, then this process; a shell's fg or bg
        # continues this process, which continues the child. SIGSTOP, not SIGTSTP: the kernel
        # drops a SIGTSTP to an orphaned process group (a worker's launcher leads its own).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)  # stopped here until a SIGCONT
        forward(signal.SIGCONT, None)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    signal.signal(signal.SIGTSTP, suspend)
    signal.signal(signal.SIGCONT, forward)  # a stop of this process by other means, undone
    while True:
        message = conn.recv(65536)
        if not message:  # the warm process died: nobody can report the child's end now
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            raise WarmProcessLost(f"the warm process ended while it ran {argv[1:]}")
        status = json.loads(message)
        if "exit" in status:
            return int(status["exit"])


def exit_like(status: int) -> NoReturn:
    """End as the child ended: its exit code, or killed by its signal."""
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        time.sleep(1)  # a signal that does not kill (stop/continue) falls through
        os._exit(128 - status)
    os._exit(status)


def start_server(
    path: str,
    owner: int,
    preload: tuple[str, ...] | None = None,
    env: dict[str, str] | None = None,
    after_fork: str | None = None,
) -> None:
    """Start a warm process for ``owner`` in the background (it quits if one is running),
    with ``env`` (default: this process's environment): what later runs are compared with.
    ``after_fork`` ("module:function") is called in each child once it has the launcher's
    environment, before the program runs: where a preloaded library that read its settings
    at import reads them again."""
    import subprocess

    base = os.environ if env is None else env
    env = {k: v for k, v in base.items() if not k.startswith("PREFECT__")}
    extra = ["--preload", ",".join(preload)] if preload else []
    if after_fork:
        extra += ["--after-fork", after_fork]
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelops.warmstart",
            "--serve",
            path,
            "--owner",
            str(owner),
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        close_fds=True,
    )


# ------------------------------------------------------------------------ the warm process


class _Server:
    """The warm process: imports ``PRELOAD``, then forks one child per launcher."""

    def __init__(
        self,
        path: str,
        owner: int,
        preload: tuple[str, ...] = PRELOAD,
        after_fork: str | None = None,
    ) -> None:
        self.path, self.owner, self.preload = path, owner, preload
        self.after_fork = after_fork
        self.children: dict[int, socket.socket] = {}  # pid -> its launcher's connection
        self.files: dict[str, int] = {}
        self.env = dict(os.environ)  # what the libraries see as they are imported
        self.added: dict[str, str] = {}  # what they put into the environment themselves
        self.unsafe: str | None = None  # why every request runs cold, if one does

    def run(self) -> dict[str, Any] | None:
        """Serve until the owner is gone (or a loaded file changed) and every child ended.
        Returns in a forked child: the request it is to run."""
        import fcntl
        import importlib
        import selectors
        import threading

        lock = open(self.path + ".lock", "a")  # noqa: SIM115  (held while serving)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # another warm process serves this worker
        for name in self.preload:
            module, _, function = name.partition(":")
            with contextlib.suppress(Exception):  # a missing optional library is no reason
                imported = importlib.import_module(module)
                if function:
                    getattr(imported, function)()
        # e.g. scikit-learn sets KMP_INIT_AT_FORK: a cold child's imports would set it too.
        self.added = {k: v for k, v in os.environ.items() if self.env.get(k) != v}
        self.files = _loaded_files()
        if threading.active_count() > 1:  # forking a process with threads is not safe
            self.unsafe = f"the warm process has {threading.active_count()} threads"
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.bind(self.path)
        sock.listen(16)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        listener: socket.socket | None = sock
        while listener is not None or self.children:
            for key, _ in selector.select(timeout=0.2):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                if ready is not listener:  # a launcher went away: it was killed, so is its run
                    selector.unregister(ready)
                    pid = next(p for p, c in self.children.items() if c is ready)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    continue
                conn, _ = ready.accept()
                request = self._accept(conn)
                if request is None:
                    continue
                # The child leads its own process group before the launcher learns its pid:
                # a signal the launcher forwards to the group, or its SIGKILL when this process
                # dies, must not find the group missing while the child is still starting.
                grouped, led = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: drop everything of the server's
                    os.setsid()
                    os.close(grouped)
                    os.close(led)
                    selector.close()
                    ready.close()
                    lock.close()
                    for other in self.children.values():
                        other.close()
                    conn.close()
                    request["after_fork"] = self.after_fork
                    return request
                os.close(led)
                os.read(grouped, 1)  # end of file: the child has called setsid (or died)
                os.close(grouped)
                self._started(conn, pid, request, selector)
            self._reap(selector)
            if listener is not None and (self.unsafe == RETIRED or not _alive(self.owner)):
                # Stop taking launchers (children already running are still answered on their
                # own connections); after a file changed, a fresh warm process takes over.
                selector.unregister(listener)
                listener.close()
                listener = None
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                lock.close()
                if _alive(self.owner):
                    start_server(self.path, self.owner, self.preload, self.env, self.after_fork)
        return None

    def _accept(self, conn: socket.socket) -> dict[str, Any] | None:
        """Read one launcher's request; None (and the launcher told to run cold) if it is not
        to run warm."""
        fds: list[int] = []
        try:
            conn.settimeout(2)  # a launcher that connects and says nothing holds up no one
            if not _same_user(conn):
                raise OSError("another user")
            data, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
            request = json.loads(data)
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return None
        why = self.unsafe
        if why is not None:
            pass
        elif len(fds) != 3:
            why = "no standard streams"
        elif request.get("executable") != sys.executable:
            why = "another interpreter"
        elif _env_differences(request.get("env", {}), self.env):
            why = "the environment differs: " + ", ".join(
                _env_differences(request.get("env", {}), self.env)[:5]
            )
        elif _changed(self.files):
            why = self.unsafe = RETIRED  # a fresh warm process takes over
        if why is not None:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"cold": why}).encode())
            conn.close()
            return None
        request["fds"] = fds
        request["env"] = {**self.added, **request["env"]}
        return request

    def _started(
        self, conn: socket.socket, pid: int, request: dict[str, Any], selector: Any
    ) -> None:
        import selectors

        for fd in request["fds"]:
            os.close(fd)
        self.children[pid] = conn
        try:
            conn.send(json.dumps({"pid": pid}).encode())
        except OSError:  # the launcher is gone already
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        selector.register(conn, selectors.EVENT_READ)

    def _reap(self, selector: Any) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
            conn.close()


def _become(request: dict[str, Any]) -> NoReturn:
    """In a forked child: become ``python -m MODULE ARGS`` with the launcher's environment,
    directory and standard streams, then exit as that program would."""
    import runpy

    for signum in (*_FORWARDED, signal.SIGCHLD, signal.SIGTSTP, signal.SIGCONT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    import io

    for stream in (sys.stdout, sys.stderr):  # buffered as Python would for these streams
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(line_buffering=stream is sys.stderr or stream.isatty())
    warm = str(os.getppid())
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[WARM_ENV] = warm
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # as `python -m` does
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # (the random module re-seeds itself after a fork)
        numpy.random.seed()
    if request.get("after_fork"):
        import importlib

        module, _, function = request["after_fork"].partition(":")
        getattr(importlib.import_module(module), function)()
    module, *args = request["argv"][1:]
    sys.argv = [module, *args]
    code: Any = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # as the interpreter ends: the traceback, then killed by SIGINT
        import traceback

        traceback.print_exc()
        quick_exit(0, signal.SIGINT)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    quick_exit(code or 0)


def quick_exit(code: int, signum: int | None = None) -> NoReturn:
    """Exit as the interpreter would, without tearing down every module.

    A flow run leaves ~5,000 modules loaded, and the interpreter's teardown of them takes
    1-1.5 s after the work is done. This waits for the threads the interpreter would wait for,
    runs the exit handlers (Prefect's and logging's flushes among them), flushes the standard
    streams and ends the process (``signum``: killed by that signal, as after an unhandled
    KeyboardInterrupt).
    """
    import atexit
    import threading

    # What the interpreter does first: tell idle pool threads to stop (concurrent.futures
    # registers that here), then join the non-daemon threads.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    if signum is not None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(code)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _loaded_files() -> dict[str, int]:
    """Modification times of what the warm process imported that may change under it: the
    project's own files, and the package directories (an install touches them)."""
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    packages = {p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)}
    files: dict[str, int] = {}
    for path in packages:
        files[path] = os.stat(path).st_mtime_ns
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name or name.startswith(stdlib) or any(name.startswith(p) for p in packages):
            continue
        with contextlib.suppress(OSError):
            files[name] = os.stat(name).st_mtime_ns
    return files


def _changed(files: dict[str, int]) -> bool:
    for name, mtime in files.items():
        try:
            if os.stat(name).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def main(argv: list[str]) -> NoReturn:
    if argv[:1] == ["--serve"]:
        import argparse

        parser = argparse.ArgumentParser(prog="python -m modelops.warmstart")
        parser.add_argument("--serve", required=True, help="the socket to listen on")
        parser.add_argument("--owner", type=int, required=True, help="end with this process")
        parser.add_argument(
            "--preload",
            help="comma-separated modules (default: MODELOPS_WARM_PRELOAD, else PRELOAD)",
        )
        parser.add_argument(
            "--after-fork", help="module:function called in each child, in its environment"
        )
        args = parser.parse_args(argv)
        chosen = args.preload or os.environ.get(PRELOAD_ENV)
        preload = tuple(m for m in chosen.split(",") if m) if chosen else PRELOAD
        request = _Server(args.serve, args.owner, preload, args.after_fork).run()
        if request is None:
            os._exit(0)
        _become(request)
    launch(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
