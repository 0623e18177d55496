"""Retries: which failures are retried, and how (tenacity, imported on first retry)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import msgspec

from ._exceptions import PiecesAPIError, PiecesConnectionError, PiecesError

__all__ = ["Retry", "is_retryable", "retry_after_failure", "with_retries"]

logger = logging.getLogger("aiopieces")

T = TypeVar("T")


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """How failed requests are retried: attempts, exponential backoff with jitter, a budget.

    `Retry(attempts=1)` (or `retry=None` on the client) turns retries off.
    """

    #: Tries in all, the first included.
    attempts: int = 3
    #: Scale of the exponential backoff: waits are random in [0, backoff * 2**n].
    backoff: float = 0.2
    #: Longest single wait.
    max_backoff: float = 3.0
    #: Seconds after the first failure past which no new attempt starts.
    max_elapsed: float = 15.0
    #: Statuses that mean "try again" from a proxy or a restarting PiecesOS.
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    @classmethod
    def coerce(cls, value: Retry | None) -> Retry:
        """`None` means no retries."""
        return cls(attempts=1) if value is None else value


def is_retryable(exc: BaseException, idempotent: bool, policy: Retry) -> bool:
    """Whether repeating the request is safe and may help.

    Idempotent requests retry on connection errors and the policy's statuses. Others retry
    only when the request provably never reached PiecesOS (the connection failed).
    """
    if isinstance(exc, PiecesConnectionError):
        return idempotent or not exc.request_sent
    if isinstance(exc, PiecesAPIError):
        return idempotent and exc.status in policy.statuses
    return False


async def retry_after_failure(
    first_error: PiecesError,
    attempt: Callable[[], Awaitable[T]],
    *,
    idempotent: bool,
    policy: Retry,
    what: str,
) -> T:
    """Go on after `first_error` with up to `policy.attempts - 1` more tries of `attempt`."""
    # Imported here: most processes never retry, and import time matters to a client.
    from tenacity import (
        AsyncRetrying,
        RetryCallState,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    def log_retry(state: RetryCallState) -> None:
        """Log each retry at DEBUG, with the wait and the error that caused it."""
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.debug(
            "retrying %s in %.2f s (try %d failed: %s)", what, wait, state.attempt_number, error
        )

    retrying = AsyncRetrying(
        sleep=anyio.sleep,
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_elapsed),
        wait=wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff),
        retry=retry_if_exception(lambda exc: is_retryable(exc, idempotent, policy)),
        before_sleep=log_retry,
        reraise=True,
    )
    pending: PiecesError | None = first_error
    async for try_ in retrying:
        with try_:
            if pending is not None:
                # The first try already ran (without tenacity, to keep the common path
                # fast); feed its failure in so that tenacity counts it and waits.
                error, pending = pending, None
                raise error
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, idempotent: bool, policy: Retry, what: str
) -> T:
    """Run `attempt`, retrying it as `policy` allows when it fails retryably."""
    try:
        return await attempt()
    except PiecesError as exc:
        if policy.attempts == 1 or not is_retryable(exc, idempotent, policy):
            raise
        return await retry_after_failure(
            exc, attempt, idempotent=idempotent, policy=policy, what=what
        )
