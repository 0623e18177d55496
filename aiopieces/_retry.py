"""Retries: which failures are retried, and how (tenacity, imported on first retry)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import msgspec

from ._exceptions import PiecesAPIError, PiecesConnectionError, PiecesError

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["Retry", "is_retryable", "with_retries"]

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
    #: Seconds after the first failure past which no new attempt starts (a wait that
    #: would end later, a server's `Retry-After` included, is not taken: the error is).
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


def _next_wait(policy: Retry) -> Callable[[RetryCallState], float]:
    """Tenacity's wait: the server's `Retry-After` when it gave one, else jittered backoff."""
    from tenacity import wait_random_exponential

    backoff = wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff)

    def wait(state: RetryCallState) -> float:
        """Seconds to wait before the next try."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, PiecesAPIError) and error.retry_after is not None:
            return error.retry_after
        return backoff(state)

    return wait


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    idempotent: bool,
    policy: Retry,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> T:
    """Run `attempt`, retrying it as `policy` allows when it fails retryably.

    The first try runs on its own, so the common case never imports tenacity. After a
    retryable failure, tenacity drives the rest: it waits (the server's `Retry-After`,
    else jittered exponential backoff), never starts a try that would begin more than
    `max_elapsed` seconds after the first failure, and re-raises the last error.
    `sleep` does the waiting; the client passes one that ends early when it closes.
    """
    try:
        return await attempt()
    except PiecesError as exc:
        if policy.attempts == 1 or not is_retryable(exc, idempotent, policy):
            raise
        first_error = exc

    # Imported here: most processes never retry, and import time matters to a client.
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        stop_before_delay,
    )

    def log_retry(state: RetryCallState) -> None:
        """Log each retry at DEBUG, with the wait and the error that caused it."""
        error = state.outcome.exception() if state.outcome else None
        logger.debug(
            "retrying %s in %.2f s (try %d failed: %s)",
            what,
            state.upcoming_sleep,
            state.attempt_number,
            error,
        )

    retrying = AsyncRetrying(
        sleep=sleep,
        # The first try counts as the first attempt (see `pending` below).
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.max_elapsed),
        wait=_next_wait(policy),
        retry=retry_if_exception(lambda exc: is_retryable(exc, idempotent, policy)),
        before_sleep=log_retry,
        reraise=True,
    )
    pending: PiecesError | None = first_error
    async for try_ in retrying:
        with try_:
            if pending is not None:
                # Tenacity's first attempt is the try that already failed: hand it its
                # error, so that it counts the try and waits before the next one.
                error, pending = pending, None
                raise error
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
