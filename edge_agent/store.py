"""The edge agent's durable local store (SQLite): decisions, pending offloads and the outbox.

- `decisions`: every request id decided -> its decision payload, so a redelivered request
  gets the very same decision again, across restarts;
- `pending_offloads`: requests handed to the cloud whose result has not come back yet;
- `outbox`: messages to send, in order; a row is deleted once the broker acknowledged it, so
  whatever was not acknowledged is sent again after a restart or an outage.

One thread uses a store (the agent's decision loop; the checkpoint thread below has a
connection of its own). Writes of a batch of requests go in one
transaction (`with store.transaction():`, a group commit); WAL journaling with
synchronous=NORMAL makes a commit cheap (no fsync: an OS crash or power cut can lose the last
commits, never corrupt the file; a crash of the agent alone loses nothing committed) and keeps
the database consistent across a crash. Requests are acknowledged to the broker only after
the commit that holds their decisions, so a crash of the agent loses no request. A power cut
can lose the last commits after their requests were acknowledged; synchronous=FULL would close
that gap at the cost of an fsync per commit.

Outbox rows this store inserted are also kept in memory once committed (up to
`OUTBOX_CACHE_MAX`), so handing fresh rows to MQTT costs no query; rows from before a
restart, or beyond the cap, are read from the file.

With `background_checkpoints`, WAL checkpoints (copying the log into the database file, with
an fsync) run in a thread of their own every `CHECKPOINT_INTERVAL_S`: SQLite's automatic
checkpoint, run inside a commit every 1000 pages of log, stalls one commit in a few hundred by
milliseconds, which is the agent's tail latency. Only the writer can restart the log once it
is all copied, and under steady writes the thread never finds it all copied: the writer still
checkpoints at `WAL_MAX_PAGES`, by then nearly all done by the thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STORE_VERSION = "2"
OUTBOX_CACHE_MAX = 20_000
CHECKPOINT_INTERVAL_S = 0.25
WAL_MAX_PAGES = 8000  # 32 MiB of log (4 KiB pages)

log = logging.getLogger(__name__)

# Every request writes a decision and an outbox row in one commit, and each B-tree page it
# touches is a page written to the log: the schema keeps those few. `decisions` is keyed by
# its key alone (WITHOUT ROWID: no rowid table beside the key's index); `decisions_at` serves
# the hourly pruning (decided_at only grows: one page, the rightmost). Outbox ids are given by
# the store (see Store.enqueue), not by AUTOINCREMENT, which updates sqlite_sequence too.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    key TEXT PRIMARY KEY, outcome TEXT NOT NULL, payload BLOB NOT NULL, decided_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (decided_at);
CREATE TABLE IF NOT EXISTS pending_offloads (
    key TEXT PRIMARY KEY, request BLOB NOT NULL, offload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL
);
"""

# Version 1 -> 2: the same rows in the tables of _SCHEMA (one transaction: all or nothing).
_MIGRATE_1_TO_2 = """
ALTER TABLE decisions RENAME TO decisions_v1;
DROP INDEX IF EXISTS decisions_at;
ALTER TABLE outbox RENAME TO outbox_v1;
""" + _SCHEMA + """
INSERT INTO decisions SELECT key, outcome, payload, decided_at FROM decisions_v1;
INSERT INTO outbox SELECT id, topic, payload, qos, retain FROM outbox_v1;
DROP TABLE decisions_v1;
DROP TABLE outbox_v1;
UPDATE meta SET value = '2' WHERE key = 'version';
"""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class PendingOffload:
    key: str
    request: bytes  # the Request payload
    offload: bytes  # the Offload payload sent to the cloud
    received_at: float  # unix time the request arrived


