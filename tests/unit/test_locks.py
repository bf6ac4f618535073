"""The model lock, on a real MLflow store: exclusion, waiting, re-entrance, leases, and the
journal refusing to move an alias without it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from mlflow import MlflowClient

from modelops.errors import ConfigurationError, RegistryError
from modelops.registry import locks, transaction


@pytest.fixture
def client(mlflow_store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)


def _models(client: MlflowClient) -> list[str]:
    return [m.name for m in client.search_registered_models()]


def test_a_second_holder_waits_until_the_first_releases(client: MlflowClient) -> None:
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with locks.model_lock(client, "m", owner="first"):
            order.append("first in")
            holding.set()
            time.sleep(1.0)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    with locks.model_lock(client, "m", owner="second"):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert _models(client) == []  # released: nothing left in the registry


def test_waiting_too_long_names_the_holder_and_changes_nothing(client: MlflowClient) -> None:
    with locks.model_lock(client, "m", owner="alice@host pid 1"):
        failure: list[BaseException] = []

        def other() -> None:
            try:
                with locks.model_lock(client, "m", wait_seconds=0.3):
                    pass
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(failure) == 1 and isinstance(failure[0], locks.LockTimeout)
        assert "alice@host pid 1" in str(failure[0]) and "'m'" in str(failure[0])
        assert len(_models(client)) == 1  # still ours
    assert _models(client) == []


def test_the_lock_is_reentrant_in_one_context_and_per_model_and_kind(client: MlflowClient) -> None:
    with locks.model_lock(client, "m"):
        assert locks.is_held(client, "m")
        with locks.model_lock(client, "m", wait_seconds=0.1):  # would time out if not re-entrant
            pass
        assert locks.is_held(client, "m")  # the inner exit did not release it
        with locks.model_lock(client, "m", locks.DEPLOYMENT, wait_seconds=0.1):
            assert locks.is_held(client, "m", locks.DEPLOYMENT)
        with locks.model_lock(client, "other model", wait_seconds=0.1):
            pass
    assert not locks.is_held(client, "m") and _models(client) == []


def test_a_dead_holders_lease_runs_out_and_the_lock_is_taken(client: MlflowClient) -> None:
    """A holder killed mid-change never releases: its lease (not renewed) frees the lock."""
    dead = locks.Holder("dead-token", "killed@host pid 9", "2026-01-01T00:00:00+00:00", 0.0)
    name = locks.lock_name(locks.PROMOTION, "m")
    assert locks._try_create(client, name, "m", locks.PROMOTION, dead)
    started = time.monotonic()
    with locks.model_lock(client, "m", wait_seconds=5):
        holder = locks._read(client, name)
        assert holder is not None and holder.token != "dead-token"
    assert time.monotonic() - started < 5


def test_a_live_holder_renews_its_lease(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "CLOCK_SKEW_SECONDS", 0.0)  # stale as soon as a lease runs out
    # A 2 s lease renewed every 2/3 s: stale only if no renewal came for 2 s, which a loaded
    # machine (the suite runs in parallel) can delay by a second but not by two.
    with locks.model_lock(client, "m", lease_seconds=2.0):
        name = locks.lock_name(locks.PROMOTION, "m")
        first = locks._read(client, name)
        time.sleep(2.6)  # past the first lease: only a renewal keeps it
        later = locks._read(client, name)
        assert first is not None and later is not None and later.token == first.token
        assert later.expires > first.expires and not later.stale(time.time())
        with pytest.raises(locks.LockTimeout):
            _in_other_thread(lambda: locks.model_lock(client, "m", wait_seconds=0.5))


def test_the_lease_is_the_environments_unless_a_caller_says(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = locks.lock_name(locks.PROMOTION, "m")

    def lease() -> float:
        holder = locks._read(client, name)
        assert holder is not None
        return holder.expires - time.time()

    with locks.model_lock(client, "m"):
        assert 55 < lease() <= 60
    monkeypatch.setenv("MODELOPS_LOCK_LEASE_SECONDS", "7.5")
    with locks.model_lock(client, "m"):
        assert 5 < lease() <= 7.5
    with locks.model_lock(client, "m", lease_seconds=30):
        assert 25 < lease() <= 30
    monkeypatch.setenv("MODELOPS_LOCK_LEASE_SECONDS", "0")
    with pytest.raises(ConfigurationError, match="MODELOPS_LOCK_LEASE_SECONDS='0' is not a valid"):
        locks.model_lock(client, "m").__enter__()
    assert locks._read(client, name) is None  # nothing was taken


def _in_other_thread(lock: Any) -> None:
    raised: list[BaseException] = []

    def run() -> None:
        try:
            with lock():
                pass
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if raised:
        raise raised[0]


def test_any_legal_model_name_has_a_legal_lock(client: MlflowClient) -> None:
    for name in ("東京 model", "o'brien", "a" * 256, "1.2-x_y z", 'say "hi"'):
        with locks.model_lock(client, name, wait_seconds=1):
            assert _models(client) == [locks.lock_name(locks.PROMOTION, name)]
    assert _models(client) == []


def test_a_holder_whose_lock_was_broken_can_move_no_alias(
    client: MlflowClient, make_version: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals failed for longer than the lease and another writer broke the lock: the old
    holder learns it at its next renewal, and its journal then refuses to start."""
    make_version("m")
    with locks.model_lock(client, "m", lease_seconds=0.6):
        name = locks.lock_name(locks.PROMOTION, "m")
        client.delete_registered_model(name)  # what a writer breaking a stale lease does
        thief = locks.Holder("thief", "other@host pid 2", "now", time.time() + 60)
        assert locks._try_create(client, name, "m", locks.PROMOTION, thief)
        deadline = time.monotonic() + 30  # the next renewal tick (0.2 s), however loaded
        while locks.is_held(client, "m") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not locks.is_held(client, "m")
        with pytest.raises(RegistryError, match="not lost"), transaction(client, "m"):
            pass
    holder = locks._read(client, name)
    assert holder is not None and holder.token == "thief"  # the release left theirs alone


def test_the_journal_refuses_to_move_an_alias_without_the_lock(
    client: MlflowClient, make_version: Any, registry_snapshot: Any
) -> None:
    make_version("m")
    before = registry_snapshot()
    with pytest.raises(RegistryError, match="promotion lock"), transaction(client, "m") as journal:
        journal.set_alias("production", "1")
    assert registry_snapshot() == before
    with locks.model_lock(client, "m"), transaction(client, "m") as journal:
        journal.set_alias("production", "1")
    assert client.get_registered_model("m").aliases == {"staging": 1, "production": 1}
