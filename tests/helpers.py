"""Helpers shared by the test modules: catalog names, a seed model, ports, clients, the CLI."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
from pathlib import Path

import anyio

from aiopieces import (
    AsyncPiecesClient,
    GroupedTimestamp,
    ModelTypeEnum,
    ModelUsageEnum,
    Retry,
    SeededModel,
)
from aiopieces.testing import PiecesOSEmulator

#: Models of the emulator's built-in catalog, by the role tests need them in.
LOCAL_NOT_DOWNLOADED = "Llama-2 7B Chat"
LOCAL_DOWNLOADED = "Llama-3 8B Instruct"
CLOUD = "GPT-4o"
NON_LLM = "Pieces OCR"

#: Seconds within which anything a test waits for must happen: a guard, not a measure.
BOUND = 5
#: Retries that keep a test fast: tiny backoff, three tries.
FAST_RETRY = Retry(attempts=3, backoff=0.01, max_backoff=0.02)


def model_id(emulator: PiecesOSEmulator, name: str) -> str:
    """The id of the emulator's model called `name`."""
    return next(m["id"] for m in emulator.models.values() if m["name"] == name)


def seeded(name: str = "my-finetune", **extra: object) -> SeededModel:
    """A custom model to create."""
    return SeededModel(
        name=name,
        version="1.0",
        cloud=False,
        created=GroupedTimestamp(value=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
        type=ModelTypeEnum.BALANCED,
        usage=ModelUsageEnum.CODE_CONVERSATION,
        **extra,  # type: ignore[arg-type]
    )


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_client(url: str, **options: object) -> AsyncPiecesClient:
    """A client of `url` that retries fast (`FAST_RETRY`) unless told otherwise."""
    options.setdefault("retry", FAST_RETRY)
    return AsyncPiecesClient(url, **options)  # type: ignore[arg-type]


# -- the command line ------------------------------------------------------------------------

#: The installed console script, as a user runs it.
SCRIPT = Path(sys.executable).parent / "aiopieces"
#: Environment variables that would change what rich prints, or where the CLI connects.
_SCRUBBED = {"PIECES_OS_URL", "FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "TTY_INTERACTIVE"}


def cli_env(columns: int = 80) -> dict[str, str]:
    """The environment the CLI runs in: ours, less what would change its output."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["COLUMNS"] = str(columns)
    return env


async def cli(*args: str, url: str | None = None, columns: int = 80) -> tuple[int, str, str]:
    """Run `aiopieces [--url URL] ARGS` with its output piped; (status, stdout, stderr)."""
    command = [str(SCRIPT), *(["--url", url] if url else [])]
    result = await anyio.run_process([*command, *args], env=cli_env(columns), check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()
