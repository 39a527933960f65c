"""One keyed-state shard of the scoring operator, in plain Python (no Flink).

The job keys entity windows by *shard* — ``"<entity_type>#<n>"``, ``n`` a stable hash of the
entity id (:func:`shard_key`) — so one shared detector (e.g. a random cut forest) learns from
many entities while each entity keeps its own small state. A shard holds its entities and the
rows waiting for their window to close (:class:`ShardState`); :class:`ShardWindows` closes one
window end: it adds an empty window for each entity that went silent (so an outage is scored,
not missed — for at most ``max_gap_windows`` windows, and never at the end of a bounded input),
runs the detector over the batch and builds one record per window.

>>> shard_key("ad", "ad-0007", 4)
'ad#3'
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from udfs.scored_window import build_record

#: Version of the bytes a shard keeps in Flink state (entities, pending rows, journal batches).
STATE_VERSION = 1
#: What the detector is handed per window: each entity's state bytes and its features.
Batch = list[tuple[bytes | None, Mapping[str, float]]]


def shard_key(entity_type: str, entity_id: str, shards: int) -> str:
    """Stable keyed-state shard of an entity (crc32: the same on every worker and restart)."""
    return f"{entity_type}#{zlib.crc32(entity_id.encode()) % shards}"


@dataclass
class EntityEntry:
    """What the job keeps per entity: its detector state, when last seen, since when tracked."""

    state: bytes | None
    last_seen_ms: int  # window_end of the entity's last real (non-synthetic) window
    #: window_end at which the shard started tracking the entity (again): the shard's entities
    #: are in ``(since_ms, entity_id)`` order, the order a restored shard rebuilds.
    since_ms: int

    def to_bytes(self) -> bytes:
        """The entry as versioned msgpack (one ``MapState`` value).

        >>> EntityEntry.from_bytes(EntityEntry(b"s", 20_000, 10_000).to_bytes())
        EntityEntry(state=b's', last_seen_ms=20000, since_ms=10000)
        """
        return msgpack.packb([STATE_VERSION, self.state, self.last_seen_ms, self.since_ms])

    @classmethod
    def from_bytes(cls, data: bytes) -> EntityEntry:
        """The entry of :meth:`to_bytes`."""
        version, state, last_seen_ms, since_ms = msgpack.unpackb(data)
        _check_version(version, "entity")
        return cls(state, last_seen_ms, since_ms)


class EntityMap(MutableMapping[str, EntityEntry]):
    """A shard's entities by id, in the order they were added, noting what changed.

    The operator writes only the entries changed since it last asked (:meth:`take_changes`),
    so closing a window costs the entities in it, not all the shard holds.

    >>> entities = EntityMap()
    >>> entities["a"] = EntityEntry(None, 10_000, 10_000)
    >>> entities["b"] = EntityEntry(None, 10_000, 10_000)
    >>> del entities["a"]
    >>> sorted(entities.take_changes()[0]), entities.take_changes()
    (['b'], ({}, set()))
    """

    def __init__(self, entries: Iterable[tuple[str, EntityEntry]] = ()) -> None:
        self._entries: dict[str, EntityEntry] = dict(entries)
        self._changed: set[str] = set()
        self._removed: set[str] = set()

    def __getitem__(self, entity_id: str) -> EntityEntry:
        return self._entries[entity_id]

    def __setitem__(self, entity_id: str, entry: EntityEntry) -> None:
        self._entries[entity_id] = entry
        self._changed.add(entity_id)
        self._removed.discard(entity_id)

    def __delitem__(self, entity_id: str) -> None:
        del self._entries[entity_id]
        self._removed.add(entity_id)
        self._changed.discard(entity_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    # The dict's own methods where a window close calls them per row or walks every entity.
    def get(self, entity_id: str, default: EntityEntry | None = None) -> EntityEntry | None:
        """The entry of ``entity_id``, or ``default``."""
        return self._entries.get(entity_id, default)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._entries

    def items(self):
        """The entries' view, in the order they were added."""
        return self._entries.items()

    def values(self):
        """The entries, in the order they were added."""
        return self._entries.values()

    def __repr__(self) -> str:
        return repr(self._entries)

    def take_changes(self) -> tuple[dict[str, bytes], set[str]]:
        """``({entity_id: entry bytes}, removed ids)`` since the last call; then forget them."""
        changed = {e: self._entries[e].to_bytes() for e in self._changed}
        removed, self._changed, self._removed = self._removed, set(), set()
        return changed, removed


