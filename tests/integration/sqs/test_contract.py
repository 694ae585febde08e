"""The contract suite's core on the SQS store, against moto_server.

The store declares the core protocol only (`Limits` comes with ``?limits=``: the suite's
limits tests run on it in test_contract_limits.py), so the capability tests skip
themselves, naming what is missing. Some core tests ask for what SQS cannot give; `CANNOT`
lists each with its reason (docs/sqs.md, "What SQS cannot do", says the same to users), and
test_sqs_store.py checks the SQS way of each verb instead, on SQS's own clock.
"""

from __future__ import annotations

import pytest

from conveyor.testing.contract import *  # noqa: F403 - the suite's tests and fixtures

GET = "SQS cannot read a message by id, so get() returns None (docs/sqs.md)"
CLOCK = (
    "SQS keeps delays and visibility timeouts on its own clock, which the suite's FakeClock "
    "cannot move (test_sqs_store.py checks them in real seconds)"
)
UNIQUE = "unique keys need FIFO queues (?fifo=true) and last SQS's 5-minute deduplication window"
ORDER = (
    "SQS keeps order within one SQS queue (best effort on standard queues); among the SQS "
    "queues of one priority a claim takes queue by queue, not oldest first"
)

#: Core tests the SQS store cannot pass, by test name, with the reason.
CANNOT = {
    "test_strict_priority_across_queues": ORDER,
    "test_fifo_within_a_priority": ORDER,
    "test_older_run_at_first_within_a_priority": CLOCK,
    "test_claim_records_the_lease": GET,
    "test_a_claimed_job_is_not_claimed_again": GET,
    "test_lease_token_changes_on_every_claim": CLOCK,
    "test_wakes_after_an_enqueue_from_another_handle": GET,
    "test_a_claim_of_no_jobs_does_not_wait": GET,
    "test_work_for_another_routing_does_not_end_the_wait": GET,
    "test_a_job_arriving_as_the_claim_is_cancelled_is_not_left_leased": GET,
    "test_a_cancelled_claim_carries_nothing_to_the_next_call": GET,
    "test_defer_waits_in_storage_without_using_an_attempt": GET,
    "test_defer_without_delay_is_ready_at_once_and_keeps_headers": GET,
    "test_defer_with_a_stale_lease_is_fenced": GET,
    "test_a_deferred_unique_job_keeps_its_key": UNIQUE,
    "test_enqueue_then_get_round_trips_every_field": GET,
    "test_enqueue_sync_and_get_sync_from_a_thread": GET,
    "test_delayed_job_is_scheduled_until_due": CLOCK,
    "test_a_delay_is_due_that_long_after_the_stores_now": CLOCK,
    "test_run_at_in_the_past_is_ready_at_once": GET,
    "test_unique_key_returns_the_active_job": UNIQUE,
    "test_unique_key_within_one_batch": UNIQUE,
    "test_unique_key_held_while_scheduled_and_running": UNIQUE,
    "test_unique_key_freed_after_success": UNIQUE,
    "test_unique_key_freed_after_dead": UNIQUE,
    "test_changing_a_new_jobs_headers_after_enqueue_changes_nothing": GET,
    "test_changing_a_claimed_records_headers_changes_nothing": GET,
    "test_changing_a_record_from_get_changes_nothing": GET,
    "test_changing_the_headers_given_to_defer_changes_nothing": GET,
    "test_extend_keeps_the_lease_past_its_old_expiry": CLOCK,
    "test_extend_with_a_stale_token_is_false": GET,
    "test_complete_stores_the_result": GET,
    "test_complete_without_result": GET,
    "test_stale_token_is_rejected_everywhere": GET,
    "test_fail_with_retry_in_schedules_and_runs_again": GET,
    "test_a_retry_is_due_retry_in_after_the_stores_now_at_the_failure": GET,
    "test_a_retry_in_of_zero_is_due_at_once": GET,
    "test_fail_without_retry_is_dead": GET,
    "test_release_returns_the_job_and_its_attempt": GET,
    "test_recover_returns_expired_leases_to_ready": CLOCK,
    "test_poison_pill_after_max_recoveries": CLOCK,
    "test_late_completion_after_recovery_is_fenced": CLOCK,
    "test_every_change_the_core_makes_is_in_the_state_table": GET,
    "test_succeeded_stays_succeeded": GET,
    # A job's story (TestAttemptLog) is read with get(); TestProgress skips itself (no Progress)
    "test_each_failed_attempt_is_kept_then_the_success": GET,
    "test_a_dead_attempt_ends_the_log": GET,
    "test_a_running_attempt_is_shown_as_running": GET,
    "test_an_expired_lease_is_a_lost_attempt": GET,
    "test_the_log_is_bounded_in_number_and_size": GET,
    "test_a_stale_fail_adds_nothing": GET,
}


@pytest.fixture
def store_url(sqs_url: str) -> str:
    """A new, empty SQS store (its own queue prefix) for each test."""
    return sqs_url


@pytest.fixture(autouse=True)
def _what_sqs_cannot(request: pytest.FixtureRequest) -> None:
    reason = CANNOT.get(request.node.originalname)
    if reason is not None:
        pytest.skip(f"not on SQS: {reason}")
