"""What a two-version server keeps for the live analysis: every answer of either version, and
the labels sent to ``/feedback``, in one SQLite file that all the server's workers share.

A request only appends to this worker's list; a thread writes the list every fraction of a
second in one transaction (``/feedback`` writes what is pending first, so a label for an answer
this worker just gave is never refused as unknown). The file is bounded: past ``limit``
answers, the oldest go (with their labels), and what went is counted (``dropped``), as the
telemetry buffer does.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from modelops.errors import ConfigurationError

if TYPE_CHECKING:
    from modelops.serving.model import Answer
    from modelops.serving.traffic import Label

log = logging.getLogger("modelops.serving")

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    version TEXT NOT NULL,
    answered INTEGER NOT NULL,   -- 1: this answer went to the client; 0: scored in shadow
    status INTEGER NOT NULL,
    seconds REAL NOT NULL,       -- this version's time to score the request (the model's)
    at REAL NOT NULL,
    rows INTEGER NOT NULL,
    predictions TEXT,            -- JSON list, one per row
    scores TEXT                  -- JSON list of positive-class probabilities (binary models)
);
-- Feedback finds a request's answers by id; a request id a client sent twice keeps both.
CREATE INDEX IF NOT EXISTS answers_by_request ON answers (request_id);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY,
    labels BLOB NOT NULL,        -- JSON list, one per row
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    active INTEGER NOT NULL,     -- 0: the candidate is out of traffic (an abort)
    weight REAL NOT NULL,
    until REAL NOT NULL          -- the candidate takes traffic until then (the rollout's lease)
);
"""


# One flush: a JSON array of answers, each an array in the table's column order (json_extract
# rather than ->>, which needs SQLite 3.38; a list comes out as its JSON text, a null as NULL).
INSERT_BATCH = """
INSERT INTO answers (request_id, version, answered, status, seconds, at, rows, predictions, scores)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]')
FROM json_each(?) ORDER BY key
"""

# A model's evidence files kept under $MODELOPS_HOME (each up to MODELOPS_SERVE_MAX_EVIDENCE
# answers): older ones go when a server starts another, so rollouts do not fill the disk.
KEPT_FILES = 5

# What ``read`` returns for every answer kept, column by column (the analysis's input).
COLUMNS = (
    "request_id",
    "version",
    "answered",
    "status",
    "seconds",
    "at",
    "predictions",
    "scores",
    "labels",
)


@dataclass(frozen=True)
class Split:
    """Whether, how much and until when the candidate takes traffic: what every worker reads
    (the shared file) and a rollout changes (``PUT /rollout/traffic``)."""

    active: bool = True
    weight: float = 0.1
    until: float = math.inf  # a rollout's lease: a rollout that stops renewing it loses traffic

    def on(self, now: float) -> bool:
        """Whether the candidate takes traffic at ``now``."""
        return self.active and now < self.until


class FeedbackConflict(ConfigurationError):
    """A request already has a different label (labels are idempotent, not editable)."""


