"""Ingest: one Kafka offset range per partition -> a complete, immutable snapshot in the lake.

A snapshot takes, for every partition of the topic, the offsets from the end of the last
complete snapshot of that topic (or the partition's low-water mark) to the high-water mark read
at its start. It is written under `snapshots/_tmp-<id>/`, its manifest last, then renamed into
place in one step, and finally registered in Postgres. So a crash at any point leaves either no
snapshot (the next run starts over from the same offsets and writes the same bytes) or a
complete one; a rerun with no new offsets is a no-op.

    python -m jobs.ingest.snapshot --topic movielog [--max-lines N] [--chunk-lines N]
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts import settings
from contracts.names import TIME_COL
from jobs.ingest import lake, parse

log = logging.getLogger(__name__)

CHUNK_LINES = 50_000
MAX_OPEN_WRITERS = 64
STALL_SECONDS = 60.0
# Crash injection for tests: SIGKILL ourselves at a named point (see tests/integration).
CRASH_ENV = "RECS_INGEST_CRASH_AT"


def _crash_point(name: str, count: int | None = None) -> None:
    want = os.environ.get(CRASH_ENV)
    if want and want in (name, f"{name}:{count}"):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Plan:
    """What one ingest run will read: the snapshot id and [start, end) offsets per partition."""

    snapshot_id: str
    topic: str
    offsets: dict[int, tuple[int, int]]
    skipped: dict[int, int] = field(default_factory=dict)  # offsets lost to retention

    @property
    def lines(self) -> int:
        return sum(end - start for start, end in self.offsets.values())


@dataclass
class IngestResult:
    """The outcome of one run: the snapshot written (None: nothing new) and its manifest."""

    snapshot_id: str | None
    path: Path | None
    manifest: dict[str, Any] | None
    new: bool


class PartWriters:
    """Parquet writers per (table, event date), at most MAX_OPEN_WRITERS open at once."""

    def __init__(self, root: Path, max_open: int = MAX_OPEN_WRITERS):
        self.root = root
        self.max_open = max_open
        self.open: dict[tuple[str, str | None], pq.ParquetWriter] = {}
        self.parts: Counter = Counter()
        self.files: list[tuple[str, Path]] = []

    def _path(self, table: str, date: str | None) -> Path:
        directory = self.root / table
        if date is not None:
            directory = directory / f"event_date={date}"
        directory.mkdir(parents=True, exist_ok=True)
        n = self.parts[(table, date)]
        self.parts[(table, date)] += 1
        return directory / f"part-{n:05d}.parquet"

    def write(self, table: str, date: str | None, data: pa.Table) -> None:
        key = (table, date)
        writer = self.open.pop(key, None)
        if writer is None:
            if len(self.open) >= self.max_open:  # close the least recently used
                oldest = next(iter(self.open))
                self.open.pop(oldest).close()
            path = self._path(table, date)
            writer = pq.ParquetWriter(path, data.schema, compression="snappy")
            self.files.append((table, path))
        writer.write_table(data)
        self.open[key] = writer  # re-inserted: dict order is recency order

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()
        self.open.clear()


def _write_chunk(writers: PartWriters, tables: dict[str, pa.Table], span: list) -> None:
    """Write one parsed chunk: event tables split by event date, rejects as they come."""
    for table in parse.TABLES:
        data = tables[table]
        if len(data) == 0:
            continue
        times = data[TIME_COL]
        lo, hi = pc.min_max(times).values()
        span[0] = lo.as_py() if span[0] is None else min(span[0], lo.as_py())
        span[1] = hi.as_py() if span[1] is None else max(span[1], hi.as_py())
        days = pc.cast(times, pa.date32())
        day_numbers = days.cast(pa.int32()).to_numpy()
        unique = np.unique(day_numbers)
        if len(unique) == 1:
            writers.write(table, str(days[0].as_py()), data)
            continue
        for day in unique.tolist():
            mask = pa.array(day_numbers == day)
            date = str(np.datetime64(day, "D"))
            writers.write(table, date, data.filter(mask))
    if len(tables["rejects"]):
        writers.write("rejects", None, tables["rejects"])


def _consumer(bootstrap: str):
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "recs-ingest",  # required by the client; offsets are never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "queued.max.messages.kbytes": 16384,
            "fetch.max.bytes": 16 * 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
        }
    )


def plan_snapshot(
    consumer, topic: str, root: Path, max_lines: int | None = None, timeout: float = 10.0
) -> Plan | None:
    """Offsets the next snapshot covers (None when there is nothing new)."""
    from confluent_kafka import TopicPartition

    meta = consumer.list_topics(topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise RuntimeError(f"topic {topic!r} not found on the broker ({info and info.error})")
    previous: dict[int, int] = {}
    for manifest in lake.completed_snapshots(root, topic=topic):
        for part, (_start, end) in manifest["offsets"].items():
            previous[int(part)] = max(previous.get(int(part), 0), end)
    partitions = sorted(info.partitions)
    per_partition_cap = None if not max_lines else max(1, max_lines // len(partitions))
    offsets: dict[int, tuple[int, int]] = {}
    skipped: dict[int, int] = {}
    for part in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=timeout)
        start = previous.get(part, low)
        if start < low:
            skipped[part] = low - start
            log.warning(
                "partition %d: offsets %d..%d were deleted by retention before ingest",
                part,
                start,
                low,
            )
            start = low
        end = high if per_partition_cap is None else min(high, start + per_partition_cap)
        offsets[part] = (start, max(start, end))
    plan = Plan(lake.snapshot_id(lake.next_seq(root)), topic, offsets, skipped)
    return plan if plan.lines > 0 else None


def _read_partition(consumer, topic: str, part: int, start: int, end: int, batch: int):
    """Yield (values, offsets) batches of exactly the messages at offsets [start, end)."""
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, part, start)])
    position = start
    last_progress = time.monotonic()
    try:
        while position < end:
            # Ask for no more than is left, so consume() returns as soon as the range is read.
            msgs = consumer.consume(num_messages=max(1, min(batch, end - position)), timeout=1.0)
            if any(msg.error() is not None for msg in msgs):
                msgs, position = _drop_events(msgs, topic, part, end, position)
            values = [msg.value() for msg in msgs]
            offsets = [msg.offset() for msg in msgs]
            if offsets and offsets[-1] >= end:  # the high-water mark moved on: not ours
                keep = bisect.bisect_left(offsets, end)
                values, offsets, position = values[:keep], offsets[:keep], end
            if offsets:
                position = max(position, offsets[-1] + 1)
                last_progress = time.monotonic()
                yield values, offsets
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise TimeoutError(
                    f"{topic}[{part}]: no progress for {STALL_SECONDS:.0f}s at offset {position}"
                    f" (want up to {end})"
                )
    finally:
        consumer.unassign()


def _drop_events(msgs: list, topic: str, part: int, end: int, position: int):
    """Messages without the end-of-partition events; raise on a real Kafka error."""
    from confluent_kafka import KafkaError

    kept = []
    for msg in msgs:
        err = msg.error()
        if err is None:
            kept.append(msg)
        elif err.code() == KafkaError._PARTITION_EOF:
            if msg.offset() >= end:
                position = end
        else:
            raise RuntimeError(f"Kafka error on {topic}[{part}]: {err}")
    return kept, position


def _chunks(source, chunk_lines: int):
    """Regroup consumer batches into chunks of exactly chunk_lines (last one shorter)."""
    values: list = []
    offsets: list[int] = []
    for vals, offs in source:
        values.extend(vals)
        offsets.extend(offs)
        while len(values) >= chunk_lines:
            yield values[:chunk_lines], offsets[:chunk_lines]
            values, offsets = values[chunk_lines:], offsets[chunk_lines:]
    if values:
        yield values, offsets


def write_snapshot(
    consumer, plan: Plan, root: Path, chunk_lines: int = CHUNK_LINES, progress: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Read the plan's offsets, parse, write aside, manifest last, rename; (path, manifest)."""
    tmp = lake.tmp_path(plan.snapshot_id, root)
    final = lake.snapshot_path(plan.snapshot_id, root)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    writers = PartWriters(tmp)
    try:
        read = parse_plan(consumer, plan, writers, chunk_lines, progress)
    finally:
        writers.close()
    manifest = snapshot_manifest(plan, tmp, writers.files, read)
    _crash_point("before_manifest")
    lake.write_manifest(tmp, manifest)
    _crash_point("before_rename")
    os.rename(tmp, final)
    lake.fsync_dir(final.parent)
    return final, manifest