@dataclass(frozen=True)
class WindowRow:
    """One entity window waiting to be scored."""

    entity_id: str
    window_start_ms: int
    features: Mapping[str, float]
    synthetic: bool = False


def _check_version(version: Any, what: str) -> None:
    if version != STATE_VERSION:
        raise ValueError(f"{what} state version {version!r} is not {STATE_VERSION}")


def _check_shards(written: int, shards: int) -> None:
    if written != shards:
        raise ValueError(
            f"scoring.shards_per_entity_type: the state was written with {written} shards per"
            f" entity type, the job has {shards}; restore it with {written} or start without"
            " state"
        )


def pending_row_bytes(window_end_ms: int, row: WindowRow) -> bytes:
    """One row waiting for its window to close, as versioned msgpack.

    A whole-number feature (a count, most of them) is packed as an integer — one byte below
    128, a double takes nine — and reads back as the same float.
    """
    values = [_compact(float(row.features[name])) for name in FEATURE_NAMES]
    return msgpack.packb([STATE_VERSION, window_end_ms, row.entity_id, row.window_start_ms, values])


def pending_row_from_bytes(data: bytes) -> tuple[int, WindowRow]:
    """``(window_end_ms, row)`` from :func:`pending_row_bytes`.

    >>> features = dict.fromkeys(FEATURE_NAMES, 2.0) | {FEATURE_NAMES[0]: 0.25}
    >>> row = WindowRow("a", 0, features)
    >>> end, back = pending_row_from_bytes(pending_row_bytes(10_000, row))
    >>> (end, back) == (10_000, row), {type(v) for v in back.features.values()}
    (True, {<class 'float'>})
    """
    version, end, entity_id, start, values = msgpack.unpackb(data)
    _check_version(version, "pending row")
    features = dict(zip(FEATURE_NAMES, map(float, values), strict=True))
    return end, WindowRow(entity_id, start, features)


def _compact(value: float) -> float | int:
    """``value`` as an int when that reads back as exactly the same float (not -0.0).

    >>> _compact(3.0), _compact(0.5), _compact(-0.0), _compact(float("inf")), _compact(2.0**60)
    (3, 0.5, -0.0, inf, 1.152921504606847e+18)
    """
    if value.is_integer() and abs(value) < 2**53 and (value or math.copysign(1.0, value) > 0):
        return int(value)
    return value


def batch_to_bytes(batch: Batch) -> bytes:
    """A batch handed to the detector, as versioned msgpack (for replaying it).

    >>> batch = [(None, dict.fromkeys(FEATURE_NAMES, 1.0)), (b"s", dict.fromkeys(FEATURE_NAMES, 0.0))]
    >>> batch_from_bytes(batch_to_bytes(batch)) == batch
    True
    """  # noqa: E501
    items = [[state, [float(features[n]) for n in FEATURE_NAMES]] for state, features in batch]
    return msgpack.packb([STATE_VERSION, items])


def batch_from_bytes(data: bytes) -> Batch:
    """The batch of :func:`batch_to_bytes`."""
    version, items = msgpack.unpackb(data)
    _check_version(version, "journal")
    return [(state, dict(zip(FEATURE_NAMES, values, strict=True))) for state, values in items]


#: Bound of a shard's journal until its first trained snapshot: about the default detector's
#: trained model (2.1 MB in ``clicksentry bench``), which bounds the journal after it.
UNTRAINED_JOURNAL_BYTES = 2 * 1024 * 1024