class Evidence:
    """The answers and labels of one two-version server (one per worker, one shared file)."""

    def __init__(
        self,
        path: str | Path,
        limit: int = 200_000,
        flush_seconds: float = 0.2,
        split: Split | None = None,
    ) -> None:
        self.path = Path(path)
        self.limit = limit
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        # One connection per worker, used by its threads in turn: the writer, /feedback, readers.
        self._lock = threading.RLock()
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Evidence is not worth an fsync per checkpoint: a crash of the machine ends the
            # rollout anyway, and a rollout's server starts a new file.
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(SCHEMA)
            if split is not None:  # the first worker sets the split; the others read it
                self._db.execute(
                    "INSERT OR IGNORE INTO traffic VALUES (1, ?, ?, ?)",
                    (int(split.active), split.weight, _finite(split.until)),
                )
        self.split = self._read_split() or split or Split()
        # Appends (request path) and pops (the writer) are atomic on a deque: no lock needed.
        self._pending: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="evidence", daemon=True)
        self._flush_seconds = flush_seconds
        self._thread.start()

    def add(
        self,
        request_id: str,
        version: str,
        answered: bool,
        status: int,
        seconds: float,
        rows: int,
        answer: Answer | None,
    ) -> None:
        """Keep one version's answer to one request (on the request path: the answer is
        encoded here, ~2 µs, so that the writer holds the GIL for nothing but two C calls)."""
        self._pending.append(
            (
                request_id,
                version,
                int(answered),
                status,
                seconds,
                time.time(),
                rows,
                *_encode(answer),
            )
        )

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
                with self._lock:  # not between a set_split's write and its own assignment
                    self.split = self._read_split() or self.split
            except sqlite3.OperationalError:  # a locked file: the next flush takes it
                continue
            except Exception:  # never let the writer die: answers would pile up unwritten
                log.exception("rollout evidence not written")

    def flush(self) -> None:
        """Write what this worker has pending, then drop the oldest answers past the limit."""
        with self._lock:
            pending = [self._pending.popleft() for _ in range(len(self._pending))]
            if not pending:
                return
            # The batch goes to SQLite as one JSON document and one statement: executemany
            # lets go of the GIL and takes it back once per row, and each time the serving
            # thread has to yield it (a canary server's CPU per request was 1.29x a single
            # version's with executemany, 1.04x with no writer at all).
            batch = orjson.dumps(pending)
            try:
                with self._db:
                    self._db.execute(INSERT_BATCH, (batch,))
                    self._trim()
            except sqlite3.Error:
                self._pending.extendleft(reversed(pending))  # kept for the next flush
                raise

    def _trim(self) -> None:
        # Two subqueries, not MIN(seq), MAX(seq) in one: SQLite answers a lone MIN or MAX from
        # the key's end, but both at once by scanning the table (every flush got slower as the
        # file grew: 27 µs per answer at first, 80 µs at 200,000).
        low, high = self._db.execute(
            "SELECT (SELECT MIN(seq) FROM answers), (SELECT MAX(seq) FROM answers)"
        ).fetchone()
        if low is None or high - low + 1 <= self.limit:
            return
        cut = high - self.limit
        gone = self._db.execute("DELETE FROM answers WHERE seq <= ?", (cut,)).rowcount
        labels = self._db.execute(
            "DELETE FROM feedback WHERE request_id NOT IN (SELECT request_id FROM answers)"
        ).rowcount
        self._count("answers_dropped", gone)
        self._count("labels_dropped", labels)

    def _count(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, value),
        )

    def _read_split(self) -> Split | None:
        with self._lock:
            row = self._db.execute("SELECT active, weight, until FROM traffic").fetchone()
        if row is None:
            return None
        return Split(bool(row[0]), float(row[1]), math.inf if row[2] < 0 else float(row[2]))

    def set_split(self, split: Split) -> Split:
        """Change the split for every worker (each reads it within ``flush_seconds``)."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO traffic VALUES (1, ?, ?, ?)",
                (int(split.active), split.weight, _finite(split.until)),
            )
        self.split = split
        return split

    def label(self, labels: list[Label]) -> dict[str, int]:
        """Store labels, all or none: each must name an answered request, with one value per
        row of it; a label sent again is taken once (``already_known``).

        Raises:
            ConfigurationError: an unknown request id, or a label count that is not the
                request's row count (nothing stored).
            FeedbackConflict: a request already has another label (nothing stored).
        """
        self.flush()
        with self._lock, self._db:
            known = self._known([item.request_id for item in labels])
            new = []
            for item in labels:
                if item.request_id not in known:
                    raise ConfigurationError(
                        f"Unknown request id {item.request_id!r}: label requests this server "
                        f"answered (the X-Request-Id of the answer), while it still keeps them."
                    )
                rows, stored = known[item.request_id]
                if len(item.values) != rows:
                    raise ConfigurationError(
                        f"Request {item.request_id!r} had {rows} row(s); send one label per "
                        f"row ({len(item.values)} sent)."
                    )
                values = orjson.dumps(list(item.values))
                if stored is not None and stored != values:
                    raise FeedbackConflict(
                        f"Request {item.request_id!r} already has the label(s) "
                        f"{orjson.loads(stored)}; a label cannot be changed once sent."
                    )
                if stored is None:
                    new.append((item.request_id, values, time.time()))
            self._db.executemany("INSERT INTO feedback VALUES (?, ?, ?)", new)
        return {"accepted": len(new), "already_known": len(labels) - len(new)}

    def _known(self, request_ids: list[str]) -> dict[str, tuple[int, bytes | None]]:
        found: dict[str, tuple[int, bytes | None]] = {}
        for start in range(0, len(request_ids), 500):  # SQLite's limit on bound parameters
            chunk = request_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for request_id, rows, stored in self._db.execute(
                f"SELECT a.request_id, MAX(a.rows), f.labels FROM answers a "
                f"LEFT JOIN feedback f ON f.request_id = a.request_id "
                f"WHERE a.request_id IN ({marks}) AND a.status < 400 GROUP BY a.request_id",
                chunk,
            ):
                found[request_id] = (rows, stored)
        return found

    def read(self, since: float = 0.0) -> dict[str, Any]:
        """Everything kept since ``since`` (a Unix time), column by column: what the live
        analysis reads (:mod:`modelops.rollouts.analysis`)."""
        with self._lock:
            return self._read(since)

    def _read(self, since: float) -> dict[str, Any]:
        self.flush()
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        query = (
            "SELECT a.request_id, a.version, a.answered, a.status, a.seconds, a.at, "
            "a.predictions, a.scores, f.labels FROM answers a "
            "LEFT JOIN feedback f ON f.request_id = a.request_id WHERE a.at >= ? ORDER BY a.seq"
        )
        names = list(columns)
        decode = {"predictions", "scores", "labels"}
        for row in self._db.execute(query, (since,)):
            for name, value in zip(names, row, strict=True):
                columns[name].append(
                    orjson.loads(value) if name in decode and value is not None else value
                )
        return {**columns, "dropped": self.counters()}

    def counters(self) -> dict[str, int]:
        """What was dropped so far (answers past the limit, and their labels)."""
        with self._lock:
            found = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(found.get(name, 0)) for name in ("answers_dropped", "labels_dropped")}

    def describe(self) -> dict[str, Any]:
        """What ``/version`` says about the evidence kept."""
        with self._lock:
            answers, labels = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM answers), (SELECT COUNT(*) FROM feedback)"
            ).fetchone()
        return {
            "path": str(self.path),
            "answers": answers,
            "labels": labels,
            "limit": self.limit,
            **self.counters(),
        }

    def close(self) -> None:
        """Write what is pending and stop the thread (server shutdown)."""
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(sqlite3.Error):
            self.flush()
        self._db.close()


def prune(folder: Path, keep: int = KEPT_FILES) -> list[Path]:
    """Delete the evidence files in ``folder`` (one model's) but the ``keep`` newest, with
    their WAL and shared-memory files; returns the files deleted. A server that still has an
    older file open keeps reading and writing it (it holds the file, not its name)."""

    def written(path: Path) -> float:
        stamps = [p.stat().st_mtime for p in (path, *_companions(path)) if p.exists()]
        return max(stamps, default=0.0)

    found = sorted(folder.glob("*.db"), key=written, reverse=True)
    for path in found[keep:]:
        for part in (path, *_companions(path)):
            part.unlink(missing_ok=True)
    return found[keep:]


def _companions(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _finite(until: float) -> float:
    """``until`` as stored: SQLite has no infinity that survives every driver, so -1."""
    return -1.0 if math.isinf(until) else until


def _encode(answer: Answer | None) -> tuple[orjson.Fragment | None, orjson.Fragment | None]:
    """An answer as stored: its predicted labels (or values), and for a binary classifier
    the positive class's probabilities, each as JSON the batch embeds as it is."""
    if answer is None:
        return None, None
    try:
        return _encoded(answer)
    except (TypeError, ValueError) as exc:  # kept without its predictions, never blocking
        log.warning("a prediction could not be kept as evidence: %s", exc)
        return None, None


def _encoded(answer: Answer) -> tuple[orjson.Fragment, orjson.Fragment | None]:
    import numpy as np

    predictions = [p["label"] if isinstance(p, dict) else p for p in answer.predictions]
    scores = None
    if answer.probabilities is not None and len(answer.classes) == 2:
        proba = answer.probabilities
        if not isinstance(proba, np.ndarray) or proba.dtype.kind != "f":
            proba = np.asarray(proba, dtype=np.float64)
        scores = orjson.Fragment(orjson.dumps(proba[:, 1].tolist()))
    return orjson.Fragment(orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY)), scores
