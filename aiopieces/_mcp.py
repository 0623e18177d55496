"""`aiopieces mcp`: PiecesOS model management as a Model Context Protocol server."""

# Tools for every model operation, and the models as resources with change notifications,
# over stdio or streamable HTTP. Needs the `mcp` extra: only the CLI and the tests import
# this module, so `import aiopieces` never imports mcp.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

import anyio
import mcp_types as types
import msgspec
from anyio.abc import TaskGroup
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ResourceUpdated,
)
from mcp.shared.exceptions import MCPError

from ._client import AsyncPiecesClient
from ._config import Timeout
from ._enums import ModelDownloadProgressStatusEnum
from ._exceptions import ModelNotFoundError, PiecesClientStateError, PiecesError
from ._types import (
    GroupedTimestamp,
    Model,
    ModelDeleteCacheOutput,
    Models,
    ReferencedModel,
    SeededModel,
    SeededScore,
    SeededScoreIncrement,
)
from ._version import __version__
from ._watch import ModelChange

__all__ = ["MODELS_URI", "TOOL_NAMES", "create_server", "main", "model_uri", "serve_mcp"]

logger = logging.getLogger("aiopieces.mcp")

#: The resource listing every model.
MODELS_URI = "pieces://models"
#: The resource template of one model; the id is percent-encoded as one path segment.
MODEL_URI_TEMPLATE = "pieces://models/{id}"
_MODEL_URI_PREFIX = MODELS_URI + "/"
_JSON = "application/json"
#: Longest wait for a client to take one change notification before it is dropped.
_NOTIFY_TIMEOUT = 5.0
#: Longest pause between attempts to follow model changes again after PiecesOS went away.
_MAX_FEED_RETRY = 30.0
_COMPLETED = ModelDownloadProgressStatusEnum.COMPLETED


def model_uri(model_id: str) -> str:
    """The resource URI of one model: its id as one percent-encoded path segment."""
    return _MODEL_URI_PREFIX + quote(model_id, safe="")


# -- arguments: msgspec types, from which the input schemas are generated -------------------

ModelId = Annotated[
    str,
    msgspec.Meta(min_length=1, description="The model's id, as list_models or find_model give it."),
]


class _Arguments(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the tools' arguments: keywords only, no unknown field."""


class NoArguments(_Arguments):
    """No arguments."""


class ModelArguments(_Arguments):
    """The model to act on."""

    model_id: ModelId


class DownloadArguments(_Arguments):
    """The model to download, and how long it may go without progress."""

    model_id: ModelId
    stall_timeout: (
        Annotated[
            float,
            msgspec.Meta(
                gt=0,
                description="Fail (and cancel the download) if its percentage does not move "
                "for this many seconds. Default: wait as long as it takes.",
            ),
        ]
        | None
    ) = None


class ListModelsArguments(_Arguments):
    """Which models to list; a filter left out keeps every model."""

    where: (
        Annotated[
            Literal["local", "cloud"],
            msgspec.Meta(
                description="local: models that run on this machine once downloaded; "
                "cloud: models that run at their provider."
            ),
        ]
        | None
    ) = None
    downloaded: (
        Annotated[
            bool, msgspec.Meta(description="true: downloaded models only; false: the others.")
        ]
        | None
    ) = None
    loaded: (
        Annotated[
            bool, msgspec.Meta(description="true: models loaded in memory; false: the others.")
        ]
        | None
    ) = None


class FindModelArguments(_Arguments):
    """The model to find."""

    name_or_id: Annotated[
        str, msgspec.Meta(min_length=1, description="A model's id, or its name (any case).")
    ]


class ScoreArguments(_Arguments):
    """The model used, and the points to add."""

    model_id: ModelId
    points: (
        Annotated[
            SeededScore,
            msgspec.Meta(description="One point for each flag set to true (default: reuse)."),
        ]
        | None
    ) = None


class CreateModelArguments(SeededModel, kw_only=True, forbid_unknown_fields=True):
    """A SeededModel: the model to register; `created` defaults to now."""

    # Optional here, where SeededModel requires it: the one field an agent cannot know.
    created: GroupedTimestamp | None = None  # type: ignore[assignment]


#: Model fields PiecesOS decides, never changed by an update.
_NOT_UPDATED = frozenset({"id", "custom", "downloaded", "downloading", "loaded", "score", "schema"})
_UPDATABLE = [f for f in msgspec.structs.fields(Model) if f.name not in _NOT_UPDATED]
#: The arguments of `update_model`: a model's id and any of its other fields, each optional.
ModelUpdate: type[msgspec.Struct] = msgspec.defstruct(
    "ModelUpdate",
    [("id", ModelId), *((f.name, f.type | msgspec.UnsetType, msgspec.UNSET) for f in _UPDATABLE)],
    kw_only=True,
    forbid_unknown_fields=True,
    rename="camel",
)
ModelUpdate.__doc__ = "A model's id, and the fields to change (null removes a field)."


# -- tools ------------------------------------------------------------------------------------

#: What a tool answers: a short line, and the wire type shown as structured content.
Answer = tuple[str, msgspec.Struct | None]


@dataclass(frozen=True)
class _Call:
    """What a tool runs with: the client, and the request (for progress)."""

    client: AsyncPiecesClient
    request: ServerRequestContext[_State, Any]


class _ToolError(Exception):
    """A tool failed in a way the caller should read: one line."""


@dataclass(frozen=True)
class _Tool:
    """One tool: its MCP definition, how to read its arguments, and what it runs."""

    name: str
    title: str
    description: str
    arguments: type[msgspec.Struct]
    output: type[msgspec.Struct] | None
    run: Callable[[_Call, Any], Awaitable[Answer]]
    annotations: types.ToolAnnotations
    decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False)
    input_schema: dict[str, Any] = field(init=False, repr=False)
    output_schema: dict[str, Any] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.arguments))
        object.__setattr__(self, "input_schema", json_schema(self.arguments))
        output = None if self.output is None else json_schema(self.output)
        object.__setattr__(self, "output_schema", output)

    def definition(self) -> types.Tool:
        """The tool as `tools/list` describes it."""
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=self.annotations,
        )


