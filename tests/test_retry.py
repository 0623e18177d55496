"""Retries: which failures are retried, how long the waits are, and when the loop gives up.

`with_retries` is driven directly: its `attempt` raises our own errors, and its `sleep`
records the waits instead of taking them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest

from aiopieces import (
    ModelNotFoundError,
    PiecesAPIError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesTimeoutError,
    Retry,
)
from aiopieces._retry import backoff, is_retryable, next_wait, with_retries

URL = "http://127.0.0.1:1/models"


def refused() -> PiecesConnectionError:
    """The connection failed: PiecesOS never saw the request."""
    return PiecesConnectionError(URL, "Connection refused", request_sent=False, method="POST")


def dropped() -> PiecesConnectionError:
    """The connection broke after the request went out."""
    return PiecesConnectionError(URL, "reset", request_sent=True, method="POST")


def status(code: int, retry_after: float | None = None) -> PiecesAPIError:
    return PiecesAPIError(code, "GET", URL, "busy", retry_after=retry_after)


def test_retry_needs_at_least_one_attempt() -> None:
    assert Retry(attempts=1).attempts == 1
    for bad in [0, -1]:
        with pytest.raises(ValueError) as info:
            Retry(attempts=bad)
        assert str(info.value) == "attempts must be at least 1"


def test_retry_coerce_none_means_one_attempt() -> None:
    assert Retry.coerce(None) == Retry(attempts=1)
    assert Retry.coerce(None).attempts == 1
    policy = Retry(attempts=5)
    assert Retry.coerce(policy) is policy


RETRYABLE = [
    (refused(), True, True),
    (refused(), False, True),  # never reached PiecesOS: safe whatever the method
    (dropped(), True, True),
    (dropped(), False, False),  # may have been done: not repeated
    (status(503), True, True),
    (status(502), True, True),
    (status(504), True, True),
    (status(503), False, False),
    (status(500), True, False),
    (status(429), True, False),
    (ModelNotFoundError(404, "GET", URL, ""), True, False),
    (PiecesTimeoutError("slow", phase="read"), True, False),
    (PiecesDecodeError("bad"), True, False),
    (PiecesError("other"), True, False),
]


def test_is_retryable() -> None:
    for error, idempotent, retryable in RETRYABLE:
        assert is_retryable(error, idempotent, Retry()) is retryable, (error, idempotent)


def test_is_retryable_follows_the_policys_statuses() -> None:
    policy = Retry(statuses=frozenset({429}))
    assert is_retryable(status(429), True, policy) is True
    assert is_retryable(status(503), True, policy) is False
    assert is_retryable(status(429), False, policy) is False


@pytest.fixture
def seeded_random() -> Iterator[None]:
    state = random.getstate()
    random.seed(1234)
    yield
    random.setstate(state)


@pytest.mark.usefixtures("seeded_random")
def test_backoff_is_full_jitter_up_to_an_exponential_bound() -> None:
    policy = Retry(backoff=0.1, max_backoff=1.0)
    for failures, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        draws = [backoff(policy, failures) for _ in range(2000)]
        assert all(0 <= d <= bound for d in draws), failures
        # The whole range is used: near zero and near the bound.
        assert min(draws) < 0.05 * bound, failures
        assert max(draws) > 0.95 * bound, failures


@pytest.mark.usefixtures("seeded_random")
def test_next_wait_is_retry_after_when_given_else_backoff() -> None:
    policy = Retry(backoff=0.1, max_backoff=1.0)
    assert next_wait(status(503, retry_after=7.5), policy, 1) == 7.5
    assert next_wait(status(503, retry_after=0.0), policy, 1) == 0.0
    for error in [status(503), refused()]:
        state = random.getstate()
        wait = next_wait(error, policy, 3)
        random.setstate(state)
        assert wait == backoff(policy, 3)
        assert 0 <= wait <= 0.4


class Script:
    """An `attempt` that raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Sleeps:
    """A `sleep` that records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_a_success_is_returned_without_waiting() -> None:
    attempt, sleep = Script(), Sleeps()
    result = await with_retries(
        attempt, idempotent=False, policy=Retry(), what="list models", sleep=sleep
    )
    assert (result, attempt.calls, sleep.waits) == ("done", 1, [])


@pytest.mark.usefixtures("seeded_random")
async def test_retryable_failures_are_retried_after_the_right_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiopieces")
    policy = Retry(attempts=3, backoff=0.1, max_backoff=1.0)
    first, second = status(503, retry_after=0.25), refused()
    state = random.getstate()
    expected_backoff = backoff(policy, 2)  # the second failure's wait: backoff, 2nd failure
    random.setstate(state)
    attempt, sleep = Script(first, second), Sleeps()
    result = await with_retries(
        attempt, idempotent=True, policy=policy, what="list models", sleep=sleep
    )
    assert (result, attempt.calls) == ("done", 3)
    assert sleep.waits == [0.25, expected_backoff]
    assert [r.getMessage() for r in caplog.records if r.name == "aiopieces"] == [
        f"retrying list models in 0.25 s (try 1 failed: {first})",
        f"retrying list models in {expected_backoff:.2f} s (try 2 failed: {second})",
    ]


async def test_a_dropped_idempotent_request_is_retried() -> None:
    attempt, sleep = Script(dropped()), Sleeps()
    policy = Retry(attempts=2, backoff=0.1, max_backoff=0.1)
    assert await with_retries(attempt, idempotent=True, policy=policy, what="x", sleep=sleep)
    assert attempt.calls == 2
    assert len(sleep.waits) == 1
    assert 0 <= sleep.waits[0] <= 0.1


@pytest.mark.parametrize("attempts", [1, 2, 4])
async def test_the_last_error_is_raised_after_the_last_attempt(attempts: int) -> None:
    errors = [status(503, retry_after=0.5) for _ in range(attempts + 1)]
    attempt, sleep = Script(*errors), Sleeps()
    with pytest.raises(PiecesAPIError) as info:
        await with_retries(
            attempt, idempotent=True, policy=Retry(attempts=attempts), what="x", sleep=sleep
        )
    assert info.value is errors[attempts - 1]
    assert attempt.calls == attempts
    assert sleep.waits == [0.5] * (attempts - 1)


@pytest.mark.parametrize(
    ("error", "idempotent"),
    [
        (dropped(), False),
        (status(503), False),
        (status(500), True),
        (PiecesTimeoutError("slow", phase="read"), True),
    ],
)
async def test_a_failure_that_is_not_retryable_is_raised_at_once(
    error: PiecesError, idempotent: bool
) -> None:
    attempt, sleep = Script(error), Sleeps()
    with pytest.raises(PiecesError) as info:
        await with_retries(attempt, idempotent=idempotent, policy=Retry(), what="x", sleep=sleep)
    assert info.value is error
    assert (attempt.calls, sleep.waits) == (1, [])


async def test_an_error_that_is_not_ours_is_not_retried() -> None:
    attempt, sleep = Script(ValueError("bug")), Sleeps()
    with pytest.raises(ValueError, match="bug"):
        await with_retries(attempt, idempotent=True, policy=Retry(), what="x", sleep=sleep)
    assert (attempt.calls, sleep.waits) == (1, [])


@pytest.mark.parametrize(
    ("retry_after", "retried"),
    [
        (1.0, True),
        (9.5, True),
        (10.0, False),  # would start exactly at the end of the budget: not taken
        (20.0, False),
    ],
)
async def test_a_wait_past_the_budget_is_not_taken(retry_after: float, retried: bool) -> None:
    error = status(503, retry_after=retry_after)
    attempt, sleep = Script(error), Sleeps()
    policy = Retry(attempts=5, max_elapsed=10.0)
    if retried:
        assert await with_retries(attempt, idempotent=True, policy=policy, what="x", sleep=sleep)
        assert (attempt.calls, sleep.waits) == (2, [retry_after])
    else:
        with pytest.raises(PiecesAPIError) as info:
            await with_retries(attempt, idempotent=True, policy=policy, what="x", sleep=sleep)
        assert info.value is error
        assert (attempt.calls, sleep.waits) == (1, [])
