"""Retries: which failures are retried, and how long to wait before the next try."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import msgspec

from ._exceptions import PiecesAPIError, PiecesConnectionError, PiecesError

__all__ = ["Retry", "backoff", "is_retryable", "next_wait", "with_retries"]

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


def backoff(policy: Retry, failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row: exponential backoff with
    full jitter, random in [0, min(max_backoff, backoff * 2**(failures - 1))]."""
    return random.uniform(0, min(policy.max_backoff, policy.backoff * 2 ** (failures - 1)))


def next_wait(error: PiecesError, policy: Retry, failures: int) -> float:
    """Seconds to wait after the `failures`-th failure: the server's `Retry-After` when it
    gave one, else `backoff`."""
    if isinstance(error, PiecesAPIError) and error.retry_after is not None:
        return error.retry_after
    return backoff(policy, failures)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    idempotent: bool,
    policy: Retry,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> T:
    """Run `attempt`, retrying it as `policy` allows when it fails retryably.

    One loop, read top to bottom: try; on a failure decide whether to go on (retryable,
    tries left), how long to wait, and whether the next try would still start within
    `max_elapsed` of the first failure; then wait and try again. The last error is raised
    as it was. `sleep` does the waiting; the client passes one that ends early (with an
    error) when it closes.
    """
    deadline: float | None = None
    for tries in itertools.count(1):
        try:
            return await attempt()
        except PiecesError as error:
            if tries >= policy.attempts or not is_retryable(error, idempotent, policy):
                raise
            now = anyio.current_time()
            if deadline is None:
                deadline = now + policy.max_elapsed  # the budget starts at the first failure
            wait = next_wait(error, policy, tries)
            if now + wait >= deadline:
                raise  # the next try would start after the budget: this error is the answer
            logger.debug("retrying %s in %.2f s (try %d failed: %s)", what, wait, tries, error)
        await sleep(wait)
    raise AssertionError("unreachable: itertools.count never ends")  # pragma: no cover
