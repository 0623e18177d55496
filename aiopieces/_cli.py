"""The `aiopieces` command: every endpoint from the shell, plus `demo` and `emulator`.

Tables and progress bars come from rich (the `cli` extra); `--json` needs nothing extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import msgspec

from ._client import AsyncPiecesClient
from ._config import Timeout, discover_pieces_os
from ._enums import ModelTypeEnum, ModelUsageEnum
from ._exceptions import PiecesAPIError, PiecesError
from ._types import GroupedTimestamp, Model, ModelDownloadProgress, SeededModel

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

T = TypeVar("T")

_SEEDED = msgspec.json.Decoder(SeededModel)
_MODEL = msgspec.json.Decoder(Model)


class CLIError(Exception):
    """An expected failure: printed as one line, exit status 1."""


def _console() -> Console:
    """A rich console; a one-line error, not a traceback, when rich is not installed."""
    try:
        from rich.console import Console
    except ImportError:
        raise CLIError("tables and progress bars need rich: pip install 'aiopieces[cli]'") from None
    return Console()


async def _read_json(path: str, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a JSON file, without blocking the event loop while reading it."""
    try:
        return decoder.decode(await anyio.Path(path).read_bytes())
    except msgspec.DecodeError as exc:
        what = getattr(decoder.type, "__name__", "valid document")
        raise CLIError(f"{path} is not a {what}: {exc}") from None


def _emit_json(obj: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj)).decode() + "\n")


def _is_llm(model: Model) -> bool:
    """Whether PiecesOS treats `model` as an LLM (chat or generation)."""
    return model.usage in (ModelUsageEnum.CODE_CONVERSATION, ModelUsageEnum.CODE_GENERATION)


def _smallness(model: Model) -> tuple[float, float]:
    """Sort key: size in bytes when known, else parameters (unknown sorts last)."""
    inf = float("inf")
    return (model.bytes.value if model.bytes else inf, model.parameters or inf)


def _size(model: Model) -> str:
    return model.bytes.readable if model.bytes else "-"


def _yes(flag: bool | None) -> str:
    return "yes" if flag else "no"


def print_models(models: list[Model], as_json: bool) -> None:
    """Print models as a table (or JSON)."""
    if as_json:
        _emit_json(models)
        return
    console = _console()
    from rich.table import Table

    table = Table(title=f"{len(models)} models")
    for column in ("name", "id", "where", "downloaded", "loaded", "size"):
        table.add_column(column, no_wrap=column in ("name", "id"))
    for m in models:
        where = "cloud" if m.cloud else "local"
        table.add_row(m.name, m.id, where, _yes(m.downloaded), _yes(m.loaded), _size(m))
    console.print(table)


def print_model(model: Model, as_json: bool) -> None:
    """Print one model's fields (or its JSON)."""
    if as_json:
        _emit_json(model)
        return
    console = _console()
    from rich.table import Table

    table = Table(show_header=False, title=model.name)
    for key, value in msgspec.to_builtins(model).items():
        table.add_row(key, value if isinstance(value, str) else msgspec.json.encode(value).decode())
    console.print(table)


async def resolve_model(client: AsyncPiecesClient, name: str) -> Model:
    """Find a model by id, unique name or display name, where that is unambiguous."""
    models = (await client.list_models()).iterable
    for field in ("id", "unique", "name"):
        matches = [m for m in models if getattr(m, field) == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(m.id for m in matches)
            raise CLIError(f"{name!r} names {len(matches)} models ({ids}); use an id")
    lowered = [m for m in models if m.name.lower() == name.lower()]
    if len(lowered) == 1:
        return lowered[0]
    raise CLIError(f"no model is named {name!r}; `aiopieces models` lists them")


async def show_download(
    client: AsyncPiecesClient, model: Model, as_json: bool
) -> ModelDownloadProgress | None:
    """Download a model with a live progress bar; Ctrl-C cancels it in PiecesOS."""
    last: ModelDownloadProgress | None = None
    if as_json:
        async for event in client.download(model.id, cancel_on_exit=True):
            # One compact object a line (JSON Lines), so a pipe can follow the stream.
            sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
            sys.stdout.flush()
            last = event
        return last
    console = _console()
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"{model.name} [{_size(model)}]", total=100)
        async for event in client.download(model.id, cancel_on_exit=True):
            bar.update(
                task, completed=event.percentage or 0, description=f"{model.name}: {event.status}"
            )
            last = event
    return last


