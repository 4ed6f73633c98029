"""Where lines go: a Kafka topic (keyed by user id) or a file; plus the paced send loop."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from simulator.generator import Batch

# Large batches and a little linger: the backfill produces in a tight loop.
PRODUCER_CONFIG = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "enable.idempotence": True,
    "delivery.report.only.error": True,
}
POLL_EVERY = 20_000


class KafkaSink:
    """Produces each line as one message; key = user id text, so a user stays in one partition."""

    def __init__(self, bootstrap: str, topic: str, **config):
        from confluent_kafka import Producer

        self.topic = topic
        self.failed = 0
        self.first_error: str | None = None
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                **PRODUCER_CONFIG,
                **config,
                "on_delivery": self._on_delivery,
            }
        )

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or str(err)

    def send(self, keys: list, values: list) -> None:
        produce, poll, topic = self.producer.produce, self.producer.poll, self.topic
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            try:
                produce(topic, value, key)
            except BufferError:  # local queue full: let librdkafka drain, then retry once
                poll(0.5)
                produce(topic, value, key)
            if i % POLL_EVERY == 0:
                poll(0)
        poll(0)

    def close(self, timeout: float = 120.0) -> None:
        """Wait for every message to be delivered; raise if any was not."""
        remaining = self.producer.flush(timeout)
        if remaining:
            raise RuntimeError(f"{remaining} messages not delivered to {self.topic} in {timeout}s")
        if self.failed:
            raise RuntimeError(f"{self.failed} messages failed delivery: {self.first_error}")


class FileSink:
    """Writes lines to a movielog file, one per line (bytes kept as they are)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("wb")

    def send(self, keys: list, values: list) -> None:
        self._fh.write(
            b"".join((v.encode("utf-8") if isinstance(v, str) else v) + b"\n" for v in values)
        )

    def close(self) -> None:
        self._fh.close()


def pump(
    batches: Iterable[Batch],
    sink,
    rate: float | None = None,
    desc: str = "movielog",
) -> int:
    """Send every batch to the sink (paced at `rate` lines/s if given); returns lines sent."""
    sent = 0
    started = time.monotonic()
    step = max(1, int(rate // 20)) if rate else None
    # In a log file (live traffic under `make run`) a bar redrawn 10 times a second is noise:
    # redraw it every 30 s there.
    interval = 0.1 if sys.stderr.isatty() else 30.0
    with tqdm(
        desc=desc, unit=" lines", unit_scale=True, smoothing=0.1, mininterval=interval
    ) as bar:
        for batch in batches:
            keys, values = batch.keys, batch.values
            if step is None:
                sink.send(keys, values)
                bar.update(len(values))
                sent += len(values)
            else:
                for lo in range(0, len(values), step):
                    sink.send(keys[lo : lo + step], values[lo : lo + step])
                    n = min(step, len(values) - lo)
                    sent += n
                    bar.update(n)
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing the live stream, not synchronisation
    return sent
