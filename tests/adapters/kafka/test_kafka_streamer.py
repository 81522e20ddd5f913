"""What is particular to the Kafka streamer: the wire format, partitions, shards, offsets, lifecycle."""

from __future__ import annotations

import contextlib
import logging
import selectors
import threading
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

import actorflow as af
from actorflow.event import Header, shard_of
from actorflow.protocols import ReceiverOptions
from tests.kafka_fixtures import read_all
from tests.model import Stage, three_steps

pytestmark = pytest.mark.kafka


def collect(receiver: Any, count: int, timeout: float = 5.0) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out.extend(receiver.receive(count - len(out), max(0.0, deadline - time.monotonic())))
    return out


def send(streamer: Any, topic: str, run_ids: list[str], event_type: int = 3) -> None:
    sender = streamer.new_sender(topic)
    for run_id in run_ids:
        sender.send(run_id, event_type, {Header.TOPIC: topic, Header.RUN_ID: run_id})
    sender.flush()


def test_messages_are_written_in_the_original_wire_format(make, kafka_broker, kafka_prefix):
    """Key = run id, value = the status as a decimal string, headers = the event headers, on the prefixed topic."""
    clock = af.FakeClock(datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC))
    streamer = make(partitions=4, clock=clock)
    headers = {Header.WORKFLOW_NAME: "orders", Header.TOPIC: "orders-12", Header.RECORD_VERSION: "2"}
    sender = streamer.new_sender("orders-12")
    sender.send("run-1", 12, headers)
    sender.flush()

    (message,) = read_all(kafka_broker, f"{kafka_prefix}orders-12", 4)
    assert message.key == b"run-1"
    assert message.value == b"12"
    assert dict(message.headers) == {k: v.encode() for k, v in headers.items()}
    assert message.partition == zlib.crc32(b"run-1") % 4
    assert message.timestamp == int(clock.now().timestamp() * 1000)


def test_topics_are_created_with_the_configured_partition_count(make, kafka_broker, kafka_prefix):
    """A topic is created up front with `partitions` partitions; a run's events all land on one of them."""
    streamer = make(partitions=6)
    run_ids = [f"run-{i}" for i in range(40)]
    send(streamer, "spread", run_ids)
    send(streamer, "spread", run_ids, event_type=4)

    messages = read_all(kafka_broker, f"{kafka_prefix}spread", 6)
    assert streamer.ensure_topic("spread") == 6
    by_run: dict[bytes, set[int]] = {}
    for message in messages:
        by_run.setdefault(message.key, set()).add(message.partition)
    assert all(len(parts) == 1 for parts in by_run.values())
    assert len({m.partition for m in messages}) == 6


def test_an_existing_topic_keeps_its_partition_count(make, kafka_broker, kafka_prefix, caplog):
    """A topic made elsewhere with another count is used as it is (with a warning), senders and receivers alike."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        admin.create_topics({f"{kafka_prefix}legacy": {"num_partitions": 3, "replication_factor": 1}})
    finally:
        admin.close()
    with caplog.at_level(logging.WARNING, logger="actorflow.kafka"):
        streamer = make(partitions=12)
        assert streamer.ensure_topic("legacy") == 3
    assert "has 3 partitions" in caplog.text
    send(streamer, "legacy", ["a", "b", "c"])
    assert {m.partition for m in read_all(kafka_broker, f"{kafka_prefix}legacy", 3)} <= {0, 1, 2}


def test_a_shard_reads_only_its_partitions_when_they_divide_evenly(make, receivers):
    """With 12 partitions and 4 shards, shard i gets exactly the runs with shard_of(run_id, 4) == i."""
    streamer = make(partitions=12)
    run_ids = [f"run-{i}" for i in range(60)]
    send(streamer, "shards", run_ids)
    for shard in range(4):
        receiver = streamer.new_receiver("shards", f"shard-{shard}", ReceiverOptions(shard=shard, shard_count=4))
        receivers.append(receiver)
        want = sorted(r for r in run_ids if shard_of(r, 4) == shard)
        got = collect(receiver, len(want))
        assert sorted(e.run_id for e in got) == want
        assert {event_partition(e) % 4 for e in got} == {shard}
        assert receiver.receive(100, 0.2) == []


def event_partition(event: Any) -> int:
    from actorflow.adapters.kafka.streamer import event_position

    return event_position(event.id)[0]


def test_shards_that_do_not_divide_the_partitions_filter_and_warn_once(make, receivers, caplog):
    """With 12 partitions and 5 shards every shard reads everything, keeps its share, and one warning says why."""
    streamer = make(partitions=12)
    run_ids = [f"run-{i}" for i in range(40)]
    send(streamer, "odd", run_ids)
    with caplog.at_level(logging.WARNING, logger="actorflow.kafka"):
        for shard in range(5):
            receiver = streamer.new_receiver("odd", f"odd-{shard}", ReceiverOptions(shard=shard, shard_count=5))
            receivers.append(receiver)
            want = sorted(r for r in run_ids if shard_of(r, 5) == shard)
            assert sorted(e.run_id for e in collect(receiver, len(want))) == want
            assert receiver.receive(100, 0.2) == []
    assert caplog.text.count("not a multiple of 5 shards") == 1


def test_filtered_events_are_committed_with_the_next_ack(make, receivers):
    """Other shards' events a filtering receiver skipped are not read again after an ack past them."""
    streamer = make(partitions=1)
    run_ids = [f"run-{i}" for i in range(30)]
    send(streamer, "skip", run_ids)
    options = ReceiverOptions(shard=0, shard_count=2)
    first = streamer.new_receiver("skip", "skipper", options)
    got = collect(first, sum(1 for r in run_ids if shard_of(r, 2) == 0))
    first.ack(got[-1])
    first.close()
    again = streamer.new_receiver("skip", "skipper", options)
    receivers.append(again)
    assert again.receive(100, 0.3) == []