@dataclass
class ReadCounts:
    """What parse_plan saw: lines read, reject reasons, and the event-time span written."""

    lines: int = 0
    reasons: Counter = field(default_factory=Counter)
    span: list = field(default_factory=lambda: [None, None])
    seen: parse.SeenLines = field(default_factory=lambda: parse.SeenLines())


def parse_plan(consumer, plan: Plan, writers, chunk_lines: int, progress: bool) -> ReadCounts:
    """Every planned offset range, read, parsed and written in chunks of `chunk_lines`."""
    read = ReadCounts()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=plan.lines, unit="line", desc=f"ingest {plan.snapshot_id}")
    chunk_no = 0
    try:
        for part, (start, end) in sorted(plan.offsets.items()):
            if start >= end:
                continue
            source = _read_partition(
                consumer, plan.topic, part, start, end, min(chunk_lines, 50_000)
            )
            for values, offsets in _chunks(source, chunk_lines):
                tables = parse.parse_batch(
                    values, np.full(len(values), part, np.int32), np.asarray(offsets), read.seen
                )
                _write_chunk(writers, tables, read.span)
                read.lines += len(values)
                read.reasons.update(tables["rejects"]["reason"].to_pylist())
                chunk_no += 1
                if bar is not None:
                    bar.update(len(values))
                _crash_point("chunk", chunk_no)
    finally:
        if bar is not None:
            bar.close()
    return read


