"""A node for the Kafka restart tests: a 3-step workflow, events on Kafka, records in PostgreSQL.

Usage: python kafka_node.py SERVERS PREFIX DSN SCHEMA RUNS LOG [--trigger]

With --trigger it first starts RUNS runs (foreign ids run-0 ... run-<RUNS-1>). It then runs the
workflow and exits 0 once every run is Completed. Every event its receivers deliver is logged
to LOG as "<group> <topic> <partition> <offset>", so a test can see where a restarted node resumed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import psycopg

import actorflow as af
from actorflow.adapters.kafka import KafkaEventStreamer
from actorflow.adapters.kafka.streamer import event_position
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import PostgresRecordStore

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for tests.model
from tests.model import three_steps


class LoggingStreamer(KafkaEventStreamer):
    """Logs the position of every event a receiver delivers."""

    log_path = ""

    def new_receiver(self, topic: str, name: str, options: Any = None) -> Any:
        receiver = super().new_receiver(topic, name, options)
        receive = receiver.receive

        def logged(max_events: int, timeout: float) -> Any:
            events = receive(max_events, timeout)
            if events:
                where = f"{name} {self.kafka_topic(topic)}"
                lines = [f"{where} {' '.join(map(str, event_position(e.id)))}\n" for e in events]
                with open(self.log_path, "a", encoding="utf-8") as log:  # noqa: PTH123
                    log.writelines(lines)
            return events

        receiver.receive = logged
        return receiver


def main() -> int:
    servers, prefix, dsn, schema, runs, log = sys.argv[1:7]
    b = three_steps("restart", parallel=2)
    streamer = LoggingStreamer(servers, prefix, partitions=4)
    streamer.log_path = log
    store = PostgresRecordStore(dsn, schema=schema)
    wf = b.build(streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05))
    if "--trigger" in sys.argv:
        for i in range(int(runs)):
            wf.trigger(f"run-{i}")
    wf.run()
    print("running", flush=True)
    finished = threading.Event()
    with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as check:
        while not finished.wait(0.05):
            (done,) = check.execute("SELECT count(*) FROM workflow_records WHERE run_state = 5").fetchone()
            if done >= int(runs):
                finished.set()
    wf.stop()
    streamer.close()
    store.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
