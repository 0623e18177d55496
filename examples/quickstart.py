"""Quick start: connect to PiecesOS, list its models, and show one of them.

Run: python examples/quickstart.py  (PIECES_OS_URL, or discovery, picks the PiecesOS).
An expected failure (no PiecesOS) prints one line and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import sys

from aiopieces import AsyncPiecesClient, PiecesError


async def main() -> None:
    """List the models, then show the first local one in detail."""
    async with AsyncPiecesClient() as client:
        print(f"PiecesOS at {client.base_url}")
        models = (await client.list_models()).iterable
        for model in models:
            where = "cloud" if model.cloud else "local"
            print(f"{model.name:32} {where:5} downloaded={bool(model.downloaded)}")
        local = next((m for m in models if not m.cloud), None)
        if local is None:
            print("\nno local model")
            return
        model = await client.get_model(local.id)
        size = model.bytes.readable if model.bytes else "?"
        print(f"\n{model.name}: {model.foundation}, {size}, provider {model.provider}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except PiecesError as exc:  # no PiecesOS, or PiecesOS said no: one line, no traceback
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
