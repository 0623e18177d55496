"""Create, update and delete a custom model, cleaning up even when a step fails.

Run: python examples/custom_model.py
An expected failure (no PiecesOS, a refusal) prints one line and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from aiopieces import (
    AsyncPiecesClient,
    GroupedTimestamp,
    ModelMaxTokens,
    ModelTypeEnum,
    ModelUsageEnum,
    PiecesError,
    SeededModel,
)


async def main() -> None:
    """Register a fine-tuned model, change its description, then remove it."""
    seed = SeededModel(
        name="acme-coder-7b",
        version="2025.06",
        cloud=False,
        created=GroupedTimestamp(value=dt.datetime.now(dt.UTC)),
        type=ModelTypeEnum.BALANCED,
        usage=ModelUsageEnum.CODE_CONVERSATION,
        description="ACME's fine-tune of a 7B code model",
        max_tokens=ModelMaxTokens(total=8192),
        unique="acme-coder-7b",
    )
    async with AsyncPiecesClient() as client:
        model = await client.create_model(seed)
        print(f"created {model.name} ({model.id}), custom={model.custom}")
        try:
            again = await client.create_model(seed)
            print(f"creating it again returns the same model: {again.id == model.id}")
            model.description = "ACME's fine-tune, v2"
            updated = await client.update_model(model)
            print(f"updated description: {updated.description}")
        finally:
            await client.delete_model(model.id)
            print(f"deleted {model.id}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except PiecesError as exc:  # no PiecesOS, or PiecesOS said no: one line, no traceback
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
