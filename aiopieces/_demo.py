"""`aiopieces demo`: a model's lifecycle, walked through the public API.

It runs against the PiecesOS it finds, else against the bundled emulator, and changes a
real PiecesOS only when asked to. It draws nothing itself: the command line hands it a
`DemoView` (its console, model table and download bar), so this module imports only the
client and its types.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import Protocol

from ._client import AsyncPiecesClient
from ._config import URL_ENV_VAR, Timeout, discover_pieces_os
from ._enums import ModelTypeEnum, ModelUsageEnum
from ._types import GroupedTimestamp, Model, SeededModel

__all__ = ["DemoView", "run_demo"]


class DemoView(Protocol):
    """How the demo shows what it does."""

    def rule(self, title: str) -> None:
        """A heading across the screen."""

    def say(self, text: str) -> None:
        """One line of text (rich markup)."""

    def models(self, models: list[Model]) -> None:
        """The models, as a table."""

    async def download(self, client: AsyncPiecesClient, model: Model) -> None:
        """Download `model`, showing its progress."""


async def run_demo(view: DemoView, url: str | None, *, timeout: Timeout, write: bool) -> None:
    """Walk a model's lifecycle through the public API (read-only on a real PiecesOS)."""
    async with _pieces_os_or_emulator(url) as (base_url, emulated):
        where = "the bundled emulator (no PiecesOS answered)" if emulated else base_url
        view.rule(f"aiopieces demo against {where}")
        write = write or emulated
        async with AsyncPiecesClient(base_url, timeout=timeout) as client:
            models = (await client.list_models()).iterable
            view.models(models)
            if not write:
                view.say("Read-only on a real PiecesOS: pass --write to download and load.")
                return
            # An LLM: the demo ends by deleting its cache, which PiecesOS allows for LLMs only.
            local = [m for m in models if not m.cloud and not m.downloaded and _is_llm(m)]
            if not local:
                view.say("No local model left to download.")
                return
            # The smallest: PiecesOS often sends no size, then the parameter count says.
            target = min(local, key=_smallness)
            view.say(f"Downloading [bold]{target.name}[/bold]:")
            await view.download(client, target)
            loaded = await client.load_model(target.id)
            view.say(f"Loaded {loaded.name}: loaded={loaded.loaded}")
            unloaded = await client.unload_model(target.id)
            view.say(f"Unloaded {unloaded.name}: loaded={unloaded.loaded}")

            seed = SeededModel(
                name="aiopieces demo model",
                version="0.1.0",
                cloud=False,
                created=GroupedTimestamp(value=dt.datetime.now(dt.UTC)),
                type=ModelTypeEnum.BALANCED,
                usage=ModelUsageEnum.CODE_CONVERSATION,
                description="created by the aiopieces demo",
            )
            custom = await client.create_model(seed)
            view.say(f"Created custom model {custom.name} ({custom.id})")
            try:
                custom.description = "updated by the aiopieces demo"
                updated = await client.update_model(custom)
                view.say(f"Updated its description: {updated.description!r}")
                cache = await client.delete_model_cache(target.id)
                view.say(f"Deleted the cache of {target.name} ({cache.model.id})")
            finally:
                await client.delete_model(custom.id)
                view.say(f"Deleted custom model {custom.id}")
        view.rule("demo complete")


@contextlib.asynccontextmanager
async def _pieces_os_or_emulator(url: str | None) -> AsyncIterator[tuple[str, bool]]:
    """The PiecesOS to use, and whether it is an emulator started here."""
    url = url or os.environ.get(URL_ENV_VAR) or await discover_pieces_os()
    if url:
        yield url, False
        return
    from .testing import PiecesOSEmulator

    async with PiecesOSEmulator(download_interval=0.15) as emulator:
        yield emulator.url, True


def _is_llm(model: Model) -> bool:
    """Whether PiecesOS treats `model` as an LLM (chat or generation)."""
    return model.usage in (ModelUsageEnum.CODE_CONVERSATION, ModelUsageEnum.CODE_GENERATION)


def _smallness(model: Model) -> tuple[float, float]:
    """Sort key: size in bytes when known, else parameters (unknown sorts last)."""
    inf = float("inf")
    return (model.bytes.value if model.bytes else inf, model.parameters or inf)