def snapshot_manifest(plan: Plan, tmp: Path, written: list, read: ReadCounts) -> dict[str, Any]:
    """The manifest: offsets, counts (lines read = rows + rejects, checked), files and hashes."""
    files = []
    row_counts = {t: 0 for t in parse.SCHEMAS}
    for table, path in written:
        rows = pq.ParquetFile(path).metadata.num_rows
        row_counts[table] += rows
        files.append(
            {
                "table": table,
                "path": str(path.relative_to(tmp)),
                "rows": rows,
                "sha256": lake.sha256_file(path),
            }
        )
    if sum(row_counts.values()) != read.lines:
        raise AssertionError(
            f"{plan.snapshot_id}: lines read {read.lines} != rows "
            f"{sum(row_counts.values()) - row_counts['rejects']} + rejects {row_counts['rejects']}"
        )
    span = read.span
    return {
        "snapshot_id": plan.snapshot_id,
        "topic": plan.topic,
        "offsets": {str(p): [s, e] for p, (s, e) in sorted(plan.offsets.items())},
        "skipped_offsets": {str(p): n for p, n in plan.skipped.items()},
        "lines_read": read.lines,
        "row_counts": row_counts,
        "reject_reasons": dict(sorted(read.reasons.items())),
        "files": sorted(files, key=lambda f: f["path"]),
        "parser_version": parse.PARSER_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "min_event_time": span[0].isoformat() if span[0] else None,
        "max_event_time": span[1].isoformat() if span[1] else None,
    }


def ingest(
    topic: str | None = None,
    max_lines: int | None = None,
    chunk_lines: int = CHUNK_LINES,
    root: str | Path | None = None,
    bootstrap: str | None = None,
    database_url: str | None = None,
    register: bool = True,
    progress: bool = False,
) -> IngestResult:
    """Take the next snapshot of `topic` into the lake and register it; see the module doc."""
    cfg = settings.load()
    topic = topic or cfg.kafka_topic
    root = lake.lake_root(root)
    consumer = _consumer(bootstrap or cfg.kafka_bootstrap_servers)
    try:
        with lake.ingest_lock(root):
            for stale in lake.snapshots_dir(root).glob(f"{lake.TMP_PREFIX}*"):
                log.warning("removing %s left by an interrupted ingest", stale)
                shutil.rmtree(stale)
            if register:  # a crash between rename and registration is repaired here
                for manifest in lake.completed_snapshots(root, topic=topic):
                    path = lake.snapshot_path(manifest["snapshot_id"], root)
                    lake.register(manifest, path, database_url)
            plan = plan_snapshot(consumer, topic, root, max_lines)
            if plan is None:
                log.info("topic %s: no new offsets since the last snapshot; nothing to do", topic)
                return IngestResult(None, None, None, new=False)
            started = time.perf_counter()
            path, manifest = write_snapshot(consumer, plan, root, chunk_lines, progress)
            seconds = time.perf_counter() - started
            _crash_point("before_register")
            if register:
                lake.register(manifest, path, database_url)
    finally:
        consumer.close()
    log.info(
        "snapshot %s: %d lines in %.1fs (%.0f lines/s), rows %s, rejects by reason %s",
        plan.snapshot_id,
        manifest["lines_read"],
        seconds,
        manifest["lines_read"] / max(seconds, 1e-9),
        manifest["row_counts"],
        manifest["reject_reasons"],
    )
    return IngestResult(plan.snapshot_id, path, manifest, new=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", help="Kafka topic (default: KAFKA_TOPIC)")
    parser.add_argument("--max-lines", type=int, help="cap the snapshot (split over partitions)")
    parser.add_argument("--chunk-lines", type=int, default=CHUNK_LINES)
    parser.add_argument("--lake", type=Path, help="lake directory (default: settings.lake_dir)")
    parser.add_argument("--no-register", action="store_true", help="do not touch Postgres")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = ingest(
        topic=args.topic,
        max_lines=args.max_lines,
        chunk_lines=args.chunk_lines,
        root=args.lake,
        register=not args.no_register,
        progress=True,
    )
    print(json.dumps({"snapshot_id": result.snapshot_id, "path": str(result.path or "")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