def test_acks_commit_every_partition_once_per_call(make, receivers, kafka_broker, kafka_prefix):
    """One ack commits, for each partition, the offset after the last event delivered before it."""
    from kafka import KafkaAdminClient, TopicPartition

    streamer = make(partitions=4)
    run_ids = [f"run-{i}" for i in range(20)]
    send(streamer, "commits", run_ids)
    receiver = streamer.new_receiver("commits", "committer")
    receivers.append(receiver)
    events = collect(receiver, 20)
    receiver.ack(events[-1])

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        tps = [TopicPartition(f"{kafka_prefix}commits", p) for p in range(4)]
        committed = admin.list_group_offsets({"committer": tps})["committer"]
    finally:
        admin.close()
    counts = [sum(1 for r in run_ids if zlib.crc32(r.encode()) % 4 == p) for p in range(4)]
    assert [committed[tp].offset for tp in tps] == counts


def test_stream_from_latest_skips_a_whole_batch_sent_before(make, receivers):
    """Starting at the head works even where end_offsets() stops at the last batch's start (Tansu)."""
    streamer = make(partitions=2)
    send(streamer, "latest", [f"old-{i}" for i in range(200)])  # one flush: large batches
    receiver = streamer.new_receiver("latest", "late-comer", ReceiverOptions(stream_from_latest=True))
    receivers.append(receiver)
    send(streamer, "latest", ["new-1", "new-2"])
    got = collect(receiver, 2)
    assert sorted(e.run_id for e in got) == ["new-1", "new-2"]
    assert receiver.receive(100, 0.3) == []


def test_created_at_is_the_message_timestamp(make, receivers):
    """Event.created_at is the message's timestamp (the streamer's clock when sent), in UTC."""
    when = datetime(2023, 4, 9, 8, 30, 0, 250000, tzinfo=UTC)
    streamer = make(partitions=1, clock=af.FakeClock(when))
    send(streamer, "stamped", ["r"])
    receiver = streamer.new_receiver("stamped", "reader")
    receivers.append(receiver)
    (event,) = collect(receiver, 1)
    assert event.created_at == when
    assert event.created_at.tzinfo is UTC


def test_event_ids_stand_for_partition_and_offset():
    """An Event.id encodes (partition, offset) and grows with the offset within a partition."""
    from actorflow.adapters.kafka.streamer import event_id, event_position

    assert event_position(event_id(7, 123456789)) == (7, 123456789)
    assert event_id(3, 10) < event_id(3, 11)