@dataclass
class JournalBudget:
    """When a shard writes its detector to state instead of journalling one more batch.

    A restored shard loads the last written detector and replays the journal, so either way
    it is exact; what differs is the bytes written. A new shard writes its untrained detector
    (under 2 KB) and journals from its first batch, so its first window does not write a model
    of megabytes. A snapshot is due every ``max_windows`` batches, or sooner once the journal
    would outweigh the last snapshot (before the first, :data:`UNTRAINED_JOURNAL_BYTES`): a
    shard of many entities journals megabytes a window, more than its model.

    >>> budget = JournalBudget(max_windows=3)
    >>> [budget.snapshot_due(400) for _ in range(3)]  # after the untrained detector
    [False, False, True]
    >>> budget.snapshot_written(1_000)
    >>> [budget.snapshot_due(400) for _ in range(3)]  # the journal would outweigh the model
    [False, False, True]
    >>> budget.snapshot_written(1_200)
    >>> budget.windows, budget.journal_bytes, budget.model_bytes
    (0, 0, 1200)
    """

    max_windows: int
    #: Size of the last trained snapshot (``None``: only the untrained detector is written).
    model_bytes: int | None = None
    windows: int = 0
    journal_bytes: int = 0

    def snapshot_due(self, batch_bytes: int) -> bool:
        """Whether the next batch (``batch_bytes``) calls for a snapshot instead of a journal entry.

        If not, it counts as journalled.
        """
        limit = UNTRAINED_JOURNAL_BYTES if self.model_bytes is None else self.model_bytes
        if self.windows + 1 >= self.max_windows or self.journal_bytes + batch_bytes > limit:
            return True
        self.journalled(batch_bytes)
        return False

    def journalled(self, batch_bytes: int) -> None:
        """Count one batch of ``batch_bytes`` in the journal (also as a restore replays it)."""
        self.windows += 1
        self.journal_bytes += batch_bytes

    def snapshot_written(self, model_bytes: int) -> None:
        """A snapshot of ``model_bytes`` was written and the journal cleared."""
        self.windows, self.journal_bytes, self.model_bytes = 0, 0, model_bytes


class ShardState:
    """What one shard keeps: its entities and the rows waiting for their window to close.

    ``closed_until_ms`` is the end of the last window the shard closed (``None`` before the
    first): windows close in order, each once.
    """

    def __init__(self) -> None:
        self.entities = EntityMap()
        self.pending: dict[int, list[WindowRow]] = {}
        self.closed_until_ms: int | None = None

    def header_to_bytes(self, shards: int) -> bytes:
        """The last closed window end and ``shards`` as versioned msgpack.

        ``shards`` (the job's shards per entity type) is kept with it: restored under another
        shard count, an entity would live in two shards.
        """
        return msgpack.packb([STATE_VERSION, shards, self.closed_until_ms])

    @classmethod
    def restore(
        cls,
        header: bytes | None,
        entities: Iterable[tuple[str, bytes]],
        pending: Iterable[bytes],
        shards: int,
    ) -> ShardState:
        """A shard from its header, its entities and its pending rows.

        ``header`` is :meth:`header_to_bytes`; ``entities`` are ``(entity_id,``
        :meth:`EntityEntry.to_bytes` ``)`` pairs in any order; ``pending`` are
        :func:`pending_row_bytes`.

        >>> shard = ShardState()
        >>> shard.entities["b"] = EntityEntry(b"s", 10_000, 10_000)
        >>> shard.entities["a"] = EntityEntry(None, 20_000, 20_000)
        >>> row = WindowRow("a", 10_000, dict.fromkeys(FEATURE_NAMES, 1.0))
        >>> entries = sorted(shard.entities.take_changes()[0].items())
        >>> copy = ShardState.restore(shard.header_to_bytes(4), entries,
        ...                           [pending_row_bytes(20_000, row)], 4)
        >>> list(copy.entities), copy.pending[20_000] == [row]
        (['b', 'a'], True)
        >>> ShardState.restore(shard.header_to_bytes(4), [], [], 8)
        Traceback (most recent call last):
        ...
        ValueError: scoring.shards_per_entity_type: the state was written with 4 shards per entity type, the job has 8; restore it with 4 or start without state
        """  # noqa: E501
        shard = cls()
        if header is not None:
            version, written_shards, closed = msgpack.unpackb(header)
            _check_version(version, "shard")
            _check_shards(written_shards, shards)
            shard.closed_until_ms = closed
        entries = [(e, EntityEntry.from_bytes(data)) for e, data in entities]
        entries.sort(key=lambda item: (item[1].since_ms, item[0]))
        shard.entities = EntityMap(entries)
        shard._add_pending(pending)
        return shard

    @classmethod
    def restore_single_value(
        cls, entities: bytes, pending: Iterable[bytes], shards: int
    ) -> ShardState:
        """A shard from the layout before one map entry per entity.

        That layout kept all the entities and the last closed window end in one value
        (``[version, shards, closed, [[id, state, last_seen], ...]]``). Every entity counts as
        changed, so the operator writes them out in the new layout; their position stands in
        for ``since_ms`` and keeps their order.

        >>> old = msgpack.packb([STATE_VERSION, 4, 20_000, [["b", b"s", 10_000], ["a", None, 20_000]]])
        >>> shard = ShardState.restore_single_value(old, [], 4)
        >>> list(shard.entities), shard.closed_until_ms, sorted(shard.entities.take_changes()[0])
        (['b', 'a'], 20000, ['a', 'b'])
        """  # noqa: E501
        version, written_shards, closed, items = msgpack.unpackb(entities)
        _check_version(version, "shard")
        _check_shards(written_shards, shards)
        shard = cls()
        shard.closed_until_ms = closed
        for position, (entity_id, state, seen) in enumerate(items):
            shard.entities[entity_id] = EntityEntry(state, seen, position)
        shard._add_pending(pending)
        return shard

    def _add_pending(self, pending: Iterable[bytes]) -> None:
        for data in pending:
            end, row = pending_row_from_bytes(data)
            self.pending.setdefault(end, []).append(row)
        for rows in self.pending.values():
            rows.sort(key=lambda r: r.entity_id)

    def expire(self, now_ms: int, ttl_ms: int) -> int:
        """Drop entities not seen for ``ttl_ms`` of event time; return how many.

        >>> shard = ShardState()
        >>> shard.entities["a"] = EntityEntry(None, last_seen_ms=0, since_ms=0)
        >>> shard.expire(now_ms=120_000, ttl_ms=60_000), shard.entities
        (1, {})
        """
        idle = [e for e, entry in self.entities.items() if entry.last_seen_ms + ttl_ms < now_ms]
        for entity_id in idle:
            del self.entities[entity_id]
        return len(idle)

    def evict(self, max_entities: int) -> list[tuple[str, int]]:
        """Keep at most ``max_entities``, dropping the least recently seen (then by id).

        Returns ``(entity_id, last_seen_ms)`` of every entity dropped, in that order.

        >>> shard = ShardState()
        >>> for e, seen in (("c", 30), ("a", 10), ("b", 10)):
        ...     shard.entities[e] = EntityEntry(None, seen, seen)
        >>> shard.evict(1), list(shard.entities)
        ([('a', 10), ('b', 10)], ['c'])
        """
        excess = len(self.entities) - max_entities
        if excess <= 0:
            return []
        oldest = sorted(self.entities.items(), key=lambda item: (item[1].last_seen_ms, item[0]))
        evicted = [(entity_id, entry.last_seen_ms) for entity_id, entry in oldest[:excess]]
        for entity_id, _ in evicted:
            del self.entities[entity_id]
        return evicted


