"""A chat-bot command handler for model chores, with no chat platform attached.

`/models` lists, `/pull NAME` downloads with progress updates, `/load NAME` loads.
Plug `handle()` into any bot framework: it takes a message, and sends replies through
the `reply` coroutine you give it. Run: python examples/chat_bot.py
With no PiecesOS running the bot stays up and says so; Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from aiopieces import AsyncPiecesClient, ModelLookupError, PiecesConnectionError, PiecesError

Reply = Callable[[str], Awaitable[None]]


async def handle(client: AsyncPiecesClient, message: str, reply: Reply) -> None:
    """Answer one chat message; library errors become a friendly reply."""
    command, _, argument = message.strip().partition(" ")
    try:
        if command == "/models":
            models = (await client.list_models()).iterable
            lines = [f"- {m.name}{' (loaded)' if m.loaded else ''}" for m in models[:10]]
            await reply(f"{len(models)} models:\n" + "\n".join(lines))
        elif command in ("/pull", "/load"):
            # By id, else exact name, else name in any case; ModelLookupError if none fits.
            model = (await client.list_models()).find(argument)
            if command == "/pull":
                await reply(f"Pulling {model.name}...")
                async for event in client.download(model.id):
                    if event.is_terminal or event.percentage == 50:  # 50 or 50.0
                        await reply(f"{model.name}: {event.status} {event.percentage or 0:.0f}%")
            else:
                loaded = await client.load_model(model.id)
                await reply(f"{loaded.name} is loaded." if loaded.loaded else "Not loaded.")
        else:
            await reply("Commands: /models, /pull NAME, /load NAME")
    except ModelLookupError as exc:  # no model has that name, or several do
        await reply(f"I cannot tell which model you mean: {exc}")
    except PiecesConnectionError:
        await reply("PiecesOS is not answering: is it running?")
    except PiecesError as exc:
        await reply(f"Sorry, PiecesOS said no: {exc}")


async def main() -> None:
    """Play a short conversation against PiecesOS."""

    async def say(text: str) -> None:
        print(f"bot> {text}")

    async with AsyncPiecesClient() as client:
        for message in [
            "/models",
            "/pull Phi-2",
            "/load phi-2",
            "/load GPT-4o",
            "/load Nope",
            "/help",
        ]:
            print(f"you> {message}")
            await handle(client, message, say)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except PiecesError as exc:  # no PiecesOS, or PiecesOS said no: one line, no traceback
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