def test_constructing_connects_nothing_and_starts_no_thread():
    """A streamer for an unreachable broker can be built: nothing connects before it is used."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    before = set(threading.enumerate())
    streamer = KafkaEventStreamer("127.0.0.1:1", "p-", client_options={"security_protocol": "SSL"})
    assert set(threading.enumerate()) == before
    streamer.close()


def test_client_options_reach_the_clients_and_unknown_ones_are_refused():
    """Security settings are passed to every client; a key no kafka-python client takes is a ValueError."""
    import kafka

    from actorflow.adapters.kafka import KafkaEventStreamer

    options = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"}
    streamer = KafkaEventStreamer("broker:9093", client_options=options)
    for cls in (kafka.KafkaConsumer, kafka.KafkaProducer, kafka.KafkaAdminClient):
        config = streamer.clients.config(cls, {})
        assert {k: config[k] for k in options} == options
        assert config["bootstrap_servers"] == ["broker:9093"]
    with pytest.raises(ValueError, match="no option sasl_typo"):
        KafkaEventStreamer("broker:9093", client_options={"sasl_typo": "x"})


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_a_flush_timeout_that_is_not_a_positive_number_of_seconds_is_refused(bad):
    from actorflow.adapters.kafka import KafkaEventStreamer

    with pytest.raises(ValueError, match="flush_timeout must be a positive number of seconds"):
        KafkaEventStreamer("broker:9093", flush_timeout=bad)


def test_a_sender_flushes_with_its_streamers_flush_timeout():
    """A slower broker's batches get the time the user gave (the outbox relay re-sends after it)."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    streamer = KafkaEventStreamer("broker:9093", flush_timeout=7.5)
    streamer.ensure_topic = lambda topic: 1  # no broker needed to make a sender
    waits: list[float] = []
    sender = streamer.new_sender("t")
    sender._wait = waits.append  # noqa: SLF001 - what flush() would wait
    sender.flush()
    assert waits == [7.5]


def test_detach_releases_the_shared_clients(make):
    """After the last supervisor detaches, the producer's and admin's threads are gone; use reopens them."""
    streamer = make(partitions=1)
    before = set(threading.enumerate())
    streamer.attach()
    streamer.attach()
    send(streamer, "life", ["a"])
    assert set(threading.enumerate()) - before
    streamer.detach()
    assert set(threading.enumerate()) - before, "one supervisor is still attached"
    streamer.detach()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before
    send(streamer, "life", ["b"])  # reopened on use


@pytest.mark.parametrize("window", ["request being written", "connection being opened"])
def test_closing_a_reader_closes_every_socket_of_its_consumer(make, monkeypatch, window):
    """kafka-python drops, unclosed, a socket whose request is still buffered or which is still
    connecting when its client closes (a ResourceWarning when collected): the adapter closes it."""
    import kafka.errors
    from kafka.net.inet import KafkaNetSocket
    from kafka.net.transport import KafkaTCPTransport

    made: list[Any] = []
    socket_of = KafkaNetSocket.socket

    def tracked(self: Any, *args: Any) -> Any:
        made.append(socket_of(self, *args))
        return made[-1]

    monkeypatch.setattr(KafkaNetSocket, "socket", tracked)
    streamer = make(partitions=1)
    streamer.new_sender("leak").close()  # the topic exists before the window is widened
    if window == "request being written":  # the fetch sent after a poll stays in the write buffer
        write = KafkaTCPTransport._write_to_sock  # noqa: SLF001 - kafka-python's transport, slowed to widen a window

        async def slow_write(self: Any) -> Any:
            await self._net.sleep(0.3)
            return await write(self)

        monkeypatch.setattr(KafkaTCPTransport, "_write_to_sock", slow_write)
    else:  # a connection opens slowly
        connect = KafkaNetSocket.sock_connect

        async def slow_connect(self: Any, net: Any, sock: Any, *args: Any, **kwargs: Any) -> Any:
            sock = await connect(self, net, sock, *args, **kwargs)
            with contextlib.suppress(kafka.errors.KafkaTimeoutError):
                await net.wait_read(sock, timeout_at=time.monotonic() + 0.3)
            return sock

        monkeypatch.setattr(KafkaNetSocket, "sock_connect", slow_connect)
    made.clear()
    receiver = streamer.new_receiver("leak", "reader")
    receiver.receive(10, 0.05)
    receiver.close()
    assert made
    assert [sock for sock in made if sock.fileno() != -1] == []


RESERVED_OPTIONS = {
    "group_id": "mine",
    "enable_auto_commit": True,
    "key_serializer": str.encode,
    "value_serializer": str.encode,
    "key_deserializer": bytes.decode,
    "value_deserializer": bytes.decode,
    "partitioner": lambda key, all_partitions, available: all_partitions[0],
    "transactional_id": "tx",
    "kafka_client": object,
    "selector": selectors.DefaultSelector,
    "bootstrap_servers": "elsewhere:9092",
    "acks": 1,
    "auto_offset_reset": "latest",
}


@pytest.mark.parametrize("key", sorted(RESERVED_OPTIONS))
def test_client_options_may_not_change_what_the_adapter_depends_on(kafka_broker, kafka_prefix, key):
    """Options that would break the wire format, sharding or at-least-once are refused; nothing is created."""
    from kafka import KafkaAdminClient

    from actorflow.adapters.kafka import KafkaConnector, KafkaEventStreamer

    before = set(threading.enumerate())
    options = {key: RESERVED_OPTIONS[key]}
    with pytest.raises(ValueError, match=f"client_options.*{key}"):
        KafkaEventStreamer(kafka_broker, kafka_prefix, client_options=options)
    with pytest.raises(ValueError, match=f"client_options.*{key}"):
        KafkaConnector(kafka_broker, f"{kafka_prefix}external", client_options=options)
    assert set(threading.enumerate()) == before
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        assert not [t for t in admin.list_topics() if t.startswith(kafka_prefix)]
    finally:
        admin.close()


