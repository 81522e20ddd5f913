"""The SQL adapters' schema in tests: this release's names, and the previous release's databases.

Released migrations are never edited (a change is a new version), so a database "as the
previous release left it" is built from this release's own migration files 1-3, checked
here byte for byte against what was released (0.1, ``e240eae``), plus that release's
bookkeeping, which each dialect's test writes itself. The workflow state the tests put
in it (a run part-way through, a finished one) is the same for both dialects.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import actorflow as af
from actorflow.adapters._sql import encode_headers
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.codec import make_codec
from actorflow.event import event_headers, shard_hash
from actorflow.record import Record, RecordMeta
from tests.model import Item, Stage, three_steps

# This release's table and index names, the same in both SQL adapters.
TABLES = {
    "workflow_records",
    "workflow_record_snapshots",
    "workflow_outbox",
    "workflow_events",
    "workflow_cursors",
    "workflow_error_counts",
    "workflow_timeouts",
    "workflow_in_flight",
    "workflow_leases",
    "workflow_nodes",
    "workflow_node_roles",
}
INDEXES = {
    "workflow_records_one_unfinished",
    "workflow_records_latest",
    "workflow_records_by_workflow",
    "workflow_records_by_created",
    "workflow_outbox_by_workflow",
    "workflow_events_by_topic",
    "workflow_error_counts_by_run",
    "workflow_timeouts_valid",
    "workflow_leases_by_node",
}
# SQLite keeps snapshots in a rowid table (its 0008): their (run_id, version) key is an index.
SQLITE_INDEXES = INDEXES | {"workflow_record_snapshots_by_run"}

# name and SHA-256 of each released migration, by dialect and version
RELEASED = {
    "sqlite": {
        1: ("initial", "3252aa6450ea9817888f3d09e23aae4dd9e0b3d74a0c24e0f4da25d0efbd657e"),
        2: ("in_flight", "76aaa0c00a283f5ed8a7a8a963c392637437c3868d7ce81544815c99791dfc88"),
        3: ("error_counts_by_run", "0d31a8b3c64cd423ed5d8fbd89567aaaae7ec0a7078980c3f5c0f1147b1d97d2"),
    },
    "postgres": {
        1: ("initial", "c1ae947649c67f396cfa411779558ad62a5f4192931df480a52761ba6a7136e8"),
        2: ("in_flight", "0b8ee33eb398a1cab32f842f5da145f245d0f45783b039848b1420b469953906"),
        3: ("error_counts_by_run", "875c964bacd3e0c21b828810c310ac25a68e797a9b5009ee5dacad5f788a44c2"),
    },
}
LEGACY_VERSIONS = [(version, name) for version, (name, _) in RELEASED["sqlite"].items()]

WORKFLOW = "legacy"
RUN, OLD_RUN = "run-a", "run-old"
CODEC = make_codec(Item, None)
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
# The record columns the tests write (the rest keep their defaults).
RECORD_COLUMNS = "run_id, workflow_name, foreign_id, run_state, status, object, created_at, updated_at, version"


def versions(dialect: str) -> list[int]:
    """Every schema version this release knows for ``dialect``."""
    folder = resources.files(f"actorflow.adapters.{dialect}") / "migrations"
    return sorted(int(entry.name[:4]) for entry in folder.iterdir() if entry.name.endswith(".sql"))


def new_versions(dialect: str) -> list[int]:
    """The versions a database the previous release left (at its newest, 3) lacks."""
    return [v for v in versions(dialect) if v > len(RELEASED[dialect])]


def released_scripts(dialect: str, versions: int = 3) -> list[str]:
    """The scripts of the first ``versions`` released migrations, as released (else the test fails)."""
    folder = resources.files(f"actorflow.adapters.{dialect}") / "migrations"
    scripts = []
    for version, (name, digest) in list(RELEASED[dialect].items())[:versions]:
        data = (folder / f"{version:04d}_{name}.sql").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, (
            f"the released {dialect} migration {version} was edited: never change a released version, add one"
        )
        scripts.append(data.decode("utf-8"))
    return scripts


def legacy_record(run_id: str, foreign_id: str, status: Stage, state: af.RunState, version: int, steps: int) -> Record:
    """A record of the legacy workflow (three counting steps), ``steps`` of them done."""
    return Record(
        workflow_name=WORKFLOW,
        foreign_id=foreign_id,
        run_id=run_id,
        run_state=state,
        status=int(status),
        object=CODEC.encode(Item(foreign_id, steps)),
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=version),
        meta=RecordMeta(version=version),
    )


def record_row(record: Record, time_out: Callable[[datetime], Any] = lambda t: t) -> tuple[Any, ...]:
    """A record's values in `RECORD_COLUMNS` order (``time_out`` converts its times for the dialect)."""
    return (
        record.run_id,
        record.workflow_name,
        record.foreign_id,
        int(record.run_state),
        record.status,
        record.object,
        time_out(record.created_at),
        time_out(record.updated_at),
        record.meta.version,
    )


def event_row(record: Record, time_out: Callable[[datetime], Any] = lambda t: t) -> tuple[Any, ...]:
    """The event log row (topic, run id, type, headers, created_at, shard hash) of a stored record."""
    headers = encode_headers(event_headers(record))
    topic = f"{WORKFLOW}-{record.status}"
    return (topic, record.run_id, record.status, headers, time_out(record.updated_at), shard_hash(record.run_id))


def migrate_in_processes(path: Path, count: int = 4) -> list[str]:
    """``count`` processes call ``actorflow.adapters.sqlite.migrate(path)`` at once; what each printed, sorted."""
    code = "import sys\nfrom actorflow.adapters.sqlite import migrate\nprint(migrate(sys.argv[1]))\n"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    return sorted(out.strip() for out, _ in outputs)


# Run "run-a" is part-way: created (v1), its first step done (v2), its FIRST event waiting.
V1 = legacy_record(RUN, "item-a", Stage.STARTED, af.RunState.INITIATED, 1, 0)
V2 = legacy_record(RUN, "item-a", Stage.FIRST, af.RunState.RUNNING, 2, 1)
OLD = legacy_record(OLD_RUN, "item-old", Stage.DONE, af.RunState.COMPLETED, 4, 3)


def finish_the_legacy_run(streamer: Any, store: Any, waiting_event: int) -> None:
    """A workflow on the upgraded database picks "run-a" up at its waiting event and finishes it.

    The event is delivered once (not lost, nothing before the receiver's cursor replayed),
    the steps before it do not run again, and the finished run is left as it was.
    """
    receiver = streamer.new_receiver(f"{WORKFLOW}-2", f"{WORKFLOW}-2-consumer-1-of-1")
    assert [(e.id, e.run_id) for e in receiver.receive(10, 5.0)] == [(waiting_event, RUN)]
    receiver.close()  # not acknowledged: the consumer reads it again

    calls: list[tuple[str, Stage]] = []
    wf = three_steps(WORKFLOW, calls=calls).build(streamer, store, MemoryRoleScheduler())
    assert wf.publishes_directly
    wf.run()
    try:
        done = wf.await_status("item-a", RUN, Stage.DONE, timeout=10)
    finally:
        wf.stop()
    assert calls == [(RUN, Stage.FIRST), (RUN, Stage.SECOND)]  # STARTED was acknowledged before the upgrade
    assert (done.object.steps, done.meta.version) == (3, 4)
    assert [r.meta.version for r in store.snapshots(RUN)] == [1, 2, 3, 4]
    assert store.lookup(OLD_RUN) == OLD
