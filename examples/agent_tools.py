"""The client's operations as tools for an agent framework, with JSON schemas.

Each tool's parameter schema is generated from a msgspec Struct, so the schema and the
validation of what the agent sends can never disagree. Run: python examples/agent_tools.py
No PiecesOS: one line and exit status 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from aiopieces import AsyncPiecesClient, PiecesError


class NoArguments(msgspec.Struct, forbid_unknown_fields=True):
    """No arguments."""


class ModelArgument(msgspec.Struct, forbid_unknown_fields=True):
    """The model to act on."""

    model_id: str


@dataclass(frozen=True)
class Tool:
    """One tool: a name, a description, an argument type, and what it runs."""

    name: str
    description: str
    arguments: type[msgspec.Struct]
    run: Callable[[AsyncPiecesClient, Any], Awaitable[Any]]

    def schema(self) -> dict[str, Any]:
        """The tool in the JSON-schema form most agent frameworks take."""
        _, definitions = msgspec.json.schema_components([self.arguments])
        parameters = definitions[self.arguments.__name__]
        return {"name": self.name, "description": self.description, "parameters": parameters}


async def _list(client: AsyncPiecesClient, _: NoArguments) -> list[dict[str, Any]]:
    models = (await client.list_models()).iterable
    return [{"id": m.id, "name": m.name, "loaded": bool(m.loaded)} for m in models]


async def _load(client: AsyncPiecesClient, args: ModelArgument) -> dict[str, Any]:
    model = await client.load_model(args.model_id)
    return {"id": model.id, "loaded": bool(model.loaded)}


async def _unload(client: AsyncPiecesClient, args: ModelArgument) -> dict[str, Any]:
    model = await client.unload_model(args.model_id)
    return {"id": model.id, "loaded": bool(model.loaded)}


TOOLS = {
    tool.name: tool
    for tool in [
        Tool("list_models", "List the models PiecesOS knows.", NoArguments, _list),
        Tool("load_model", "Load a downloaded local model.", ModelArgument, _load),
        Tool("unload_model", "Unload a model from memory.", ModelArgument, _unload),
    ]
}


async def call_tool(client: AsyncPiecesClient, name: str, arguments_json: str) -> str:
    """Run a tool as an agent asks: JSON in, JSON out, errors as JSON too."""
    tool = TOOLS.get(name)
    if tool is None:
        return json.dumps({"error": f"no tool named {name!r}"})
    try:
        arguments = msgspec.json.decode(arguments_json, type=tool.arguments)
        return msgspec.json.encode(await tool.run(client, arguments)).decode()
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return json.dumps({"error": f"bad arguments: {exc}"})
    except PiecesError as exc:
        return json.dumps({"error": str(exc)})


async def main() -> None:
    """Print the tool schemas, then play the calls an agent would make."""
    print(json.dumps([tool.schema() for tool in TOOLS.values()], indent=2))
    async with AsyncPiecesClient() as client:
        listed = json.loads(await call_tool(client, "list_models", "{}"))
        print(f"list_models -> {len(listed)} models")
        local = next((m for m in (await client.list_models()).iterable if m.downloaded), None)
        if local is None:
            print("no downloaded model to load")
            return
        args = json.dumps({"model_id": local.id})
        print("load_model ->", await call_tool(client, "load_model", args))
        print("unload_model ->", await call_tool(client, "unload_model", args))
        print("load_model (bad) ->", await call_tool(client, "load_model", '{"id": 1}'))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except PiecesError as exc:  # no PiecesOS, or PiecesOS said no: one line, no traceback
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
