"""Records: the stored form of a run (`Record`), and its typed views (`TypedRecord`, `Run`)."""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from actorflow.errors import InvalidForeignId
from actorflow.runstate import RunState
from actorflow.status import RUN_STATE_UPDATED, SAVE_AND_REPEAT, SKIP

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "MAX_FOREIGN_ID",
    "Record",
    "RecordMeta",
    "Run",
    "TypedRecord",
    "check_foreign_id",
    "foreign_id_refusal",
    "store_checked",
]

MAX_FOREIGN_ID = 255
"""The longest foreign id, in characters (a MySQL VARCHAR(255) holds it; so does every other store)."""


_REFUSED = frozenset({"Cc", "Cs"})  # control characters, lone surrogates


def check_foreign_id(foreign_id: object) -> str:
    """``foreign_id`` if every store can keep and find it exactly, else `InvalidForeignId`.

    The one rule, checked before any write: a `str` of 1 to `MAX_FOREIGN_ID` characters
    with no control character (NUL cannot be stored by PostgreSQL; a newline would forge
    log lines) and no lone surrogate (not encodable as UTF-8). Anything else printable
    goes, commas, quotes, ``%`` and ``_`` included.
    """
    if not isinstance(foreign_id, str):
        msg = f"a foreign id must be a str, got {type(foreign_id).__name__} {foreign_id!r:.80}"
        raise InvalidForeignId(msg, foreign_id=foreign_id)
    if not 1 <= len(foreign_id) <= MAX_FOREIGN_ID:
        msg = f"a foreign id must have 1 to {MAX_FOREIGN_ID} characters, got {len(foreign_id)}"
        raise InvalidForeignId(msg, foreign_id=foreign_id[:80])
    if foreign_id.isprintable():  # no Cc or Cs character (the common case, without a scan in Python)
        return foreign_id
    bad = next((ch for ch in foreign_id if unicodedata.category(ch) in _REFUSED), None)
    if bad is not None:
        msg = f"a foreign id may not hold a control character or a lone surrogate, found {bad!r} in {foreign_id!r:.80}"
        raise InvalidForeignId(msg, foreign_id=foreign_id[:80])
    return foreign_id


T = TypeVar("T")
S = TypeVar("S", bound=int)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordMeta:
    """Bookkeeping stored with every record.

    Attributes:
        version: 1 on the first store, plus 1 on every write (optimistic concurrency).
        run_state_reason: why the run was paused, cancelled or had its data deleted.
        status_description: the status's name at the time of the write.
        trace_origin: where the run was triggered from (a short stack summary).
    """

    version: int = 0
    run_state_reason: str = ""
    status_description: str = ""
    trace_origin: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A run as stored: the object is the encoded bytes, the status a plain int.

    Records are immutable, so stores and the engine share them between threads freely;
    use `dataclasses.replace` to derive the next version.
    """

    workflow_name: str
    foreign_id: str
    run_id: str
    run_state: RunState
    status: int
    object: bytes
    created_at: datetime
    updated_at: datetime
    meta: RecordMeta = RecordMeta()


def foreign_id_refusal(record: Record) -> InvalidForeignId | None:
    """`InvalidForeignId` when ``record`` starts a run whose foreign id breaks the rule, else ``None``.

    Every record store asks this of each record before writing anything of it, so a
    store called directly keeps the rule the engine's actions check (`check_foreign_id`):
    one typed error, whatever the backend would have made of the id. Only a new run
    (version 1) stores a foreign id; a later version keeps the stored one, so a run
    stored before the rule existed can still move.
    """
    if record.meta.version != 1:
        return None
    try:
        check_foreign_id(record.foreign_id)
    except InvalidForeignId as exc:
        return exc
    return None


def store_checked(
    records: Sequence[Record], store_many: Callable[[Sequence[Record]], list[Exception | None]]
) -> list[Exception | None]:
    """``store_many(records)`` with each new run of a bad foreign id refused in its place, unwritten.

    For a store whose batch is written in one go: the refused records never reach it, the
    others are stored as they would be without them (a refusal never undoes the others).
    """
    refusals: list[Exception | None] = [foreign_id_refusal(record) for record in records]
    if not any(refusals):
        return store_many(records)
    stored = iter(store_many([record for record, refusal in zip(records, refusals, strict=True) if refusal is None]))
    return [refusal if refusal is not None else next(stored) for refusal in refusals]


@dataclasses.dataclass(slots=True)
class TypedRecord(Generic[T, S]):
    """A record with its object decoded to ``T`` and its status as the user's enum ``S``."""

    workflow_name: str
    foreign_id: str
    run_id: str
    run_state: RunState
    status: S
    object: T
    created_at: datetime
    updated_at: datetime
    meta: RecordMeta


@dataclasses.dataclass(slots=True)
class _Control:
    """What a step asked for through `Run.pause`/`Run.cancel` (applied by the engine)."""

    run_state: RunState | None = None
    reason: str = ""


class Run(TypedRecord[T, S]):
    """What a step, callback or timeout function receives: the typed run plus its controls.

    ``run.pause(reason)``, ``run.cancel(reason)``, ``run.skip()`` and
    ``run.save_and_repeat()`` each return a sentinel to return from the step; the engine
    then does what it says (store the run state, move on, store the object and repeat).

    Calling ``pause``/``cancel`` decides the write, whatever the function then returns:
    the run-state change wins (as in the original, which stores it at once). The run is
    stored at its status as it was loaded (changes to ``object`` are not saved), with the
    requested run state and reason; a status or other sentinel returned after the call is
    dropped, with a warning naming the run and the result. A function that raises after
    the call stores nothing (a step error, counted and retried as any other).
    """

    __slots__ = ("_control", "_hooks")

    def __init__(
        self,
        *args: Any,
        hooks: dict[str, Callable[[str], None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._control = _Control()
        self._hooks = hooks or {}

    def pause(self, reason: str = "") -> S:
        """Pause the run; return the result from the step. Steps stop until it is resumed.

        The pause is stored whatever the step returns after this call (see `Run`).
        """
        self._request(RunState.PAUSED, reason, "pause")
        return cast("S", RUN_STATE_UPDATED)

    def cancel(self, reason: str = "") -> S:
        """Cancel the run; return the result from the step. The run is finished.

        The cancel is stored whatever the step returns after this call (see `Run`).
        """
        self._request(RunState.CANCELLED, reason, "cancel")
        return cast("S", RUN_STATE_UPDATED)

    def skip(self) -> S:
        """Do not move the run now; the event is acknowledged and the run stays put."""
        return cast("S", SKIP)

    def save_and_repeat(self) -> S:
        """Store the (changed) object under the same status and run this step again."""
        hook = self._hooks.get("save_and_repeat")
        if hook is not None:
            hook("")
        return cast("S", SAVE_AND_REPEAT)

    def requested_run_state(self) -> tuple[RunState, str] | None:
        """The run state the function asked for with `pause`/`cancel`, and why (for the engine)."""
        control = self._control
        return None if control.run_state is None else (control.run_state, control.reason)

    def _request(self, state: RunState, reason: str, name: str) -> None:
        self._control.run_state = state
        self._control.reason = reason
        hook = self._hooks.get(name)
        if hook is not None:
            hook(reason)
