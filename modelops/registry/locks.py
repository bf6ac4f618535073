"""The model lock: one writer of a model's aliases (or of what serves it) at a time, through
every door — a flow on any worker, the operator API, the command line, the Python API.

The lock lives in the registry it protects, so it excludes writers on every machine that shares
the tracking server, whatever started them and whether or not a Prefect server is about. MLflow
has no compare-and-set on aliases, but creating a registered model is one: the store refuses a
second model of the same name (a unique key in SQL stores). Holding the lock is owning the
registered model ``modelops-lock.<kind>.<digest of the model name>``; releasing it deletes it.

The holder renews a lease (``MODELOPS_LOCK_LEASE_SECONDS``, 60 s) from a background thread. A
holder that was killed leaves the lock behind until its lease runs out; the next writer then
breaks it. Breaking re-reads the holder first and deletes only the stale one it saw; two
writers breaking the same stale lock in the same few milliseconds is the one window this
cannot close (MLflow offers no conditional delete) — the journal's post-move check
(``promote_to_production``) still reports such a collision instead of hiding it.

The lock is re-entrant within one context (:mod:`contextvars`: a Prefect task called from a flow
that holds it, or ``promote_model`` calling ``promote_to_production``), so a door can take it
around a whole decision and the core functions it calls take it again for free.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from modelops.errors import RegistryError, is_transient
from modelops.registry.store import already_exists, is_missing
from modelops.settings import get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

PROMOTION = "promotion"  # moves of a model's aliases
DEPLOYMENT = "deployment"  # changes of what serves a model
ROLLOUT = "rollout"  # a live rollout, held from its start to its end: one per model at a time
WAIT_SECONDS = 900.0
CLOCK_SKEW_SECONDS = 5.0  # holders on other machines: their clock may run a little behind
_PREFIX = "modelops-lock"
_TAG = "modelops.lock."

_held: contextvars.ContextVar[dict[tuple[str, str, str], Lease]] = contextvars.ContextVar(
    "modelops_locks_held"
)


class LockTimeout(RegistryError):
    """Another writer held the model's lock for longer than this one would wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, and until when its lease runs."""

    token: str
    owner: str
    since: str
    expires: float

    def stale(self, now: float) -> bool:
        """Whether the lease ran out (its holder stopped renewing: killed, or cut off)."""
        return now > self.expires + CLOCK_SKEW_SECONDS


def lock_name(kind: str, model_name: str) -> str:
    """The registered model that is the lock: fixed length, legal for any legal model name."""
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:24]
    return f"{_PREFIX}.{kind}.{digest}"


def _key(client: MlflowClient, kind: str, model_name: str) -> tuple[str, str, str]:
    registry = str(getattr(client, "_registry_uri", None) or client.tracking_uri)
    if registry.startswith("sqlite:///"):  # one store, however its path is spelled
        registry = "sqlite:///" + os.path.realpath(registry.removeprefix("sqlite:///"))
    return (registry, kind, model_name)


def is_held(client: MlflowClient, model_name: str, kind: str = PROMOTION) -> bool:
    """Whether this context holds ``kind``'s lock of ``model_name``, and has not lost it."""
    lease = _held.get({}).get(_key(client, kind, model_name))
    return lease is not None and not lease.lost.is_set()


def _read(client: MlflowClient, name: str) -> Holder | None:
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags or {}
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
    try:
        expires = float(tags.get(_TAG + "expires", "0"))
    except ValueError:
        expires = 0.0
    return Holder(
        tags.get(_TAG + "token", ""),
        tags.get(_TAG + "owner", "unknown"),
        tags.get(_TAG + "since", "?"),
        expires,
    )


def _try_create(client: MlflowClient, name: str, model_name: str, kind: str, me: Holder) -> bool:
    from mlflow.exceptions import MlflowException

    tags = {
        _TAG + "model": model_name,
        _TAG + "kind": kind,
        _TAG + "token": me.token,
        _TAG + "owner": me.owner,
        _TAG + "since": me.since,
        _TAG + "expires": f"{me.expires:.3f}",
    }
    try:
        client.create_registered_model(
            name,
            tags=tags,
            description=f"The {kind} lock of model {model_name!r}, held by {me.owner} "
            f"(modelops; deleted when released, broken when its lease runs out).",
        )
    except MlflowException as exc:
        # Taken; or (SQL stores) released between the refused insert and the store's read of
        # the existing model; or the store briefly locked: all mean "look again".
        if already_exists(exc) or is_missing(exc) or is_transient(exc):
            return False
        raise
    return True


