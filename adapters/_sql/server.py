"""What the adapters on a database server (PostgreSQL, MySQL) share beyond rows: their base classes.

Each of those adapters holds a `Database` of its dialect: a connection pool shared by
the adapters made for one database, and named queries run through ``fetchone``,
``fetchall`` and ``execute`` (each with a ``what`` that names the operation in errors).
Over that one interface, what their adapters do alike is written once here: the
lifecycle (`ServerAdapter`: attach, detach, close, fencing), and the record store's
methods that are nothing but a named query (`ServerRecordStore`). The SQL, and how each
dialect writes records, stays with the adapter.
"""

from __future__ import annotations

import builtins
import functools
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from actorflow.capabilities import CursorMove
from actorflow.errors import RecordNotFound
from actorflow.protocols import EventStreamer, Fence, RoleScheduler
from actorflow.record import Record, store_checked

from .rows import decode_run_ids

__all__ = ["ServerAdapter", "ServerDatabase", "ServerRecordStore"]


class ServerDatabase(Protocol):
    """A dialect's `Database`, as the shared code uses it."""

    @property
    def queries(self) -> Mapping[str, str]:
        """The dialect's named queries (its ``queries.sql``)."""
        ...

    @property
    def identity(self) -> Hashable:
        """What makes two adapters share a database (the server, the database, and so on)."""
        ...

    def fetchone(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> Any: ...

    def fetchall(self, what: str, query: str, params: Any = ()) -> builtins.list[Any]: ...

    def execute(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> int: ...

    def attach(self) -> None: ...

    def detach(self) -> None: ...

    def close(self) -> None: ...


D = TypeVar("D", bound=ServerDatabase)


class ServerAdapter(Generic[D]):
    """What every adapter on a server database shares: its `Database` (``db``), `attach`, `detach`, `close`.

    Attributes:
        keeps_leases: True on the adapters that keep role leases in their database (the
            role schedulers' base, each dialect's ``LeaseKeeper``).
    """

    db: D
    keeps_leases: ClassVar[bool] = False

    def fences_with(self, role_scheduler: RoleScheduler) -> bool:
        """True when ``role_scheduler`` keeps its leases in this database (a role scheduler of its dialect).

        This adapter can then check those leases in its own transactions. Does not connect.
        """
        return (
            isinstance(role_scheduler, ServerAdapter)
            and role_scheduler.keeps_leases
            and type(role_scheduler.db) is type(self.db)
            and role_scheduler.db.identity == self.db.identity
        )

    def attach(self) -> None:
        """A supervisor starts using this adapter (connects now: a wrong DSN fails the start)."""
        self.db.attach()

    def detach(self) -> None:
        """A supervisor stopped; the last one to stop releases connections and threads."""
        self.db.detach()

    def close(self) -> None:
        """Close the pool and stop the threads that use it (reopened on next use)."""
        self.db.close()


class ServerRecordStore(ServerAdapter[D]):
    """The record store's methods that are one named query, or the same over the others, for every dialect.

    A subclass sets ``_direct`` (the workflows whose events go straight into the event
    log) and ``_handed`` (empty: see `wake_locally`), and defines `acks_for`,
    `_store_many` and `_record`.
    """

    _direct: set[str]
    # Per workflow: whether a consumer of the engine writing through this store takes a
    # record's event from its writer (`wake_locally`): such a record's event is not
    # announced by its commit. None: two engines of the workflow write here, and the store
    # cannot tell whose commit it is; every event is announced.
    _handed: dict[str, Callable[[Record], bool] | None]

    def acks_for(self, event_streamer: EventStreamer) -> bool:
        """True when ``event_streamer`` keeps its events and cursors in this database."""
        raise NotImplementedError

    def store_many(
        self,
        records: Sequence[Record],
        *,
        forget_errors: bool = False,
        fence: Fence | None = None,
        acks: Sequence[CursorMove] = (),
    ) -> builtins.list[Exception | None]:
        """Store a batch in one transaction; a record that fails never undoes the others.

        ``forget_errors`` also deletes the error counts of each run stored. ``fence``: the
        batch is stored only if that lease is still its role's current one, checked (and
        share-locked, so the role cannot pass on) in the same transaction; else `StaleTerm`
        and nothing is stored. ``acks``: receivers' cursor moves, saved in the same
        transaction (`CommitAcks`). A new run whose foreign id breaks the rule is refused
        in its place with `InvalidForeignId`, before anything is sent (`store_checked`).
        """
        return store_checked(
            records, functools.partial(self._store_many, forget_errors=forget_errors, fence=fence, acks=acks)
        )

    def _store_many(
        self, records: Sequence[Record], *, forget_errors: bool, fence: Fence | None, acks: Sequence[CursorMove]
    ) -> builtins.list[Exception | None]:
        """`store_many` of records whose foreign ids were checked, in one transaction (the dialect's)."""
        raise NotImplementedError

    def _record(self, row: Sequence[Any]) -> Record:
        """The record of a row (`CorruptRecord` when it is not one)."""
        raise NotImplementedError

    # -- capabilities -------------------------------------------------------------------

    def publish_directly(self, workflow_name: str, event_streamer: EventStreamer) -> bool:
        """Write ``workflow_name``'s events into ``event_streamer``'s log, if it is in this database."""
        if self.acks_for(event_streamer):
            self._direct.add(workflow_name)
            return True
        return False

    def wake_locally(self, workflow_name: str, handed: Callable[[Record], bool]) -> bool:
        """Leave out of the wake-ups the records ``handed`` says this process's consumers take (`LocalWakeups`).

        Their consumer gets the event and its record from the writer: a wake-up would
        only make it read them back first. Nothing is lost if the consumer goes meanwhile:
        the next holder of the role reads the log when it starts, and every receiver reads
        once a poll. A second engine of the workflow on this store (which could not tell
        whose commit is whose) turns it off: every record is announced.
        """
        if workflow_name not in self._direct:
            return False
        self._handed[workflow_name] = None if workflow_name in self._handed else handed
        return True

    def _announced(self, record: Record) -> bool:
        """Whether the commit of ``record`` (published directly) must wake the readers of its event.

        Not when this process's consumer of its shard takes it from the writer (asked
        once a commit, before it: the answer is a promise).
        """
        local = self._handed.get(record.workflow_name)
        return local is None or not local(record)

    # -- writes and reads ---------------------------------------------------------------

    def store(self, record: Record) -> None:
        """Create or update ``record`` with its event, in one transaction."""
        error = self.store_many([record])[0]
        if error is not None:
            raise error

    def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``; `CorruptRecord` when its row cannot be read."""
        row = self.db.fetchone("looking up a record", self.db.queries["lookup"], (run_id,))
        if row is None:
            raise RecordNotFound(run_id=run_id)
        return self._record(row)

    def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of ``foreign_id``."""
        row = self.db.fetchone("finding the latest run", self.db.queries["latest"], (workflow_name, foreign_id))
        if row is None:
            raise RecordNotFound(workflow_name=workflow_name, foreign_id=foreign_id)
        return self._record(row)

    # -- error counts ---------------------------------------------------------------------

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the step errors of (process, run)."""
        self.db.execute("clearing errors", self.db.queries["clear_errors"], (process, run_id))

    # -- in-flight log ------------------------------------------------------------------

    def begin_batch(self, process: str, run_ids: Sequence[str]) -> None:
        """Note (durably) the runs ``process`` is about to handle."""
        self.db.execute("noting a batch", self.db.queries["begin_batch"], (process, json.dumps(list(run_ids))))

    def unfinished_batch(self, process: str) -> builtins.list[str]:
        """The runs of the last batch ``process`` noted and did not finish."""
        row = self.db.fetchone("reading the in-flight note", self.db.queries["unfinished_batch"], (process,))
        return decode_run_ids(row[0]) if row else []

    def end_batches(self, process: str) -> None:
        """Nothing of ``process`` is in flight (it stopped cleanly, or has nothing in hand)."""
        self.db.execute("clearing the in-flight note", self.db.queries["end_batches"], (process,))
