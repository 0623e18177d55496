"""Structured concurrency: load one model while listing and watching another's download.

An anyio task group owns every task; `fail_after` bounds the whole job.
Run: python examples/concurrent_tasks.py
An expected failure, in any task, prints one line and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys

import anyio

from aiopieces import AsyncPiecesClient, Model, PiecesError

TIME_LIMIT = 60.0


async def load(client: AsyncPiecesClient, model: Model) -> None:
    """Load a downloaded model."""
    loaded = await client.load_model(model.id)
    print(f"loaded {loaded.name}: {loaded.loaded}")


async def watch(client: AsyncPiecesClient, model: Model) -> None:
    """Download a model and report every quarter of the way."""
    reported = -25.0
    async for event in client.download(model.id):
        if (event.percentage or 0) - reported >= 25 or event.is_terminal:
            reported = event.percentage or 0
            print(f"{model.name}: {event.status} {event.percentage}%")


async def count(client: AsyncPiecesClient) -> None:
    """List the models meanwhile."""
    models = (await client.list_models()).iterable
    print(f"{len(models)} models, {sum(bool(m.loaded) for m in models)} loaded")


async def main() -> None:
    """Run the three jobs at once, all bounded by one timeout."""
    async with AsyncPiecesClient() as client:
        models = (await client.list_models()).iterable
        ready = next((m for m in models if not m.cloud and m.downloaded), None)
        pending = next((m for m in models if not m.cloud and not m.downloaded), None)
        if ready is None or pending is None:
            raise SystemExit("this needs a downloaded local model and one not downloaded")
        with anyio.fail_after(TIME_LIMIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(load, client, ready)
                tg.start_soon(watch, client, pending)
                tg.start_soon(count, client)
        await client.unload_model(ready.id)


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
