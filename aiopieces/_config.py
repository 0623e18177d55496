"""Configuration: timeouts, and where to find PiecesOS."""

from __future__ import annotations

import logging
import os

import aiohttp
import anyio
import msgspec
import yarl

__all__ = [
    "DEFAULT_BASE_URL",
    "DISCOVERY_PORTS",
    "Timeout",
    "discover_pieces_os",
    "resolve_base_url",
]

logger = logging.getLogger("aiopieces")

#: The base URL the seeds document, used when nothing else is found.
DEFAULT_BASE_URL = "http://localhost:1000"
#: The ports current PiecesOS releases listen on (the first free one).
DISCOVERY_PORTS = range(39300, 39334)
#: The environment variable that names the PiecesOS URL.
URL_ENV_VAR = "PIECES_OS_URL"


class Timeout(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts in seconds (`None`: no limit) for connect, pool, read, total and WebSocket idle.

    A plain float given as `timeout=` sets connect, pool and read. The defaults suit a
    local daemon: a fast connect, and patient reads because loading a large model takes time.
    """

    connect: float | None = 5.0
    read: float | None = 120.0
    total: float | None = None
    #: Longest wait for one of the client's `max_connections` request slots.
    pool: float | None = 10.0
    #: Longest time a progress WebSocket may go without a progress event (pings do not
    #: count) before `PiecesTimeoutError`.
    ws_idle: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "pool", "ws_idle"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"timeout {name} must be positive or None, not {value!r}")

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """Turn what a user passed as `timeout=` into a `Timeout`."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, pool=None)
        return cls(connect=float(value), read=float(value), pool=float(value))

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        """The equivalent aiohttp timeout."""
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, connect=self.connect, sock_read=self.read
        )


async def discover_pieces_os(
    ports: range | list[int] | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = 0.5,
) -> str | None:
    """Probe `/.well-known/health` on every port at once; the lowest that answers 200 wins.

    `ports` defaults to `DISCOVERY_PORTS`, 39300 to 39333.
    """
    found: list[int] = []

    async def probe(session: aiohttp.ClientSession, port: int) -> None:
        """Note `port` if PiecesOS's health endpoint answers 200 there."""
        try:
            async with session.get(f"http://{host}:{port}/.well-known/health") as resp:
                if resp.status == 200:
                    found.append(port)
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass  # nothing there, or not PiecesOS

    with anyio.move_on_after(timeout):
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        session = aiohttp.ClientSession(connector=connector, timeout=client_timeout)
        async with session, anyio.create_task_group() as tg:
            for port in DISCOVERY_PORTS if ports is None else ports:
                tg.start_soon(probe, session, port)
    if not found:
        return None
    return f"http://{host}:{min(found)}"


async def resolve_base_url(base_url: str | None) -> str:
    """The URL to use: the one given, else `PIECES_OS_URL`, else discovery, else the default."""
    if base_url:
        chosen, how = base_url, "given"
    elif os.environ.get(URL_ENV_VAR):
        chosen, how = os.environ[URL_ENV_VAR], URL_ENV_VAR
    else:
        discovered = await discover_pieces_os()
        chosen, how = (discovered, "discovered") if discovered else (DEFAULT_BASE_URL, "default")
    logger.debug("using PiecesOS at %s (%s)", chosen, how)
    return validate_base_url(chosen)


def validate_base_url(url: str) -> str:
    """`url` checked (http or https, a host, a valid port) and normalised; else `ValueError`."""
    try:
        parsed = yarl.URL(url.strip())
        port = parsed.port  # yarl checks the range only when asked
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid PiecesOS URL {url!r}: {exc}") from exc
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"the PiecesOS URL must start with http:// or https:// and name a host: {url!r}"
        )
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"invalid port {port} in the PiecesOS URL {url!r}")
    return str(parsed.with_scheme(scheme)).rstrip("/")
