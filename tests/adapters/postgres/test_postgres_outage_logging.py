"""A 5 s PostgreSQL outage logs a few lines, not a thousand: one naming the failure, one on recovery.

Before the rate limits, such an outage logged about 76 records (1,450 lines with pykka's
tracebacks): every reconnect attempt of the pool and of the LISTEN thread, every
restart of every process. A piped stderr read slowly could stall the node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

import actorflow as af
from tests.adapters.postgres._pg_cluster import Cluster, throwaway_cluster
from tests.adapters.postgres.test_postgres_server_restart import _build, _shut_down
from tests.model import Item, Stage
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

OUTAGE = 5.0  # seconds the server stays down
MOST_RECORDS = 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this module's own, always stopped and removed afterwards."""
    with throwaway_cluster() as made:
        yield made


def test_a_five_second_outage_logs_a_bounded_number_of_lines(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger, WARNING and up, during a 5 s outage and the recovery: at most 20 records, one
    naming the failure, one saying the processes recovered; runs complete before and after."""
    wf, adapters, registry = _build(cluster.dsn, "quietlog")
    supervisor = af.Supervisor(
        [wf], registry=registry, restart=af.RestartPolicy(initial=0.05, maximum=0.5, jitter=0.05)
    )
    try:
        supervisor.start()
        run_id = wf.trigger("before", Item("before"))
        assert wf.await_status("before", run_id, Stage.DONE, timeout=30).meta.version == 4
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            cluster.stop("fast")
            time.sleep(OUTAGE)  # the outage itself is what is measured: no condition to wait for
            cluster.start()
            run_id = wf.trigger("after", Item("after"))
            assert wf.await_status("after", run_id, Stage.DONE, timeout=60).meta.version == 4

            def recovered() -> list[str]:
                return [r.getMessage() for r in caplog.records if "recovered after exiting" in r.getMessage()]

            eventually(recovered, timeout=30, what="the recovery line")
            records = [f"{r.name}: {r.getMessage()[:160]}" for r in caplog.records]
    finally:
        _shut_down(cluster, supervisor, adapters)
    assert len(records) <= MOST_RECORDS, "\n".join(records)
    assert any(" exited (" in r and "PostgreSQL" in r for r in records), "\n".join(records)
    assert not any("Unhandled exception" in r for r in records), "\n".join(records)
