"""The model lock: one writer of a model's aliases (or of what serves it) at a time, through
every door — a flow on any worker, the operator API, the command line, the Python API.

The lock lives in the registry it protects, so it excludes writers on every machine that shares
the tracking server, whatever started them and whether or not a Prefect server is about. MLflow
has no compare-and-set on aliases, but creating a registered model is one: the store refuses a
second model of the same name (a unique key in SQL stores). Holding the lock is owning the
registered model ``modelops-lock.<kind>.<digest of the model name>``; releasing it deletes it.

The holder renews a lease (:data:`LEASE_SECONDS`) from a background thread. A holder that was
killed leaves the lock behind until its lease runs out; the next writer then breaks it. Breaking
re-reads the holder first and deletes only the stale one it saw; two writers breaking the same
stale lock in the same few milliseconds is the one window this cannot close (MLflow offers no
conditional delete) — the journal's post-move check (``promote_to_production``) still reports
such a collision instead of hiding it.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from modelops.errors import RegistryError
from modelops.registry.store import already_exists, is_missing

if TYPE_CHECKING:
    from mlflow import MlflowClient

PROMOTION = "promotion"  # moves of a model's aliases
DEPLOYMENT = "deployment"  # changes of what serves a model
LEASE_SECONDS = 60.0
WAIT_SECONDS = 900.0
CLOCK_SKEW_SECONDS = 5.0  # holders on other machines: their clock may run a little behind
_PREFIX = "modelops-lock"
_TAG = "modelops.lock."

_held: contextvars.ContextVar[frozenset[tuple[str, str, str]]] = contextvars.ContextVar(
    "modelops_locks_held", default=frozenset()
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


def is_lock(registered_model_name: str) -> bool:
    """Whether a registered model is one of these locks (hide it from model listings)."""
    return registered_model_name.startswith(_PREFIX + ".")


def _key(client: MlflowClient, kind: str, model_name: str) -> tuple[str, str, str]:
    registry = getattr(client, "_registry_uri", None) or client.tracking_uri
    return (str(registry), kind, model_name)


def is_held(client: MlflowClient, model_name: str, kind: str = PROMOTION) -> bool:
    """Whether this context holds ``kind``'s lock of ``model_name``."""
    return _key(client, kind, model_name) in _held.get()


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
        if already_exists(exc):
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


def _renew(
    client: MlflowClient, name: str, token: str, lease: float, stop: threading.Event
) -> None:
    """Push the lease forward every third of it until released (a failed renewal is retried at
    the next tick: one lost request must not cost the lock)."""
    while not stop.wait(lease / 3):
        with contextlib.suppress(Exception):
            holder = _read(client, name)
            if holder is None or holder.token != token:
                return  # broken by someone else after our lease ran out: nothing to renew
            client.set_registered_model_tag(name, _TAG + "expires", f"{time.time() + lease:.3f}")


def _release(client: MlflowClient, name: str, token: str) -> None:
    """Delete the lock if it is still ours; a failure leaves it to run out its lease."""
    for attempt in range(3):
        try:
            holder = _read(client, name)
            if holder is not None and holder.token == token:
                client.delete_registered_model(name)
            return
        except Exception:
            if attempt == 2:
                return  # the lease frees it: releasing is not worth failing a finished change
            time.sleep(0.2 * (attempt + 1))


@contextlib.contextmanager
def model_lock(
    client: MlflowClient,
    model_name: str,
    kind: str = PROMOTION,
    *,
    wait_seconds: float = WAIT_SECONDS,
    lease_seconds: float = LEASE_SECONDS,
    owner: str | None = None,
) -> Iterator[None]:
    """Hold ``kind``'s lock of ``model_name`` for the block (re-entrant in this context).

    Args:
        client: the MLflow client of the registry the lock protects.
        model_name: the registered model.
        kind: :data:`PROMOTION` (alias moves) or :data:`DEPLOYMENT` (what serves the model).
        wait_seconds: how long to wait for another holder.
        lease_seconds: how long a holder that stops renewing keeps the lock.
        owner: who holds it, as shown to whoever waits (default: user@host pid).

    Raises:
        LockTimeout: another holder kept it for longer than ``wait_seconds``.
    """
    key = _key(client, kind, model_name)
    held = _held.get()
    if key in held:
        yield
        return
    name = lock_name(kind, model_name)
    who = owner or f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        me = Holder(token, who, since, time.time() + lease_seconds)
        if _try_create(client, name, model_name, kind, me):
            break
        other = _read(client, name)
        if other is not None and other.stale(time.time()):
            _break_if_stale(client, name, other)
            continue
        if time.monotonic() >= deadline:
            shown = f"{other.owner} since {other.since}" if other else "another writer"
            raise LockTimeout(
                f"Model {model_name!r} is locked for {kind} by {shown}; waited {wait_seconds:.0f}s. "
                f"Try again when that change has finished (a holder that died frees the lock "
                f"within {lease_seconds:.0f}s)."
            )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 1.0)
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(client, name, token, lease_seconds, stop), daemon=True
    )
    renewer.start()
    reset = _held.set(held | {key})
    try:
        yield
    finally:
        _held.reset(reset)
        stop.set()
        renewer.join()
        _release(client, name, token)