def test_the_values_the_adapter_uses_itself_are_accepted():
    """acks="all" and auto_offset_reset="earliest" are our settings: giving them again is fine."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    for options in ({"acks": "all"}, {"acks": -1}, {"auto_offset_reset": "earliest"}):
        KafkaEventStreamer("broker:9092", client_options=options).close()


def test_the_consumer_commits_once_per_batch(make, kafka_prefix, monkeypatch):
    """A workflow's consumer commits its offsets in batches, not once per event.

    Fifty runs' first events are on the topic before the workflow starts, so the first
    consumer reads them in batches of several; each KafkaConsumer.commit call is counted.
    """
    import kafka

    from actorflow.adapters.kafka.streamer import event_position
    from actorflow.adapters.memory import MemoryRecordStore, MemoryRoleScheduler

    commits: list[tuple[str, dict[Any, Any]]] = []
    commit = kafka.KafkaConsumer.commit

    def counted(self: Any, offsets: Any = None, timeout_ms: Any = None) -> Any:
        commits.append((self.config["group_id"], dict(offsets)))
        return commit(self, offsets, timeout_ms=timeout_ms)

    monkeypatch.setattr(kafka.KafkaConsumer, "commit", counted)

    streamer = make(partitions=4)
    batches: list[tuple[str, str, list[tuple[int, int]]]] = []  # (group, topic, positions)
    new_receiver = streamer.new_receiver

    def spied(topic: str, name: str, options: Any = None) -> Any:
        receiver = new_receiver(topic, name, options)
        receive = receiver.receive

        def logged(max_events: int, timeout: float) -> Any:
            events = receive(max_events, timeout)
            if events:
                batches.append((name, topic, [event_position(e.id) for e in events]))
            return events

        receiver.receive = logged
        return receiver

    streamer.new_receiver = spied
    store = MemoryRecordStore()
    wf = three_steps("batches").build(
        streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05)
    )
    runs = {f"run-{i}": wf.trigger(f"run-{i}") for i in range(50)}
    # Publish the outbox as the relay would, before any consumer reads the topic.
    rows = store.list_outbox_events(wf.name, 1000)
    sender = streamer.new_sender(rows[0].topic)
    for row in rows:
        sender.send(row.run_id, row.type, row.headers)
    sender.flush()
    for row in rows:
        store.delete_outbox_event(row.id)

    wf.run()
    try:
        for foreign_id, run_id in runs.items():
            wf.await_status(foreign_id, run_id, Stage.DONE, timeout=20)
    finally:
        wf.stop()

    first = f"{wf.name}-{int(Stage.STARTED)}"
    (first_group,) = {name for name, topic, _ in batches if topic == first}
    first_batches = [events for name, _, events in batches if name == first_group]
    assert sum(len(events) for events in first_batches) == 50
    assert max(len(events) for events in first_batches) > 1, "every batch had one event: the test proves nothing"
    for group in {name for name, _, _ in batches} - {first_group}:
        # The later steps' events also come straight from this node's writer (engine/handoff.py):
        # a batch read from the broker is acknowledged as far as its events are done, so one
        # whose later events were still running is committed in parts. Still batched (below).
        events_read = sum(len(events) for name, _, events in batches if name == group)
        assert len([1 for name, _ in commits if name == group]) <= events_read // 2, group
    # The first step's consumer committed its offsets in batches, not once per event: an ack
    # follows the commit of its events' writes, which is bounded by size and by time, so on a
    # loaded machine one batch read may be acknowledged in two or three commits...
    first_commits = [offsets for name, offsets in commits if name == first_group]
    assert 1 <= len(first_commits) <= 50 // 2
    # ...covering, partition by partition, the offset after the batch's last event.
    by_partition: dict[int, int] = {}
    for offsets in first_commits:
        for tp, meta in offsets.items():
            assert tp.topic == f"{kafka_prefix}{first}"
            by_partition[tp.partition] = max(by_partition.get(tp.partition, 0), meta.offset)
    delivered: dict[int, int] = {}
    for events in first_batches:
        for partition, offset in events:
            delivered[partition] = max(delivered.get(partition, -1), offset)
    assert by_partition == {p: o + 1 for p, o in delivered.items()}