class ShardWindows:
    """Closes one shard's windows, one window end at a time.

    ``on_batch`` is told every batch the detector has just processed (the operator journals them,
    so a restored shard can bring its detector to the same point). A shard keeps at most
    ``max_entities`` entities: after each window the least recently seen beyond that are dropped
    and ``on_evict(entity_id, last_seen_ms, window_end_ms)`` is told of each.

    >>> from models.registry import make_detector
    >>> windows = ShardWindows(make_detector("rcf-kda"), "ad", window_ms=10_000,
    ...                        max_gap_windows=2)
    >>> entities = {}
    >>> feats = dict.fromkeys(FEATURE_NAMES, 1.0)
    >>> rows = windows.close(10_000, [WindowRow("ad-1", 0, feats)], entities, final=False)
    >>> [(r["entity_id"], r["window_end_ms"]) for r in rows], entities["ad-1"].last_seen_ms
    ([('ad-1', 10000)], 10000)
    >>> [r["synthetic"] for r in windows.close(20_000, [], entities, final=False)]
    [True]
    >>> windows.close(30_000, [], entities, final=True)  # end of input: no synthesised outage
    []
    """

    def __init__(
        self,
        detector: WindowDetector,
        entity_type: str,
        window_ms: int,
        max_gap_windows: int,
        entity_ttl_ms: int | None = None,
        on_batch: Callable[[Batch], None] | None = None,
        max_entities: int | None = None,
        on_evict: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.detector = detector
        self.entity_type = entity_type
        self.window_ms = window_ms
        self.max_gap_ms = max_gap_windows * window_ms
        self.entity_ttl_ms = entity_ttl_ms
        self.on_batch = on_batch
        self.max_entities = max_entities
        self.on_evict = on_evict

    def silent(self, window_end_ms: int, seen: set[str], entities: Mapping[str, EntityEntry]):
        """Entities active within ``max_gap_windows`` that have no window ending here."""
        return [
            entity_id
            for entity_id, entry in entities.items()
            if entity_id not in seen
            and entry.last_seen_ms < window_end_ms <= entry.last_seen_ms + self.max_gap_ms
        ]

    def close(
        self,
        window_end_ms: int,
        rows: Sequence[WindowRow],
        entities: MutableMapping[str, EntityEntry],
        final: bool,
    ) -> list[dict[str, Any]]:
        """Score ``rows`` (plus synthesised empty windows) and update ``entities`` in place.

        Returns one anomaly record per window, with ``synthetic`` set on synthesised ones.
        """
        rows = list(rows)
        if not final:
            start = window_end_ms - self.window_ms
            rows += [
                WindowRow(e, start, dict.fromkeys(FEATURE_NAMES, 0.0), synthetic=True)
                for e in self.silent(window_end_ms, {r.entity_id for r in rows}, entities)
            ]
        if not rows:
            return []
        known = [entities.get(r.entity_id) for r in rows]
        batch = [(k.state if k else None, r.features) for k, r in zip(known, rows, strict=True)]
        verdicts = self.detector.process(batch)
        if self.on_batch is not None:
            self.on_batch(batch)
        out = []
        for row, entry, (verdict, state) in zip(rows, known, verdicts, strict=True):
            last_seen = entry.last_seen_ms if row.synthetic and entry else window_end_ms
            since = entry.since_ms if entry else window_end_ms
            entities[row.entity_id] = EntityEntry(state, last_seen, since)
            record = build_record(
                self.entity_type, row.entity_id, row.window_start_ms, window_end_ms,
                row.features, verdict, self.detector.name,
            )
            record["synthetic"] = row.synthetic
            out.append(record)
        return out

    def active(self, window_end_ms: int, entities: Mapping[str, EntityEntry]) -> bool:
        """Whether any entity may still need a synthesised window after ``window_end_ms``."""
        return any(window_end_ms < e.last_seen_ms + self.max_gap_ms for e in entities.values())

    def synthesis_ends(self, window_end_ms: int) -> list[int]:
        """Window ends at which an entity last seen at ``window_end_ms`` may get an empty window.

        >>> ShardWindows(None, "ad", window_ms=10, max_gap_windows=3).synthesis_ends(100)
        [110, 120, 130]
        """
        return list(range(window_end_ms + self.window_ms, window_end_ms + self.max_gap_ms + 1,
                          self.window_ms))

    def next_due(self, shard: ShardState, up_to_ms: int, final: bool) -> int | None:
        """The next window end the shard must close, if it is at most ``up_to_ms``.

        That is the earliest end with waiting rows, or the end after the last one closed while
        an entity may still need a synthesised window there (not at the end of the input).
        """
        due = [end for end in shard.pending if end <= up_to_ms]
        closed = shard.closed_until_ms
        if not final and closed is not None and self.active(closed, shard.entities):
            due.append(closed + self.window_ms)
        end = min(due, default=None)
        return end if end is not None and end <= up_to_ms else None

    def close_due(self, shard: ShardState, up_to_ms: int, final: bool) -> list[dict[str, Any]]:
        """Close, in event-time order, every window of ``shard`` due up to ``up_to_ms``.

        Each window's rows are scored in entity order, so the records and what the shared model
        learns depend on the windows alone, not on the order rows arrived in; after each window,
        entities idle for ``entity_ttl_ms`` of event time are dropped.

        >>> from models.registry import make_detector
        >>> windows = ShardWindows(make_detector("rcf-kda"), "ad", window_ms=10_000,
        ...                        max_gap_windows=2)
        >>> shard = ShardState()
        >>> shard.pending[10_000] = [WindowRow("b", 0, dict.fromkeys(FEATURE_NAMES, 1.0)),
        ...                          WindowRow("a", 0, dict.fromkeys(FEATURE_NAMES, 1.0))]
        >>> records = windows.close_due(shard, 40_000, final=False)
        >>> [(r["entity_id"], r["window_end_ms"], r["synthetic"]) for r in records][:3]
        [('a', 10000, False), ('b', 10000, False), ('a', 20000, True)]
        >>> len(records), shard.closed_until_ms
        (6, 30000)
        """
        out: list[dict[str, Any]] = []
        while (end := self.next_due(shard, up_to_ms, final)) is not None:
            rows = sorted(shard.pending.pop(end, []), key=lambda row: row.entity_id)
            out += self.close(end, rows, shard.entities, final)
            shard.closed_until_ms = max(end, shard.closed_until_ms or end)
            if self.entity_ttl_ms is not None:
                shard.expire(end, self.entity_ttl_ms)
            if self.max_entities is not None:
                for entity_id, last_seen in shard.evict(self.max_entities):
                    if self.on_evict is not None:
                        self.on_evict(entity_id, last_seen, end)
        return out