class Store:
    """The SQLite file at `path` (created if missing)."""

    def __init__(self, path: str | Path, background_checkpoints: bool = False) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        v1_outbox_sequence = self._open_schema()
        self._depth = 0
        self._load_pending_keys()
        # The next outbox id: above every id in the file and every id given before (version 1
        # files kept the highest in sqlite_sequence), so ids only grow while a store is open,
        # even after the outbox emptied: the agent hands rows to MQTT in id order.
        self._next_id = 1 + max(
            self.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0],
            v1_outbox_sequence)
        # Committed outbox rows inserted by this store, in id order; every row with an id at
        # least `_cache_start` is in it (ids only grow, see above). None: nothing cached.
        self._cache: deque[OutboxRow] = deque()
        self._cache_start: int | None = None
        self._uncommitted: list[OutboxRow] = []
        self._checkpointer: _Checkpointer | None = None
        if background_checkpoints:
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_MAX_PAGES}")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_MAX_PAGES * 4096}")
            self._checkpointer = _Checkpointer(self.path)

    def _open_schema(self) -> int:
        """Create the tables, or check the file's version and bring a version 1 file up to
        date (its decisions, pending offloads and outbox kept). Returns the highest outbox id
        a version 1 file ever gave (its sqlite_sequence), else 0."""
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone() \
            if has_meta else None
        if row is None:
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (STORE_VERSION,))
            return 0
        if row[0] == "1":
            seq = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'"
                                  ).fetchone()
            try:
                self.db.executescript(f"BEGIN; {_MIGRATE_1_TO_2} COMMIT;")
            except sqlite3.Error:
                if self.db.in_transaction:  # the file stays as it was, version 1
                    self.db.execute("ROLLBACK")
                raise
            log.info("%s: store brought from version 1 to %s", self.path, STORE_VERSION)
            return int(seq[0]) if seq else 0
        if row[0] != STORE_VERSION:
            raise RuntimeError(f"{self.path}: store version {row[0]}, this agent reads "
                               f"{STORE_VERSION}; move the file away to start afresh")
        return 0

    def _load_pending_keys(self) -> None:
        # Pending offloads are few: their keys in memory spare a query for every request.
        self._pending_keys = {r[0] for r in self.db.execute("SELECT key FROM pending_offloads")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together (nested uses join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._uncommitted.clear()
            self.db.execute("ROLLBACK")
            self._load_pending_keys()
            raise
        self._depth = 0
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self._uncommitted.clear()
            raise
        self._cache_committed()

    def _cache_committed(self) -> None:
        rows, self._uncommitted = self._uncommitted, []
        if not rows:
            return
        if len(self._cache) + len(rows) > OUTBOX_CACHE_MAX:
            self._cache.clear()  # too many unsent: read them from the file; cache anew from
            self._cache_start = None  # the next commit on
            return
        if self._cache_start is None:
            self._cache_start = rows[0].id
        self._cache.extend(rows)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.db.close()

    # --- decisions -------------------------------------------------------------------------

    def decision(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT payload FROM decisions WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def decided(self, keys: list[str]) -> dict[str, bytes]:
        """The decision payloads of those of `keys` decided already (one query per 500)."""
        found: dict[str, bytes] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self.db.execute("SELECT key, payload FROM decisions WHERE key IN "
                                   f"({','.join('?' * len(chunk))})", chunk)
            found.update((k, bytes(v)) for k, v in rows)
        return found

    def is_pending(self, key: str) -> bool:
        return key in self._pending_keys

    def put_decision(self, key: str, outcome: str, payload: bytes,
                     decided_at: float | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?)",
            (key, outcome, payload, time.time() if decided_at is None else decided_at),
        )

    def decision_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT outcome, count(*) FROM decisions GROUP BY outcome")
        return {outcome: int(n) for outcome, n in rows}

    def prune_decisions(self, older_than: float) -> int:
        """Forget decisions made before unix time `older_than`; how many."""
        cur = self.db.execute("DELETE FROM decisions WHERE decided_at < ?", (older_than,))
        return cur.rowcount

    # --- pending offloads --------------------------------------------------------------------

    def put_pending(self, p: PendingOffload) -> None:
        self.db.execute("INSERT OR REPLACE INTO pending_offloads VALUES (?, ?, ?, ?)",
                        (p.key, p.request, p.offload, p.received_at))
        self._pending_keys.add(p.key)

    def pending(self, key: str) -> PendingOffload | None:
        if key not in self._pending_keys:
            return None
        row = self.db.execute("SELECT key, request, offload, received_at FROM pending_offloads "
                              "WHERE key=?", (key,)).fetchone()
        return None if row is None else PendingOffload(row[0], bytes(row[1]), bytes(row[2]),
                                                       row[3])

    def all_pending(self) -> list[PendingOffload]:
        rows = self.db.execute("SELECT key, request, offload, received_at FROM pending_offloads "
                               "ORDER BY received_at")
        return [PendingOffload(r[0], bytes(r[1]), bytes(r[2]), r[3]) for r in rows]

    def pending_count(self) -> int:
        return len(self._pending_keys)

    def drop_pending(self, key: str) -> None:
        self.db.execute("DELETE FROM pending_offloads WHERE key=?", (key,))
        self._pending_keys.discard(key)

    # --- outbox ----------------------------------------------------------------------------

    def enqueue(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        # The store gives ids (a rolled back one is never given again: gaps are harmless).
        row_id, self._next_id = self._next_id, self._next_id + 1
        self.db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)",
                        (row_id, topic, payload, qos, int(retain)))
        if self._depth:  # cached once committed (outside a transaction it commits at once)
            self._uncommitted.append(OutboxRow(row_id, topic, payload, qos, bool(retain)))
        else:
            self._uncommitted = [OutboxRow(row_id, topic, payload, qos, bool(retain))]
            self._cache_committed()
        return row_id

    def outbox_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Committed outbox rows with ids above `after_id`, in order, at most `limit`."""
        cache = self._cache
        while cache and cache[0].id <= after_id:  # handed to MQTT already: never asked again
            cache.popleft()
        if self._cache_start is not None and after_id + 1 >= self._cache_start:
            # Complete from here on: rows at or below after_id left the cache just now.
            self._cache_start = after_id + 1
            return [cache[i] for i in range(min(limit, len(cache)))]
        rows = self.db.execute("SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? "
                               "ORDER BY id LIMIT ?", (after_id, limit))
        return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def outbox_size(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def sent(self, ids: list[int]) -> None:
        """The broker acknowledged these outbox rows: forget them."""
        if ids:
            self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])


class _Checkpointer:
    """A thread with its own connection that checkpoints the WAL now and then (PASSIVE: it
    never waits for, nor blocks, the writer), and once more when stopped."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHECKPOINT_INTERVAL_S):
            self._checkpoint()
        self._checkpoint()
        self.db.close()

    def _checkpoint(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # busy or failing disk: the next round tries again
            log.warning("WAL checkpoint failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