def json_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON schema of one of our types, its definitions inline under `$defs`."""
    (ref,), defs = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    root: dict[str, Any] = defs.pop(ref["$ref"].rpartition("/")[2])
    for definition in [root, *defs.values()]:
        if "description" in definition:
            definition["description"] = " ".join(definition["description"].split())
        if "enum" in definition:
            # Our enums are open (a value PiecesOS added later decodes, and is sent back
            # as it came): name the known values without refusing others.
            known = definition.pop("enum")
            definition["anyOf"] = [{"enum": known}, {"type": "string"}]
            definition["description"] = (
                definition.get("description", "") + " A value PiecesOS added later is accepted."
            ).strip()
    if defs:
        root["$defs"] = defs
    return root


def _state(model: Model) -> str:
    where = "cloud" if model.cloud else "local"
    if model.loaded:
        return f"{where}, loaded"
    if model.downloading:
        return f"{where}, downloading"
    if model.downloaded:
        return f"{where}, downloaded"
    return where


def _named(model: Model) -> str:
    return f"{model.name or 'unnamed model'} ({model.id})"


async def _list_models(call: _Call, args: ListModelsArguments) -> Answer:
    models = (await call.client.list_models()).iterable
    if args.where is not None:
        models = [m for m in models if m.cloud == (args.where == "cloud")]
    if args.downloaded is not None:
        models = [m for m in models if bool(m.downloaded) == args.downloaded]
    if args.loaded is not None:
        models = [m for m in models if bool(m.loaded) == args.loaded]
    local = sum(not m.cloud for m in models)
    line = f"{len(models)} models: {local} local, {len(models) - local} cloud"
    return line, Models(iterable=models)


async def _get_model(call: _Call, args: ModelArguments) -> Answer:
    model = await call.client.get_model(args.model_id)
    return f"{_named(model)}: {_state(model)}", model


async def _find_model(call: _Call, args: FindModelArguments) -> Answer:
    model = (await call.client.list_models()).find(args.name_or_id)
    return f"{_named(model)}: {_state(model)}", model


async def _download_model(call: _Call, args: DownloadArguments) -> Answer:
    # cancel_on_exit: when the request is cancelled (or the client goes away), leaving the
    # block cancels the download in PiecesOS; the stream never outlives the request.
    reported = -1.0
    last = None
    download = call.client.download(
        args.model_id, cancel_on_exit=True, stall_timeout=args.stall_timeout
    )
    async with download as events:
        async for event in events:
            last = event
            if event.percentage is not None and event.percentage > reported:
                reported = float(event.percentage)  # MCP progress must only increase
                await call.request.session.report_progress(
                    reported, 100, f"{event.status} {reported:g}%"
                )
    if last is None or last.status != _COMPLETED:
        status = "with no event" if last is None else str(last.status)
        raise _ToolError(f"the download of {args.model_id} ended {status}, not COMPLETED")
    model = await call.client.get_model(args.model_id)
    return f"{_named(model)} downloaded", model


async def _cancel_download(call: _Call, args: ModelArguments) -> Answer:
    model = await call.client.cancel_download(args.model_id)
    return f"download of {_named(model)} canceled", model


async def _load_model(call: _Call, args: ModelArguments) -> Answer:
    model = await call.client.load_model(args.model_id)
    return f"{_named(model)} loaded", model


async def _unload_model(call: _Call, args: ModelArguments) -> Answer:
    model = await call.client.unload_model(args.model_id)
    return f"{_named(model)} unloaded", model


async def _unload_all(call: _Call, args: NoArguments) -> Answer:
    await call.client.unload_models()
    return "every model unloaded", None


async def _create_model(call: _Call, args: CreateModelArguments) -> Answer:
    created = args.created or GroupedTimestamp(value=dt.datetime.now(dt.UTC))
    seed = msgspec.convert(
        msgspec.to_builtins(msgspec.structs.replace(args, created=created)), SeededModel
    )
    model = await call.client.create_model(seed)
    return f"created {_named(model)}", model


async def _update_model(call: _Call, args: Any) -> Answer:
    current = await call.client.get_model(args.id)
    changes = {
        f.name: value for f in _UPDATABLE if (value := getattr(args, f.name)) is not msgspec.UNSET
    }
    model = await call.client.update_model(msgspec.structs.replace(current, **changes))
    changed = ", ".join(f.encode_name for f in _UPDATABLE if f.name in changes) or "nothing"
    return f"updated {_named(model)}: {changed}", model


async def _delete_model(call: _Call, args: ModelArguments) -> Answer:
    await call.client.delete_model(args.model_id)
    return f"deleted model {args.model_id}", ReferencedModel(id=args.model_id)


async def _delete_model_cache(call: _Call, args: ModelArguments) -> Answer:
    output = await call.client.delete_model_cache(args.model_id)
    return f"deleted the downloaded data of {output.model.id}", output


async def _increment_model_score(call: _Call, args: ScoreArguments) -> Answer:
    increment = None if args.points is None else SeededScoreIncrement(model=args.points)
    await call.client.increment_model_score(args.model_id, increment)
    model = await call.client.get_model(args.model_id)
    points = msgspec.to_builtins(args.points or SeededScore(reuse=True))
    what = ", ".join(key for key, value in points.items() if value is True) or "no points"
    return f"{_named(model)}: score incremented ({what})", model


def _hints(
    *, read_only: bool = False, destructive: bool = False, idempotent: bool = True
) -> types.ToolAnnotations:
    return types.ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=None if read_only else destructive,
        idempotent_hint=None if read_only else idempotent,
        open_world_hint=False,
    )


_READ = _hints(read_only=True)

TOOLS: dict[str, _Tool] = {
    tool.name: tool
    for tool in [
        _Tool(
            "list_models",
            "List models",
            "List the models PiecesOS knows, optionally filtered: `where` (local models run "
            "on this machine once downloaded, cloud models at their provider), `downloaded`, "
            "`loaded` (in memory, ready to run). Answers a Models object whose `iterable` "
            "holds each model: its `id` (what the other tools take), `name`, `cloud`, "
            "`downloaded`, `loaded` and more; a flag left out is false.",
            ListModelsArguments,
            Models,
            _list_models,
            _READ,
        ),
        _Tool(
            "get_model",
            "Get a model",
            "Get one model by id, as PiecesOS has it now. Fails if no model has that id.",
            ModelArguments,
            Model,
            _get_model,
            _READ,
        ),
        _Tool(
            "find_model",
            "Find a model by name",
            "Find a model by id or name: the model with that id, else with that exact name, "
            "else with that name in any case. Fails when none matches, or when the name fits "
            "several models (the error lists their ids).",
            FindModelArguments,
            Model,
            _find_model,
            _READ,
        ),
        _Tool(
            "download_model",
            "Download a model",
            "Download a local model and wait until the download ends; answers the model, now "
            "downloaded. Sends progress notifications (0 to 100, with the download's status) "
            "when the request carries a progress token. Cancelling the request cancels the "
            "download in PiecesOS. A model already downloaded completes at once; a cloud "
            "model cannot be downloaded. Fails if the download fails or is canceled, or "
            "stalls longer than `stall_timeout`.",
            DownloadArguments,
            Model,
            _download_model,
            types.ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        ),
        _Tool(
            "cancel_download",
            "Cancel a download",
            "Cancel a model's download in progress in PiecesOS, whoever started it; what was "
            "downloaded so far is discarded. Answers the model.",
            ModelArguments,
            Model,
            _cancel_download,
            _hints(destructive=True),
        ),
        _Tool(
            "load_model",
            "Load a model",
            "Load a downloaded local model into memory, ready to run. Fails if the model is "
            "not downloaded, or is a cloud model. Answers the model.",
            ModelArguments,
            Model,
            _load_model,
            _hints(),
        ),
        _Tool(
            "unload_model",
            "Unload a model",
            "Unload a model from memory; it stays downloaded. Answers the model.",
            ModelArguments,
            Model,
            _unload_model,
            _hints(),
        ),
        _Tool(
            "unload_all_models",
            "Unload every model",
            "Unload every model loaded in memory; they stay downloaded.",
            NoArguments,
            None,
            _unload_all,
            _hints(),
        ),
        _Tool(
            "create_model",
            "Create a custom model",
            "Register a custom model with PiecesOS. `name`, `version`, `cloud`, `type` and "
            "`usage` are required; `created` defaults to now. PiecesOS never makes a "
            "duplicate: the same name, version, cloud and unique give back the model there "
            "is. Answers the model, with the id PiecesOS gave it.",
            CreateModelArguments,
            Model,
            _create_model,
            _hints(),
        ),
        _Tool(
            "update_model",
            "Update a custom model",
            "Change fields of a custom model: give its `id` and only the fields to change, "
            "named as get_model answers them; null removes a field. Every other field stays "
            "as PiecesOS has it. Only custom models can be updated. Answers the model.",
            ModelUpdate,
            Model,
            _update_model,
            _hints(destructive=True),
        ),
        _Tool(
            "delete_model",
            "Delete a custom model",
            "Delete a custom model from PiecesOS; built-in models cannot be deleted. Answers "
            "a reference to the deleted model.",
            ModelArguments,
            ReferencedModel,
            _delete_model,
            _hints(destructive=True, idempotent=False),
        ),
        _Tool(
            "delete_model_cache",
            "Delete a model's downloaded data",
            "Delete what was downloaded for an LLM (cancelling its download if one runs); "
            "the model stays known to PiecesOS, to download again. Only LLMs have a cache. "
            "Answers a reference to the model.",
            ModelArguments,
            ModelDeleteCacheOutput,
            _delete_model_cache,
            _hints(destructive=True),
        ),
        _Tool(
            "increment_model_score",
            "Record a use of a model",
            "Add points to a model's score, which PiecesOS ranks models by. Without `points` "
            "it adds one `reuse` point: this model was used. Answers the model with its new "
            "score.",
            ScoreArguments,
            Model,
            _increment_model_score,
            _hints(idempotent=False),
        ),
    ]
}
#: The tools' names, in the order `tools/list` gives them.
TOOL_NAMES = tuple(TOOLS)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def _call_tool(
    ctx: ServerRequestContext[_State, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    tool = TOOLS.get(params.name)
    if tool is None:
        raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r}")
    try:
        args = tool.decoder.decode(msgspec.json.encode(params.arguments or {}))
    except msgspec.ValidationError as exc:
        return _error(f"invalid arguments for {tool.name}: {exc}")
    try:
        line, result = await tool.run(_Call(ctx.lifespan_context.client, ctx), args)
    except (PiecesError, _ToolError) as exc:
        return _error(str(exc))
    except Exception as exc:  # a bug of ours: the caller gets a line, the log the traceback
        logger.exception("tool %s failed", tool.name)
        detail = " ".join(str(exc).split())
        return _error(f"{tool.name} failed unexpectedly: {type(exc).__name__}: {detail}")
    content: list[types.ContentBlock] = [types.TextContent(text=line)]
    if result is None:
        return types.CallToolResult(content=content)
    # The JSON as text too, for hosts that show the model only text (as the spec advises).
    content.append(types.TextContent(text=msgspec.json.encode(result).decode()))
    return types.CallToolResult(content=content, structured_content=msgspec.to_builtins(result))


async def _list_tools(
    ctx: ServerRequestContext[_State, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[tool.definition() for tool in TOOLS.values()])


def _input_schema(name: str) -> dict[str, Any] | None:
    tool = TOOLS.get(name)
    return None if tool is None else tool.input_schema


# -- resources ------------------------------------------------------------------------------


async def _list_resources(
    ctx: ServerRequestContext[_State, Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    try:
        models = (await ctx.lifespan_context.client.list_models()).iterable
    except PiecesError as exc:
        raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
    resources = [
        types.Resource(
            uri=MODELS_URI,
            name="models",
            title="PiecesOS models",
            description="Every model PiecesOS knows, as list_models answers them.",
            mime_type=_JSON,
        )
    ]
    resources.extend(
        types.Resource(
            uri=model_uri(model.id),
            name=model.name or model.id,
            description=f"The model {_named(model)}: {_state(model)}.",
            mime_type=_JSON,
        )
        for model in models
    )
    return types.ListResourcesResult(resources=resources)


async def _list_resource_templates(
    ctx: ServerRequestContext[_State, Any], params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    template = types.ResourceTemplate(
        uri_template=MODEL_URI_TEMPLATE,
        name="model",
        title="A PiecesOS model",
        description="One model by id (percent-encoded), as get_model answers it.",
        mime_type=_JSON,
    )
    return types.ListResourceTemplatesResult(resource_templates=[template])


async def _read_resource(
    ctx: ServerRequestContext[_State, Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    uri, client = params.uri, ctx.lifespan_context.client
    try:
        if uri == MODELS_URI:
            body: msgspec.Struct = await client.list_models()
        elif uri.startswith(_MODEL_URI_PREFIX) and uri[len(_MODEL_URI_PREFIX) :]:
            body = await client.get_model(unquote(uri[len(_MODEL_URI_PREFIX) :]))
        else:
            raise MCPError(types.INVALID_PARAMS, f"no resource {uri}", data={"uri": uri})
    except ModelNotFoundError as exc:
        raise MCPError(
            types.INVALID_PARAMS, f"no resource {uri}: {exc}", data={"uri": uri}
        ) from None
    except PiecesError as exc:
        raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
    text = msgspec.json.encode(body).decode()
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=_JSON, text=text)]
    )


def _ours(uri: str) -> bool:
    return uri == MODELS_URI or uri.startswith(_MODEL_URI_PREFIX)


# -- change notifications -------------------------------------------------------------------


@dataclass(eq=False)
class _FeedRun:
    """One attempt to follow model changes: ready once it follows them, or failed."""

    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ready: anyio.Event = field(default_factory=anyio.Event)
    error: PiecesError | None = None


class _ModelFeed:
    """Model changes from one `live_models()` stream, open only while someone listens."""

    def __init__(
        self,
        client: AsyncPiecesClient,
        task_group: TaskGroup,
        publish: Callable[[list[str], bool], Awaitable[None]],
    ) -> None:
        self._client = client
        self._task_group = task_group
        self._publish = publish
        self._users = 0
        self._run: _FeedRun | None = None

    async def acquire(self) -> None:
        """One more listener; once this returns, every later change is published."""
        # The first listener opens the stream; if that fails (PiecesOS cannot be reached),
        # every listener waiting for it gets the error, and none is counted.
        self._users += 1
        try:
            run = self._run
            if run is None:
                self._run = run = _FeedRun()
                self._task_group.start_soon(self._follow, run)
            await run.ready.wait()
            if run.error is not None:
                raise run.error
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """One listener fewer; the last one closes the stream."""
        self._users -= 1
        if self._users == 0 and self._run is not None:
            self._run.scope.cancel()
            self._run = None

    async def _follow(self, run: _FeedRun) -> None:
        """Publish every change; after PiecesOS went away, follow again and resynchronise."""
        delay = 1.0
        try:
            with run.scope:
                while True:
                    try:
                        async with self._client.live_models() as live:
                            changes = live.changes()
                            if run.ready.is_set():  # again, after a gap: anything may have changed
                                await self._publish(
                                    [MODELS_URI, *map(model_uri, live.models)], True
                                )
                            run.ready.set()
                            delay = 1.0
                            async for change in changes:
                                await self._publish_change(change)
                        return  # the client closed
                    except PiecesClientStateError:
                        return  # the client closed
                    except PiecesError as exc:
                        if not run.ready.is_set():
                            run.error = exc
                            return
                        logger.warning(
                            "model changes lost (%s); following again in %g s", exc, delay
                        )
                    await anyio.sleep(delay)
                    delay = min(delay * 2, _MAX_FEED_RETRY)
        finally:
            run.ready.set()
            if self._run is run:
                self._run = None

    async def _publish_change(self, change: ModelChange) -> None:
        await self._publish([MODELS_URI, model_uri(change.model_id)], change.kind != "updated")


class _LegacySubscriptions:
    """`resources/subscribe` of clients on protocol versions before 2026-07-28, by connection."""

    def __init__(self, feed: _ModelFeed) -> None:
        self._feed = feed
        self._uris: dict[Connection, set[str]] = {}

    async def subscribe(self, connection: Connection, uri: str) -> None:
        """Send `connection` an update whenever `uri` changes, until it unsubscribes or goes."""
        uris = self._uris.get(connection)
        if uris is None:
            await self._feed.acquire()  # one listener per connection
            uris = self._uris.get(connection)
            if uris is None:
                self._uris[connection] = uris = set()
                connection.exit_stack.callback(self._forget, connection)
            else:  # another subscribe on this connection counted it meanwhile
                self._feed.release()
        uris.add(uri)

    def unsubscribe(self, connection: Connection, uri: str) -> None:
        """Stop sending `connection` updates of `uri`."""
        uris = self._uris.get(connection)
        if uris is not None:
            uris.discard(uri)
            if not uris:
                self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        if self._uris.pop(connection, None) is not None:
            self._feed.release()

    async def notify(self, uris: Iterable[str]) -> None:
        """Tell each subscribed connection which of `uris` changed; a stuck one is skipped."""
        changed = set(uris)
        for connection, subscribed in list(self._uris.items()):
            for uri in sorted(subscribed & changed):
                with anyio.move_on_after(_NOTIFY_TIMEOUT):
                    await connection.send_resource_updated(uri)


def _connection(ctx: ServerRequestContext[_State, Any]) -> Connection:
    """The connection a request came on, which outlives it."""
    # The SDK's request context does not expose it yet (its session holds it), though the
    # connection's `exit_stack` is where the SDK says per-connection cleanup goes.
    return ctx.session._connection


async def _subscribe(
    ctx: ServerRequestContext[_State, Any], params: types.SubscribeRequestParams
) -> types.EmptyResult:
    if not _ours(params.uri):
        raise MCPError(types.INVALID_PARAMS, f"no resource {params.uri}", data={"uri": params.uri})
    try:
        await ctx.lifespan_context.legacy.subscribe(_connection(ctx), params.uri)
    except PiecesError as exc:
        raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
    return types.EmptyResult()


async def _unsubscribe(
    ctx: ServerRequestContext[_State, Any], params: types.UnsubscribeRequestParams
) -> types.EmptyResult:
    ctx.lifespan_context.legacy.unsubscribe(_connection(ctx), params.uri)
    return types.EmptyResult()


async def _listen(
    ctx: ServerRequestContext[_State, Any], params: types.SubscriptionsListenRequestParams
) -> types.SubscriptionsListenResult:
    """Serve one `subscriptions/listen` stream, following model changes while it is open."""
    state, wanted = ctx.lifespan_context, params.notifications
    if not (wanted.resources_list_changed or any(map(_ours, wanted.resource_subscriptions or ()))):
        return await state.listen(ctx, params)
    try:
        await state.feed.acquire()  # before the acknowledgment: no change after it is missed
    except PiecesError as exc:
        raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
    try:
        return await state.listen(ctx, params)
    finally:
        state.feed.release()


# -- the server -------------------------------------------------------------------------------


@dataclass(eq=False)
class _State:
    """What every request of one server shares: the client and the change notifications."""

    client: AsyncPiecesClient
    bus: InMemorySubscriptionBus
    listen: ListenHandler
    feed: _ModelFeed = field(init=False)
    legacy: _LegacySubscriptions = field(init=False)

    async def publish(self, uris: list[str], list_changed: bool) -> None:
        """Tell subscribers, of either protocol era, that `uris` changed."""
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
        if list_changed:
            await self.bus.publish(ResourcesListChanged())
        await self.legacy.notify(uris)


_INSTRUCTIONS = (
    "Manage the models of PiecesOS, the local AI runtime behind the Pieces apps: list and "
    "find models, download (with progress), load and unload them, and create, update and "
    "delete custom ones. Tools take model ids; find_model turns a name into one. The "
    "resources pieces://models and pieces://models/{id} hold the models as JSON, and "
    "subscribers are told when they change."
)


def create_server(url: str | None = None, **client_options: Any) -> Server[_State]:
    """The MCP server, over an `AsyncPiecesClient(url, **client_options)` of its own."""
    # The client opens when the server starts serving (`url` None: `PIECES_OS_URL`, else
    # discovery) and closes when it stops.

    @contextlib.asynccontextmanager
    async def lifespan(server: Server[_State]) -> AsyncIterator[_State]:
        async with (
            AsyncPiecesClient(url, **client_options) as client,
            anyio.create_task_group() as task_group,
        ):
            bus = InMemorySubscriptionBus()
            state = _State(client, bus, ListenHandler(bus))
            state.feed = _ModelFeed(client, task_group, state.publish)
            state.legacy = _LegacySubscriptions(state.feed)
            try:
                yield state
            finally:
                state.listen.close()
                task_group.cancel_scope.cancel()

    return Server(
        "aiopieces",
        version=__version__,
        title="PiecesOS models",
        description="PiecesOS model management: every model operation, with progress.",
        instructions=_INSTRUCTIONS,
        lifespan=lifespan,
        get_tool_input_schema=_input_schema,
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        on_list_resources=_list_resources,
        on_list_resource_templates=_list_resource_templates,
        on_read_resource=_read_resource,
        on_subscribe_resource=_subscribe,
        on_unsubscribe_resource=_unsubscribe,
        on_subscriptions_listen=_listen,
    )


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


async def serve_mcp(
    url: str | None,
    *,
    emulator: bool = False,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    timeout: Timeout | float | None = None,
) -> None:
    """Serve over stdio, or streamable HTTP on a loopback `host`, until the client leaves."""
    # `emulator`: against the bundled PiecesOS emulator instead of `url`. `timeout`: the
    # client's (its default when None).
    if http and host not in _LOOPBACK:
        raise ValueError(
            f"the MCP server has no authentication: serve it on 127.0.0.1, ::1 or localhost, "
            f"not {host!r}"
        )
    if emulator and url:
        raise ValueError("--emulator serves the bundled emulator: give no PiecesOS URL with it")
    options = {} if timeout is None else {"timeout": timeout}
    async with contextlib.AsyncExitStack() as stack:
        if emulator:
            from .testing import PiecesOSEmulator

            emulated = await stack.enter_async_context(PiecesOSEmulator(download_interval=0.15))
            url = emulated.url
            _say(f"serving the bundled PiecesOS emulator at {url}")
        server = create_server(url, **options)
        if http:
            await _serve_http(server, host, port)
        else:
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())


async def _serve_http(server: Server[_State], host: str, port: int) -> None:
    import uvicorn

    app = server.streamable_http_app(host=host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as sock:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        _say(f"serving MCP over streamable HTTP at http://{shown}:{bound}/mcp")
        # A bounded shutdown: an MCP host may keep its event stream open.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        await uvicorn.Server(config).serve(sockets=[sock])


def _say(text: str) -> None:
    """A line for the person who started the server: on stderr, never on the MCP stream."""
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m aiopieces._mcp`: the same server as `aiopieces mcp`."""
    parser = argparse.ArgumentParser(prog="python -m aiopieces._mcp", description=__doc__)
    # The same options as `aiopieces mcp`, so that the two can stand in for each other.
    parser.add_argument("--url", help="the PiecesOS URL (default: $PIECES_OS_URL, else discovery)")
    parser.add_argument("--emulator", action="store_true", help="serve the bundled emulator")
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(
            serve_mcp(
                args.url, emulator=args.emulator, http=args.http, host=args.host, port=args.port
            )
        )
    except KeyboardInterrupt:
        return 130
    except (PiecesError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
