"""The one state table: every allowed change passes, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from conveyor import InvalidTransition, State
from conveyor.job import ACTIVE_STATES, FINAL_STATES, TRANSITIONS, check_transition

ALLOWED = {
    (State.SCHEDULED, State.READY),
    (State.SCHEDULED, State.CANCELLED),
    (State.READY, State.RUNNING),
    (State.READY, State.CANCELLED),
    (State.RUNNING, State.SUCCEEDED),
    (State.RUNNING, State.SCHEDULED),
    (State.RUNNING, State.READY),
    (State.RUNNING, State.DEAD),
    (State.RUNNING, State.CANCELLED),
    (State.DEAD, State.READY),
}
ALL_PAIRS = list(itertools.product(State, State))


def test_the_table_is_exactly_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_changes_pass(old: State, new: State) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), [p for p in ALL_PAIRS if p not in ALLOWED])
def test_every_other_change_raises(old: State, new: State) -> None:
    with pytest.raises(InvalidTransition, match=f"from '{old.value}' to '{new.value}'"):
        check_transition(old, new)


def test_final_states_have_no_way_out_except_retrying_a_dead_job() -> None:
    assert {State.SUCCEEDED, State.DEAD, State.CANCELLED} == FINAL_STATES
    assert TRANSITIONS[State.SUCCEEDED] == frozenset()
    assert TRANSITIONS[State.CANCELLED] == frozenset()
    assert TRANSITIONS[State.DEAD] == frozenset({State.READY})


def test_no_state_goes_to_itself_and_active_states_are_the_rest() -> None:
    assert all(s not in TRANSITIONS[s] for s in State)
    assert set(State) - FINAL_STATES == ACTIVE_STATES
