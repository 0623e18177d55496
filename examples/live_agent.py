"""An agent that keeps a live list of models and tells PiecesOS which ones it uses.

`live_models()` keeps a dict of models current from PiecesOS's identifier stream, so the
agent sees a model appear without polling; `increment_model_score` reports each use,
which PiecesOS ranks its models by. Here another app (played by the agent itself)
registers a model while the agent runs.
Run: python examples/live_agent.py
An expected failure prints one line and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import datetime as dt
import sys

import anyio

from aiopieces import (
    AsyncPiecesClient,
    GroupedTimestamp,
    LiveModels,
    Model,
    ModelTypeEnum,
    ModelUsageEnum,
    PiecesError,
    SeededModel,
)

TIME_LIMIT = 30.0


def pick(live: LiveModels) -> Model | None:
    """The model the agent prefers: a chat model that is ready, custom ones first."""
    ready = [
        m
        for m in live.models.values()
        if m.usage == ModelUsageEnum.CODE_CONVERSATION and (m.cloud or m.downloaded)
    ]
    return max(ready, key=lambda m: (bool(m.custom), m.name), default=None)


async def use(client: AsyncPiecesClient, model: Model | None, task: str) -> None:
    """Run one task on `model` (a stand-in here) and report the use to PiecesOS."""
    if model is None:
        print(f"{task}: no chat model is ready")
        return
    await client.increment_model_score(model.id)
    score = (await client.get_model(model.id)).score
    uses = score.reuse if score is not None else None
    print(f"{task}: used {model.name} (reuse score {uses})")


async def main() -> None:
    """Watch the models, use the preferred one, and notice a new one arrive."""
    with anyio.fail_after(TIME_LIMIT):
        async with AsyncPiecesClient() as client, client.live_models() as live:
            print(f"watching {len(live.models)} models")
            changes = live.changes()
            await use(client, pick(live), "task 1")

            # Another app registers a model; the agent learns of it from the stream.
            await client.create_model(
                SeededModel(
                    name="Team fine-tune",
                    version="1",
                    cloud=True,
                    created=GroupedTimestamp(value=dt.datetime.now(dt.UTC)),
                    type=ModelTypeEnum.BALANCED,
                    usage=ModelUsageEnum.CODE_CONVERSATION,
                )
            )
            # Score changes come as updates too; wait for the new model.
            while (change := await anext(changes)).kind != "added":
                pass
            print(f"added: {change.model.name if change.model else change.model_id}")
            await use(client, pick(live), "task 2")

            await client.delete_model(change.model_id)
            while (change := await anext(changes)).kind != "deleted":
                pass
            print(f"deleted: {change.model_id in live.models}")
            await use(client, pick(live), "task 3")


if __name__ == "__main__":
    status = 0
    try:
        anyio.run(main)
    except* PiecesError as errors:  # from any task: no PiecesOS, or PiecesOS said no
        print(f"error: {errors.exceptions[0]}", file=sys.stderr)
        status = 1
    except* TimeoutError:
        print(f"error: not done within {TIME_LIMIT} s", file=sys.stderr)
        status = 1
    except* KeyboardInterrupt:
        status = 130
    sys.exit(status)
