"""Run states: the original's codes, names, classes and controller transition table."""

from __future__ import annotations

import pytest

import actorflow as af
from actorflow.runstate import check_run_state_transition

R = af.RunState


def test_codes_and_names_are_the_originals():
    assert [(int(s), str(s)) for s in R] == [
        (0, "Unknown"),
        (1, "Initiated"),
        (2, "Running"),
        (3, "Paused"),
        (4, "Cancelled"),
        (5, "Completed"),
        (6, "Data Deleted"),
        (7, "Requested Data Deleted"),
    ]


def test_finished_and_stopped_classes():
    assert {s for s in R if s.finished} == {R.CANCELLED, R.COMPLETED, R.DATA_DELETED, R.REQUESTED_DATA_DELETED}
    assert {s for s in R if s.stopped} == {R.PAUSED, R.CANCELLED, R.DATA_DELETED, R.REQUESTED_DATA_DELETED}
    assert not R.UNKNOWN.valid
    assert all(s.valid for s in R if s is not R.UNKNOWN)


ALLOWED = {
    (R.INITIATED, R.RUNNING),
    (R.INITIATED, R.PAUSED),
    (R.RUNNING, R.PAUSED),
    (R.RUNNING, R.CANCELLED),
    (R.RUNNING, R.COMPLETED),
    (R.PAUSED, R.RUNNING),
    (R.PAUSED, R.CANCELLED),
    (R.COMPLETED, R.REQUESTED_DATA_DELETED),
    (R.CANCELLED, R.REQUESTED_DATA_DELETED),
    (R.REQUESTED_DATA_DELETED, R.DATA_DELETED),
    (R.DATA_DELETED, R.REQUESTED_DATA_DELETED),
}


@pytest.mark.parametrize("current", list(R))
@pytest.mark.parametrize("new", list(R))
def test_controller_table(current, new):
    """Exactly the original's table is allowed; everything else (X -> X too) is refused."""
    if (current, new) in ALLOWED:
        check_run_state_transition(current, new)
    else:
        with pytest.raises(af.InvalidRunStateTransition, match=f"from {current} \\| to {new}"):
            check_run_state_transition(current, new)