def _break_if_stale(client: MlflowClient, name: str, seen: Holder) -> None:
    """Delete a lock whose lease ran out, if it is still the one seen (never a fresh one)."""
    from mlflow.exceptions import MlflowException

    again = _read(client, name)
    if again is None or again.token != seen.token or not again.stale(time.time()):
        return
    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if not is_missing(exc):
            raise


@dataclass
class Lease:
    """A lock this process holds: its token, and whether it was lost (broken by another writer
    after renewals failed for longer than the lease: no alias may move under it then)."""

    name: str
    token: str
    lost: threading.Event = field(default_factory=threading.Event)


def _renew(client: MlflowClient, lease: Lease, seconds: float, stop: threading.Event) -> None:
    """Push the lease forward every third of it until released. A failed renewal is retried at
    the next tick (one lost request must not cost the lock); once the lock is gone or someone
    else's, the lease is marked lost and renewing stops."""
    while not stop.wait(seconds / 3):
        try:
            holder = _read(client, lease.name)
            if holder is None or holder.token != lease.token:
                lease.lost.set()
                return
            client.set_registered_model_tag(
                lease.name, _TAG + "expires", f"{time.time() + seconds:.3f}"
            )
        except Exception:
            continue


def _release(client: MlflowClient, lease: Lease) -> None:
    """Delete the lock if it is still ours; a failure leaves it to run out its lease (at most
    two tries: releasing is not worth holding up a change that is already done)."""
    for attempt in range(2):
        try:
            holder = _read(client, lease.name)
            if holder is not None and holder.token == lease.token:
                client.delete_registered_model(lease.name)
            return
        except Exception:
            time.sleep(0.2 * (attempt + 1))


def _acquire(
    client: MlflowClient,
    model_name: str,
    kind: str,
    wait_seconds: float,
    lease_seconds: float,
    owner: str,
) -> Lease:
    """Create the lock, waiting for (or breaking the stale lease of) another holder."""
    lease = Lease(lock_name(kind, model_name), uuid.uuid4().hex)
    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    other: Holder | None = None
    while True:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        me = Holder(lease.token, owner, since, time.time() + lease_seconds)
        if _try_create(client, lease.name, model_name, kind, me):
            return lease
        try:
            other = _read(client, lease.name)
            if other is not None and other.stale(time.time()):
                _break_if_stale(client, lease.name, other)
                continue
        except Exception as exc:
            if not is_transient(exc):
                raise  # the store is briefly unavailable: look again, until the deadline
        if time.monotonic() >= deadline:
            shown = f"{other.owner} since {other.since}" if other else "another writer"
            raise LockTimeout(
                f"Model {model_name!r} is locked for {kind} by {shown}; waited "
                f"{wait_seconds:.0f}s. Try again when that change has finished (a holder that "
                f"died frees the lock about {lease_seconds + CLOCK_SKEW_SECONDS:.0f}s after it "
                f"last renewed)."
            )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 1.0)


@contextlib.contextmanager
def model_lock(
    client: MlflowClient,
    model_name: str,
    kind: str = PROMOTION,
    *,
    wait_seconds: float = WAIT_SECONDS,
    lease_seconds: float | None = None,
    owner: str | None = None,
) -> Iterator[None]:
    """Hold ``kind``'s lock of ``model_name`` for the block (re-entrant in this context).

    Args:
        client: the MLflow client of the registry the lock protects.
        model_name: the registered model.
        kind: :data:`PROMOTION` (alias moves) or :data:`DEPLOYMENT` (what serves the model).
        wait_seconds: how long to wait for another holder.
        lease_seconds: how long a holder that stops renewing keeps the lock (default:
            ``MODELOPS_LOCK_LEASE_SECONDS``, 60).
        owner: who holds it, as shown to whoever waits (default: user@host pid).

    Raises:
        LockTimeout: another holder kept it for longer than ``wait_seconds``.
    """
    key = _key(client, kind, model_name)
    held = _held.get({})
    if key in held:
        yield
        return
    who = owner or f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    if lease_seconds is None:
        lease_seconds = get_settings().lock_lease_seconds
    lease = _acquire(client, model_name, kind, wait_seconds, lease_seconds, who)
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(client, lease, lease_seconds, stop), daemon=True
    )
    renewer.start()
    reset = _held.set({**held, key: lease})
    try:
        yield
    finally:
        _held.reset(reset)
        stop.set()
        renewer.join(timeout=5)  # a renewal stuck on a hung store must not hold up the exit
        _release(client, lease)
