"""The rollout evidence file: what a two-version server keeps is read back exactly, in order,
and stays within its bound with what went counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelops.errors import ConfigurationError
from modelops.serving.evidence import Evidence
from modelops.serving.model import Answer
from modelops.serving.traffic import Label


def test_every_kind_of_answer_is_read_back_as_it_was_given(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path / "evidence.db", flush_seconds=60)
    try:
        binary = Answer([1, 0], np.array([[0.25, 0.75], [0.875, 0.125]], np.float32), [0, 1])
        text = Answer([{"label": "pos", "score": 0.5}], None, [])
        given = [
            ('a "quoted" id, ünïcode ✓', "1", True, 200, 0.001, 2, binary),
            ("r-2", "2", False, 200, 0.5, 1, Answer(["x'y"], None, [])),
            ("r-3", "10", True, 400, 0.0, 0, None),
            ("r-4", "1", True, 200, 1e-9, 1, text),
            ("r-5", "2", False, 200, 2.0, 1, Answer([3.5], None, [])),
        ]
        for entry in given:
            evidence.add(*entry)
        kept = evidence.read()
    finally:
        evidence.close()
    assert kept["request_id"] == [g[0] for g in given]
    assert kept["version"] == [g[1] for g in given]
    assert kept["answered"] == [int(g[2]) for g in given]
    assert kept["status"] == [g[3] for g in given]
    assert kept["seconds"] == [g[4] for g in given]
    assert kept["predictions"] == [[1, 0], ["x'y"], None, ["pos"], [3.5]]
    # Only a binary classifier's answers carry scores: the positive class's probabilities.
    assert kept["scores"] == [[0.75, 0.125], None, None, None, None]
    assert kept["labels"] == [None] * 5
    assert kept["at"] == sorted(kept["at"])


def test_past_its_limit_the_oldest_answers_go_with_their_labels_and_are_counted(
    tmp_path: Path,
) -> None:
    evidence = Evidence(tmp_path / "evidence.db", limit=5, flush_seconds=60)
    try:
        for i in range(3):
            evidence.add(f"r{i}", "1", True, 200, 0.001, 1, Answer([1], None, []))
        assert evidence.label([Label("r0", (1,)), Label("r2", (0,))]) == {
            "accepted": 2,
            "already_known": 0,
        }
        for i in range(3, 8):
            evidence.add(f"r{i}", "1", True, 200, 0.001, 1, Answer([1], None, []))
        kept = evidence.read()
        assert kept["request_id"] == ["r3", "r4", "r5", "r6", "r7"]
        assert kept["dropped"] == {"answers_dropped": 3, "labels_dropped": 2}
        assert evidence.describe()["answers"] == 5 and evidence.describe()["labels"] == 0
        with pytest.raises(ConfigurationError, match="Unknown request id 'r1'"):
            evidence.label([Label("r7", (1,)), Label("r1", (1,))])
        assert evidence.read()["labels"] == [None] * 5  # all or none: r7 was not stored
    finally:
        evidence.close()


def test_generated_request_ids_are_version_7_uuids_that_grow_with_time() -> None:
    import time
    import uuid

    from modelops.serving.app import new_request_id

    before = time.time_ns() // 1_000_000
    ids = [new_request_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for request_id in ids[:: len(ids) // 50]:
        parsed = uuid.UUID(request_id)
        assert parsed.hex == request_id and parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    stamps = [int(request_id[:12], 16) for request_id in ids]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after


def test_a_models_newest_evidence_files_are_kept_and_older_ones_go_whole(
    tmp_path: Path,
) -> None:
    import os

    from modelops.serving.evidence import KEPT_FILES, prune

    folder = tmp_path / "lead-scoring"
    files = []
    for age in range(KEPT_FILES + 2):  # file 0 is the newest
        evidence = Evidence(folder / f"v1-v2-{age}.db", flush_seconds=60)
        evidence.add("r", "1", True, 200, 0.001, 1, None)
        evidence.close()
        (folder / f"v1-v2-{age}.db-wal").write_bytes(b"")
        for part in folder.glob(f"v1-v2-{age}.db*"):
            os.utime(part, (1e9 - age * 60, 1e9 - age * 60))
        files.append(folder / f"v1-v2-{age}.db")
    # A file whose WAL was written last is the newest, however old the file itself.
    os.utime(folder / f"v1-v2-{KEPT_FILES + 1}.db-wal", (2e9, 2e9))
    (folder / "rollout.json").write_text("{}")

    gone = prune(folder)

    assert gone == [files[KEPT_FILES - 1], files[KEPT_FILES]]
    kept = [*range(KEPT_FILES - 1), KEPT_FILES + 1]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"v1-v2-{i}.db{end}" for i in kept for end in ("", "-wal")] + ["rollout.json"]
    )
    newest = Evidence(files[0])
    try:
        assert newest.read()["request_id"] == ["r"]  # what is kept still reads
    finally:
        newest.close()
    assert prune(tmp_path / "no-such-model") == []
