"""Download a model with a progress bar; Ctrl-C cancels the download in PiecesOS.

Run: python examples/download_with_progress.py [MODEL_NAME]  (needs `aiopieces[cli]` for rich)
"""

from __future__ import annotations

import asyncio
import sys

from rich.progress import Progress

from aiopieces import (
    AsyncPiecesClient,
    Model,
    ModelDownloadProgress,
    ModelDownloadProgressStatusEnum,
)


def pick(models: list[Model], name: str | None) -> Model:
    """The model named `name`, or the smallest local model not yet downloaded."""
    if name:
        return next(m for m in models if name in (m.name, m.id, m.unique))
    candidates = [m for m in models if not m.cloud and not m.downloaded]
    return min(candidates, key=lambda m: m.bytes.value if m.bytes else 0)


async def main(name: str | None) -> None:
    """Download one model, showing each progress event on a bar."""
    async with AsyncPiecesClient() as client:
        model = pick((await client.list_models()).iterable, name)
        last: ModelDownloadProgress | None = None
        with Progress() as progress:
            bar = progress.add_task(f"{model.name}", total=100)
            # cancel_on_exit: if Ctrl-C (or any error) ends the loop, PiecesOS cancels too.
            async for event in client.download(model.id, cancel_on_exit=True):
                progress.update(bar, completed=event.percentage or 0)
                last = event
        if last is None or last.status != ModelDownloadProgressStatusEnum.COMPLETED:
            raise SystemExit(f"download ended {last.status if last else 'with no event'}")
        print(f"{model.name} downloaded")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
    except KeyboardInterrupt:
        print("canceled")