async def _seeded_from_args(args: argparse.Namespace) -> SeededModel:
    if args.file:
        return await _read_json(args.file, _SEEDED)
    if not args.name:
        raise CLIError("create needs --file or --name")
    return SeededModel(
        name=args.name,
        version=args.version,
        cloud=args.cloud,
        created=GroupedTimestamp(value=dt.datetime.now(dt.UTC)),
        type=ModelTypeEnum(args.type),
        usage=ModelUsageEnum(args.usage),
        description=args.description,
        unique=args.unique,
    )


# -- the subcommands ---------------------------------------------------------------


async def cmd_models(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces models`: the models as a table."""
    print_models((await client.list_models()).iterable, args.json)


async def cmd_show(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces show MODEL`: one model's fields."""
    print_model(await resolve_model(client, args.model), args.json)


async def cmd_download(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces download MODEL`: download with a live progress bar."""
    model = await resolve_model(client, args.model)
    last = await show_download(client, model, args.json)
    if last is None or last.status != "COMPLETED":
        raise CLIError(f"the download of {model.name} ended {last.status if last else 'early'}")


def _model_action(
    call: Callable[[AsyncPiecesClient, str], Awaitable[Model]],
) -> Callable[[AsyncPiecesClient, argparse.Namespace], Awaitable[None]]:
    async def run(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
        """Resolve the model named on the command line, then act on it."""
        model = await resolve_model(client, args.model)
        print_model(await call(client, model.id), args.json)

    return run


async def cmd_unload_all(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces unload-all`: unload every model."""
    await client.unload_models()
    print("all models unloaded")


async def cmd_create(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces create`: a custom model from a JSON file or flags."""
    print_model(await client.create_model(await _seeded_from_args(args)), args.json)


async def cmd_update(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces update FILE`: update a custom model from its JSON."""
    model = await _read_json(args.file, _MODEL)
    print_model(await client.update_model(model), args.json)


async def cmd_delete(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces delete MODEL`: delete a custom model."""
    model = await resolve_model(client, args.model)
    await client.delete_model(model.id)
    print(f"deleted {model.name} ({model.id})")


async def cmd_delete_cache(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces delete-cache MODEL`: delete an LLM's downloaded data."""
    model = await resolve_model(client, args.model)
    out = await client.delete_model_cache(model.id)
    if args.json:
        _emit_json(out)
    else:
        print(f"deleted the cache of {model.name} ({out.model.id})")


# -- demo and emulator -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _pieces_os_or_emulator(url: str | None) -> AsyncIterator[tuple[str, bool]]:
    """The PiecesOS to use, and whether it is an emulator started here."""
    url = url or await discover_pieces_os()
    if url:
        yield url, False
        return
    from .testing import PiecesOSEmulator

    async with PiecesOSEmulator(download_interval=0.15) as emulator:
        yield emulator.url, True


async def run_demo(url: str | None, write: bool, timeout: Timeout) -> None:
    """Walk a model's lifecycle through the public API (read-only on a real PiecesOS)."""
    console = _console()
    async with _pieces_os_or_emulator(url) as (base_url, emulated):
        where = "the bundled emulator (no PiecesOS answered)" if emulated else base_url
        console.rule(f"aiopieces demo against {where}")
        write = write or emulated
        async with AsyncPiecesClient(base_url, timeout=timeout) as client:
            models = (await client.list_models()).iterable
            print_models(models, as_json=False)
            if not write:
                console.print("Read-only on a real PiecesOS: pass --write to download and load.")
                return
            # An LLM: the demo ends by deleting its cache, which PiecesOS allows for LLMs only.
            local = [m for m in models if not m.cloud and not m.downloaded and _is_llm(m)]
            if not local:
                console.print("No local model left to download.")
                return
            # The smallest: PiecesOS often sends no size, then the parameter count says.
            target = min(local, key=_smallness)
            console.print(f"Downloading [bold]{target.name}[/bold]:")
            await show_download(client, target, as_json=False)
            loaded = await client.load_model(target.id)
            console.print(f"Loaded {loaded.name}: loaded={loaded.loaded}")
            unloaded = await client.unload_model(target.id)
            console.print(f"Unloaded {unloaded.name}: loaded={unloaded.loaded}")

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
            console.print(
                f"Created custom model {custom.name} ({custom.id}), custom={custom.custom}"
            )
            try:
                custom.description = "updated by the aiopieces demo"
                updated = await client.update_model(custom)
                console.print(f"Updated its description: {updated.description!r}")
                cache = await client.delete_model_cache(target.id)
                console.print(f"Deleted the cache of {target.name} ({cache.model.id})")
            finally:
                await client.delete_model(custom.id)
                console.print(f"Deleted custom model {custom.id}")
        console.rule("demo complete")


async def run_emulator(
    host: str, port: int, interval: float, shape: Literal["pieces", "schema"] = "pieces"
) -> None:
    """Serve the emulator until interrupted."""
    from .testing import PiecesOSEmulator

    emulator = PiecesOSEmulator(download_interval=interval, shape=shape)
    url = await emulator.start(host, port)
    print(f"PiecesOS emulator serving {len(emulator.models)} models on {url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


# -- argument parsing ------------------------------------------------------------------

Command = Callable[[AsyncPiecesClient, argparse.Namespace], Awaitable[None]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiopieces", description="Manage PiecesOS models.")
    parser.add_argument(
        "--url", help="PiecesOS URL (default: PIECES_OS_URL, discovery, localhost:1000)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--timeout", type=float, default=None, help="connect and read timeout, seconds"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, command: Command | None, help_text: str, model: bool = False
    ) -> argparse.ArgumentParser:
        """Add a subcommand, with a MODEL argument when `model`."""
        p = sub.add_parser(name, help=help_text, description=help_text)
        if model:
            p.add_argument("model", help="model id, unique name or display name")
        p.set_defaults(handler=command)
        return p

    add("models", cmd_models, "list the models: name, id, local or cloud, state, size")
    add("show", cmd_show, "show one model", model=True)
    add("download", cmd_download, "download a model with a live progress bar", model=True)
    add("cancel", _model_action(lambda c, m: c.cancel_download(m)), "cancel a download", model=True)
    add("load", _model_action(lambda c, m: c.load_model(m)), "load a model into memory", model=True)
    add("unload", _model_action(lambda c, m: c.unload_model(m)), "unload a model", model=True)
    add("unload-all", cmd_unload_all, "unload every model")
    create = add("create", cmd_create, "create a custom model from a JSON file or flags")
    create.add_argument("--file", help="a SeededModel as JSON")
    create.add_argument("--name")
    create.add_argument("--version", default="1.0.0")
    create.add_argument("--cloud", action="store_true")
    create.add_argument("--type", default="BALANCED", choices=[e.value for e in ModelTypeEnum])
    create.add_argument("--usage", default="CODE_CONVERSATION")
    create.add_argument("--description")
    create.add_argument("--unique")
    update = add("update", cmd_update, "update a custom model from a Model JSON file")
    update.add_argument("file", help="the model as JSON (as `show --json` prints it)")
    add("delete", cmd_delete, "delete a custom model", model=True)
    add("delete-cache", cmd_delete_cache, "delete an LLM's downloaded data", model=True)
    demo = add("demo", None, "walk a model lifecycle (against the emulator if no PiecesOS runs)")
    demo.add_argument("--write", action="store_true", help="also change a real PiecesOS")
    emulator = add("emulator", None, "serve the PiecesOS emulator until Ctrl-C")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=39300)
    emulator.add_argument("--download-interval", type=float, default=0.2)
    emulator.add_argument(
        "--shape",
        choices=["pieces", "schema"],
        default="pieces",
        help="pieces: what PiecesOS really sends (default); schema: schema-complete",
    )
    return parser


async def _run(args: argparse.Namespace) -> None:
    timeout = Timeout() if args.timeout is None else Timeout.coerce(args.timeout)
    if args.command == "demo":
        await run_demo(args.url, args.write, timeout)
    elif args.command == "emulator":
        await run_emulator(args.host, args.port, args.download_interval, args.shape)
    else:
        async with AsyncPiecesClient(args.url, timeout=timeout) as client:
            await args.handler(client, args)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 success, 1 library error, 130 Ctrl-C)."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except PiecesAPIError as exc:
        print(f"error: PiecesOS answered {exc.status}: {exc.body.strip() or exc}", file=sys.stderr)
        return 1
    except (PiecesError, CLIError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
