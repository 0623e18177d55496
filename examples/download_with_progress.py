"""Download a model with a progress bar; Ctrl-C cancels the download in PiecesOS.

Run: python examples/download_with_progress.py [MODEL]  (MODEL: a name or an id; needs
`aiopieces[cli]` for rich). An expected failure (no PiecesOS, no such model, a download
PiecesOS refuses) prints one line and exits 1; Ctrl-C exits 130.
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
    Models,
    PiecesError,
)


def pick(models: Models, name: str | None) -> Model:
    """The model with this id or name, or else the smallest local model not yet downloaded.

    `Models.find` raises `ModelLookupError` (a `PiecesError`) when no model, or more than
    one, has that name.
    """
    if name:
        return models.find(name)
    candidates = [m for m in models.iterable if not m.cloud and not m.downloaded]
    if not candidates:
        raise SystemExit("every local model is downloaded: name one to download it again")
    return min(candidates, key=lambda m: m.bytes.value if m.bytes else 0)


async def main(name: str | None) -> None:
    """Download one model, showing each progress event on a bar."""
    async with AsyncPiecesClient() as client:
        model = pick(await client.list_models(), name)
        last: ModelDownloadProgress | None = None
        with Progress() as progress:
            bar = progress.add_task(model.name, total=100)
            # cancel_on_exit: if Ctrl-C (or any error) ends the loop, PiecesOS cancels too.
            async for event in client.download(model.id, cancel_on_exit=True):
                if event.percentage is not None:  # UNKNOWN and CANCELED may come without
                    progress.update(bar, completed=event.percentage)
                last = event
        if last is None or last.status != ModelDownloadProgressStatusEnum.COMPLETED:
            raise SystemExit(f"download ended {last.status if last else 'with no event'}")
        print(f"{model.name} downloaded")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
    except PiecesError as exc:  # no PiecesOS, no such model, a refused download
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:  # the download was canceled in PiecesOS on the way out
        print("canceled", file=sys.stderr)
        sys.exit(130)
