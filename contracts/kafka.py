"""Topic administration shared by the services script and the simulator's producers."""

from __future__ import annotations

METADATA_TIMEOUT_S = 10


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> bool:
    """Create `name` if missing; True when it was created now.

    Raises RuntimeError with one clear line when the broker cannot be reached, so a producer
    fails in seconds instead of queueing messages for a topic that will never exist.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        if name in admin.list_topics(timeout=METADATA_TIMEOUT_S).topics:
            return False
    except KafkaException as exc:
        raise RuntimeError(f"Kafka at {bootstrap} did not answer: {exc}") from None
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=20)
    try:
        futures[name].result(timeout=30)
    except KafkaException as exc:  # a concurrent creator may have won the race
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise RuntimeError(f"could not create topic {name!r} on {bootstrap}: {exc}") from None
        return False
    return True


def watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """(low, high) offsets of each partition of `topic` now."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "recs-watermarks"})
    try:
        meta = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), METADATA_TIMEOUT_S)
            for p in sorted(meta.partitions)
        }
    finally:
        consumer.close()
