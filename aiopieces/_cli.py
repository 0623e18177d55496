"""The `aiopieces` command: every endpoint from the shell, plus `demo`, `emulator`, `mcp`.

Output is for people: tables fit the terminal (80 columns is enough), and piped output
is plain aligned text, one model a line. `--json` prints JSON instead and needs nothing
extra; tables and progress bars come from rich (the `cli` extra). `--url`, `--json` and
`--timeout` go before or after the command.

Adding a command: write `async def cmd_name(args)` (`@_with_client async def
cmd_name(client, args)` for one that talks to PiecesOS) and register it in `_parser()`
with `command("name", cmd_name, "what it does")`. `main` runs each the same way, as
`args.handler(args)`, and turns only our own errors (`PiecesError`, `CLIError`) into a
one-line message: anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import difflib
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import msgspec

from ._client import AsyncPiecesClient
from ._config import DISCOVERY_PORTS, URL_ENV_VAR, Timeout, validate_base_url
from ._demo import run_demo
from ._enums import ModelDownloadProgressStatusEnum, ModelTypeEnum, ModelUsageEnum, OpenEnum
from ._exceptions import ModelLookupError, PiecesAPIError, PiecesConnectionError, PiecesError
from ._types import GroupedTimestamp, Model, ModelDownloadProgress, SeededModel
from ._version import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["main"]

T = TypeVar("T")
E = TypeVar("E", bound=OpenEnum)

_MODEL = msgspec.json.Decoder(Model)
_SEEDED = msgspec.json.Decoder(SeededModel)
_Status = ModelDownloadProgressStatusEnum

#: The options every client command takes, before or after the command.
GLOBAL_OPTIONS = ("url", "json", "timeout")
#: Shortened ids in tables are at least this long (a unique prefix names a model).
SHORT_ID = 8


class CLIError(Exception):
    """An expected failure: printed as one line, exit status 1."""


# -- output --------------------------------------------------------------------------


def _console() -> Console:
    """A rich console; a one-line error, not a traceback, when rich is not installed."""
    try:
        from rich.console import Console
    except ImportError:
        raise CLIError("tables and progress bars need rich: pip install 'aiopieces[cli]'") from None
    return Console()


def _emit_json(obj: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj)).decode() + "\n")


def _say(args: argparse.Namespace, text: str, obj: Any) -> None:
    """One line saying what happened; with --json, `obj` as JSON instead."""
    if args.json:
        _emit_json(obj)
    else:
        print(text)


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def _plain_columns(rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns without borders, one row a line: for output that is piped."""
    from rich.cells import cell_len

    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        )
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _short_ids(ids: Iterable[str]) -> dict[str, str]:
    """Each id's shortest prefix (at least `SHORT_ID` long) that no other id starts with."""
    unique = set(ids)
    length = SHORT_ID
    while len({i[:length] for i in unique}) < len(unique):
        length += 1
    return {i: i[:length] for i in unique}


def _size(model: Model) -> str:
    if model.bytes is None:
        return "-"
    return model.bytes.readable or _readable_bytes(model.bytes.value)


def _readable_bytes(value: float) -> str:
    """A size as PiecesOS writes `readable`: binary multiples, named GB and MB."""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _state(model: Model) -> str:
    if model.loaded:
        return "loaded"
    if model.downloading:
        return "downloading"
    if model.downloaded:
        return "downloaded"
    return "-"


def print_models(models: list[Model], as_json: bool) -> None:
    """Print models as a table that fits the terminal (plain columns when piped), or JSON."""
    if as_json:
        _emit_json(models)
        return
    console = _console()
    ids = _short_ids(m.id for m in models)
    rows = [
        (m.name or "-", ids[m.id], "cloud" if m.cloud else "local", _state(m), _size(m))
        for m in models
    ]
    headers = ("name", "id", "where", "state", "size")
    if not console.is_terminal:
        _plain_columns([tuple(h.upper() for h in headers), *rows])
        return
    from rich.table import Table

    table = Table(
        title=f"{len(models)} models",
        caption="ids shortened: any unique prefix names a model",
    )
    # Only the name wraps; the rest is short enough to fit 80 columns beside it.
    table.add_column("name", overflow="fold", min_width=10)
    for header in headers[1:]:
        table.add_column(header, no_wrap=True, justify="right" if header == "size" else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _field_text(value: Any) -> str:
    """A model field as text: a timestamp or size as people read it, else compact JSON."""
    if isinstance(value, str):
        return value
    if (
        isinstance(value, dict)
        and "value" in value
        and set(value)
        <= {
            "value",
            "readable",
            "schema",
        }
    ):
        readable = value.get("readable")
        return f"{value['value']} ({readable})" if readable else str(value["value"])
    return msgspec.json.encode(value).decode()


def print_model(model: Model, as_json: bool) -> None:
    """Print one model's fields (or its JSON)."""
    if as_json:
        _emit_json(model)
        return
    console = _console()
    rows = [(key, _field_text(value)) for key, value in msgspec.to_builtins(model).items()]
    if not console.is_terminal:
        _plain_columns(rows)
        return
    from rich import box
    from rich.table import Table

    table = Table(show_header=False, title=model.name or model.id, box=box.ROUNDED)
    table.add_column("field", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


# -- models by name ----------------------------------------------------------------------


async def resolve_model(client: AsyncPiecesClient, name: str) -> Model:
    """Find a model by id, unique name, display name or unique id prefix."""
    listed = await client.list_models()
    try:
        return listed.find(name)  # id, unique name, name, name in any case
    except ModelLookupError as exc:
        if exc.matches:
            ids = ", ".join(exc.matches)
            raise CLIError(f"{name!r} names {len(exc.matches)} models ({ids}); use an id") from None
    # The table shows ids shortened to a unique prefix: such a prefix names its model too.
    prefixed = [m for m in listed.iterable if len(name) >= 4 and m.id.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise CLIError(f"{len(prefixed)} model ids start with {name!r}; give more of the id")
    raise CLIError(f"no model is named {name!r}; `aiopieces models` lists them")


def _named(model: Model) -> str:
    return f"{model.name} ({model.id})" if model.name else model.id


# -- downloads ---------------------------------------------------------------------------

_STATUS_TEXT = {
    _Status.INITIALIZED: "starting",
    _Status.IN_PROGRESS: "downloading",
    _Status.COMPLETED: "done",
    _Status.FAILED: "failed",
    _Status.CANCELED: "canceled",
}


def _progress_bar(console: Console, size: int | None) -> Progress:
    """A one-line bar fitting the console: size, speed and time left when the size is known."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.table import Column

    name = Column(no_wrap=True, overflow="ellipsis", max_width=24)
    status = Column(no_wrap=True, min_width=11)
    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}", table_column=name),
        TextColumn("{task.fields[status]}", table_column=status),
        BarColumn(bar_width=None),
        TaskProgressColumn(),
    ]
    if size is not None:
        columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console)


async def show_download(
    client: AsyncPiecesClient, model: Model, as_json: bool
) -> ModelDownloadProgress | None:
    """Download a model with a live progress bar; Ctrl-C cancels it in PiecesOS.

    The bar appears with the download's first event: `UNKNOWN` (no download yet) draws
    nothing, so a refused download leaves no empty bar behind. It never moves back when
    a download fails or is canceled.
    """
    last: ModelDownloadProgress | None = None
    if as_json:
        async for event in client.download(model.id, cancel_on_exit=True):
            # One compact object a line (JSON Lines), so a pipe can follow the stream.
            sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
            sys.stdout.flush()
            last = event
        return last
    console = _console()
    size = model.bytes.value if model.bytes and model.bytes.value > 0 else None
    bar: Progress | None = None
    task: TaskID | None = None
    percentage = 0.0
    try:
        async for event in client.download(model.id, cancel_on_exit=True):
            last = event
            if bar is None or task is None:
                if event.status in (None, _Status.UNKNOWN):
                    continue  # nothing is downloading yet: no bar
                bar = _progress_bar(console, size)
                bar.start()
                task = bar.add_task(model.name or model.id, total=size or 100, status="")
            if event.percentage is not None and (
                event.status not in (_Status.FAILED, _Status.CANCELED)
                or event.percentage > percentage
            ):
                percentage = float(event.percentage)
            status = event.status
            bar.update(
                task,
                completed=percentage / 100 * size if size else percentage,
                status=_STATUS_TEXT.get(status, str(status)) if status else "",
            )
    finally:
        if bar is not None:
            bar.stop()
    return last


# -- the subcommands ---------------------------------------------------------------------

#: What every command is: `main` calls `args.handler(args)`.
Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, None]]
#: A command that talks to PiecesOS; `_with_client` makes it a `Handler`.
ClientCommand = Callable[[AsyncPiecesClient, argparse.Namespace], Awaitable[None]]


def _timeout(args: argparse.Namespace) -> Timeout:
    return Timeout() if args.timeout is None else Timeout.coerce(args.timeout)


def _checked_url(args: argparse.Namespace) -> str | None:
    """`--url` as given, once it (else `$PIECES_OS_URL`) is a valid URL: else `CLIError`."""
    url: str | None = args.url
    given = url or os.environ.get(URL_ENV_VAR)
    if given:
        try:
            validate_base_url(given)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
    return url


def _with_client(command: ClientCommand) -> Handler:
    """The handler of a client command: it opens a client as the global options say."""

    @functools.wraps(command)
    async def handler(args: argparse.Namespace) -> None:
        async with AsyncPiecesClient(_checked_url(args), timeout=_timeout(args)) as client:
            await command(client, args)

    return handler


@_with_client
async def cmd_models(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces models`: the models as a table."""
    print_models((await client.list_models()).iterable, args.json)


@_with_client
async def cmd_show(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces show MODEL`: one model's fields."""
    print_model(await resolve_model(client, args.model), args.json)


@_with_client
async def cmd_download(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces download MODEL`: download with a live progress bar."""
    model = await resolve_model(client, args.model)
    if model.cloud:
        raise CLIError(f"{model.name} is a cloud model: it runs remotely, nothing to download")
    if model.downloaded and not model.downloading and not args.json:
        print(f"{_named(model)} is already downloaded")
        return
    last = await show_download(client, model, args.json)
    if last is None or last.status != _Status.COMPLETED:
        how = f"{last.status}" if last and last.status else "without completing"
        at = f" at {last.percentage:g}%" if last and last.percentage is not None else ""
        raise CLIError(f"the download of {model.name} ended {how}{at}")
    if not args.json:
        print(f"downloaded {_named(model)}")


@_with_client
async def cmd_cancel(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces cancel MODEL`: cancel a download in progress."""
    model = await resolve_model(client, args.model)
    after = await client.cancel_download(model.id)
    if model.downloading:
        _say(args, f"canceled the download of {_named(after)}", after)
    else:
        _say(args, f"{_named(after)} was not downloading: nothing to cancel", after)


@_with_client
async def cmd_load(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces load MODEL`: load a downloaded model into memory."""
    model = await resolve_model(client, args.model)
    after = await client.load_model(model.id)
    _say(args, f"loaded {_named(after)}", after)


@_with_client
async def cmd_unload(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces unload MODEL`: unload a model from memory."""
    model = await resolve_model(client, args.model)
    after = await client.unload_model(model.id)
    _say(args, f"unloaded {_named(after)}", after)


@_with_client
async def cmd_unload_all(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces unload-all`: unload every model."""
    await client.unload_models()
    _say(args, "unloaded every model", {"unloaded": "all"})


@_with_client
async def cmd_create(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces create`: a custom model from a JSON file, flags, or both."""
    created = await client.create_model(await _seeded_from_args(args))
    _say(args, f"created {_named(created)}", created)


@_with_client
async def cmd_update(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces update FILE`: update a custom model from its JSON."""
    model = await _read_json(args.file, _MODEL)
    if not model.id:
        raise CLIError(f"{args.file} is not a Model to update: its id is empty")
    updated = await client.update_model(model)
    _say(args, f"updated {_named(updated)}", updated)


@_with_client
async def cmd_delete(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces delete MODEL`: delete a custom model."""
    model = await resolve_model(client, args.model)
    await client.delete_model(model.id)
    _say(args, f"deleted {_named(model)}", model)


@_with_client
async def cmd_delete_cache(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces delete-cache MODEL`: delete an LLM's downloaded data."""
    model = await resolve_model(client, args.model)
    out = await client.delete_model_cache(model.id)
    _say(args, f"deleted the cache of {_named(model)}", out)


@_with_client
async def cmd_score(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces score MODEL`: tell PiecesOS the model was used."""
    model = await resolve_model(client, args.model)
    await client.increment_model_score(model.id)
    after = await client.get_model(model.id)
    uses = after.score.reuse if after.score is not None else None
    _say(args, f"scored {_named(after)}: used {uses or 0} times", after)


@_with_client
async def cmd_health(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces health`: PiecesOS's health line."""
    text = (await client.health()).strip()
    first = text.splitlines()[0] if text else ""
    _say(args, f"{client.base_url}: {first}", {"url": client.base_url, "health": text})


@_with_client
async def cmd_version(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces version`: the PiecesOS version (not this command's: see --version)."""
    version = await client.version()
    _say(args, f"PiecesOS {version}", {"url": client.base_url, "version": version})


@_with_client
async def cmd_watch(client: AsyncPiecesClient, args: argparse.Namespace) -> None:
    """`aiopieces watch`: model changes as they happen, until Ctrl-C."""

    def say(text: str, obj: Any) -> None:
        """One line: text, or with --json one compact JSON object (JSON Lines)."""
        line = msgspec.json.encode(obj).decode() if args.json else text
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async with client.live_models() as live:
        changes = live.changes()
        say(f"watching {len(live.models)} models (Ctrl-C to stop)", {"watching": len(live.models)})
        async for change in changes:
            name = _named(change.model) if change.model else change.model_id
            say(f"{change.kind} {name}", change)


# -- create: a SeededModel from a file and flags -------------------------------------------


async def _read_json(path: str, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a JSON file, without blocking the event loop while reading it."""
    try:
        return decoder.decode(await anyio.Path(path).read_bytes())
    except OSError as exc:
        raise CLIError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        what = getattr(decoder.type, "__name__", "valid document")
        raise CLIError(f"{path} is not a {what}: {exc}") from None


def _enum_flag(enum: type[E]) -> Callable[[str], str]:
    """An argparse type: the enum's value in any case, an unknown one as given."""

    def parse(text: str) -> str:
        known = {e.value.upper(): e.value for e in enum}
        return known.get(text.upper(), text)

    return parse


def _check_enum(value: OpenEnum, what: str) -> None:
    """Warn, not refuse, when a value is one this release does not know.

    PiecesOS adds values in most releases, so an unknown one may be meant; a typo gets a
    suggestion.
    """
    if value.is_known:
        return
    known = [e.value for e in type(value) if e.value != "UNKNOWN"]
    close = difflib.get_close_matches(str(value).upper(), known, n=1)
    hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(known)
    _warn(f"{what} {str(value)!r} is not one aiopieces knows ({hint}); sent as given")


async def _seeded_from_args(args: argparse.Namespace) -> SeededModel:
    """The model to create: the file's fields, with every flag given applied over them.

    `created` defaults to now, in a file as with flags alone.
    """
    fields: dict[str, Any]
    if args.file:
        try:
            raw = msgspec.json.decode(await anyio.Path(args.file).read_bytes())
        except OSError as exc:
            raise CLIError(str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise CLIError(f"{args.file} is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise CLIError(f"{args.file} is not a SeededModel: expected a JSON object")
        fields = raw
    elif args.name:
        fields = {
            "version": "1.0.0",
            "cloud": False,
            "type": ModelTypeEnum.BALANCED.value,
            "usage": ModelUsageEnum.CODE_CONVERSATION.value,
        }
    else:
        raise CLIError("create needs --file FILE or --name NAME (or both)")
    fields.setdefault(
        "created", msgspec.to_builtins(GroupedTimestamp(value=dt.datetime.now(dt.UTC)))
    )
    for flag in ("name", "version", "cloud", "type", "usage", "description", "unique"):
        value = getattr(args, flag)
        if value is not None:
            fields[flag] = value
    try:
        seed = _SEEDED.decode(msgspec.json.encode(fields))
    except msgspec.DecodeError as exc:
        what = f"{args.file} is not" if args.file else "the flags do not make"
        raise CLIError(f"{what} a SeededModel: {exc}") from None
    _check_enum(seed.type, "type")
    _check_enum(seed.usage, "usage")
    return seed


# -- demo and emulator -------------------------------------------------------------------


class _DemoView:
    """The demo drawn as the commands draw: rich console, model table, download bar."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def rule(self, title: str) -> None:
        self._console.rule(title)

    def say(self, text: str) -> None:
        self._console.print(text)

    def models(self, models: list[Model]) -> None:
        print_models(models, as_json=False)

    async def download(self, client: AsyncPiecesClient, model: Model) -> None:
        await show_download(client, model, as_json=False)


async def cmd_demo(args: argparse.Namespace) -> None:
    """`aiopieces demo`: walk a model's lifecycle (see `aiopieces._demo`)."""
    view = _DemoView(_console())
    await run_demo(view, _checked_url(args), timeout=_timeout(args), write=args.write)


async def cmd_emulator(args: argparse.Namespace) -> None:
    """`aiopieces emulator`: serve the emulator until interrupted."""
    from .testing import PiecesOSEmulator

    emulator = PiecesOSEmulator(download_interval=args.download_interval, shape=args.shape)
    try:
        url = await emulator.start(args.host, args.port)
    except OSError as exc:  # the port is taken, the host is not ours, ...
        raise CLIError(str(exc)) from exc
    print(
        f"PiecesOS emulator serving {len(emulator.models)} models on {url} ({args.shape} shape)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


async def cmd_mcp(args: argparse.Namespace) -> None:
    """`aiopieces mcp`: serve model management to MCP hosts (see `aiopieces._mcp`)."""
    try:
        from ._mcp import serve_mcp
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ("mcp", "mcp_types"):
            raise
        raise CLIError("the MCP server needs the mcp extra: pip install 'aiopieces[mcp]'") from None
    try:
        await serve_mcp(
            _checked_url(args),
            emulator=args.emulator,
            http=args.http,
            host=args.host,
            port=args.port,
            timeout=None if args.timeout is None else _timeout(args),
        )
    except (OSError, ValueError) as exc:  # the port is taken, a host not loopback, ...
        raise CLIError(str(exc)) from exc


# -- argument parsing ----------------------------------------------------------------------


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _global_options(names: Sequence[str]) -> argparse.ArgumentParser:
    """A parent parser with the global options `names`; the main parser and each command
    share it, so an option works before or after the command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options (before or after the command)")
    # SUPPRESS: an option not given sets nothing, so a command's parser never overwrites
    # what was given before the command.
    if "url" in names:
        group.add_argument(
            "--url",
            default=argparse.SUPPRESS,
            help=f"the PiecesOS URL (default: ${URL_ENV_VAR}, else the first PiecesOS "
            f"found on 127.0.0.1:{DISCOVERY_PORTS[0]}-{DISCOVERY_PORTS[-1]}, "
            "else http://localhost:1000)",
        )
    if "json" in names:
        group.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print JSON instead of text (download: one event a line)",
        )
    if "timeout" in names:
        group.add_argument(
            "--timeout",
            type=_seconds,
            default=argparse.SUPPRESS,
            metavar="SECONDS",
            help="connect and read timeout (default: 5 s to connect, 120 s to read)",
        )
    return parent


_EPILOG = """\
examples:
  aiopieces models                 the models, as a table
  aiopieces download Phi-2         download with a progress bar (Ctrl-C cancels)
  aiopieces show b2e7b513 --json   one model as JSON, named by an id prefix
  aiopieces emulator               a PiecesOS stand-in to try all this on
  aiopieces mcp                    the same for AI agents: an MCP server

MODEL: a model's id, a unique prefix of it, its unique name or display name.
Exit status: 0 done, 1 failed (one line on stderr says why), 130 interrupted."""


def _parser() -> argparse.ArgumentParser:
    every = _global_options(GLOBAL_OPTIONS)
    parser = argparse.ArgumentParser(
        prog="aiopieces",
        description="Manage the models of PiecesOS from the shell.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[every],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Handler,
        help_text: str,
        details: str = "",
        *,
        model: bool = False,
        options: Sequence[str] = GLOBAL_OPTIONS,
    ) -> argparse.ArgumentParser:
        """Add a command: `help_text` in the list of commands, then `details` in its help.

        It takes a MODEL argument when `model`, and the global `options` given.
        """
        parents = [every] if options == GLOBAL_OPTIONS else [_global_options(options)]
        description = f"{help_text[0].upper()}{help_text[1:]}. {details}".strip()
        p = sub.add_parser(name, help=help_text, description=description, parents=parents)
        p.set_defaults(handler=handler, options=options)
        if model:
            p.add_argument("model", metavar="MODEL", help="id, id prefix, unique or display name")
        return p

    command(
        "models",
        cmd_models,
        "list the models: name, id, local or cloud, state, size",
        "Ids are shortened to a unique prefix, which names the model in other commands; "
        "--json prints every field.",
    )
    command("show", cmd_show, "show every field of one model", model=True)
    command(
        "download",
        cmd_download,
        "download a model with a progress bar",
        "Ctrl-C cancels the download in PiecesOS. With --json: one progress event a line.",
        model=True,
    )
    command("cancel", cmd_cancel, "cancel a model's download", model=True)
    command("load", cmd_load, "load a downloaded model into memory", model=True)
    command("unload", cmd_unload, "unload a model from memory", model=True)
    command("unload-all", cmd_unload_all, "unload every model")
    create = command(
        "create",
        cmd_create,
        "create a custom model from a JSON file or flags",
        "Flags given with --file replace the file's fields. PiecesOS never makes a "
        "duplicate: the same name, version, cloud and unique give back the model there is.",
    )
    create.add_argument("--file", help="a SeededModel as JSON (`created` defaults to now)")
    create.add_argument("--name", help="the model's name (needed without --file)")
    create.add_argument("--version", help="its version (default: 1.0.0)")
    create.add_argument(
        "--cloud", action="store_true", default=None, help="a cloud model (default: local)"
    )
    types = ", ".join(e.value for e in ModelTypeEnum if e.value != "UNKNOWN")
    create.add_argument(
        "--type",
        type=_enum_flag(ModelTypeEnum),
        help=f"{types} (default: BALANCED)",
    )
    create.add_argument(
        "--usage",
        type=_enum_flag(ModelUsageEnum),
        help="what it is for (default: CODE_CONVERSATION; all values below)",
    )
    create.add_argument("--description", help="a description")
    create.add_argument("--unique", help="a unique name to refer to it by")
    usages = ", ".join(e.value for e in ModelUsageEnum if e.value != "UNKNOWN")
    create.epilog = (
        f"USAGE is one of {usages}. --type and --usage ignore case; a value aiopieces "
        "does not know (PiecesOS adds some in most releases) is sent as given, with a "
        "warning."
    )
    update = command(
        "update",
        cmd_update,
        "update a custom model from its JSON",
        "Edit what `show MODEL --json` prints, then pass the file; only the fields you "
        "changed are sent back changed.",
    )
    update.add_argument("file", metavar="FILE", help="the model as JSON")
    command("delete", cmd_delete, "delete a custom model", model=True)
    command(
        "score",
        cmd_score,
        "tell PiecesOS a model was used",
        "PiecesOS ranks models by these points (a `reuse` increment).",
        model=True,
    )
    command(
        "watch",
        cmd_watch,
        "print model changes as they happen",
        "One line per added, updated or deleted model until Ctrl-C; with --json, one "
        "JSON object a line, the first saying how many models are watched.",
    )
    command("health", cmd_health, "check that PiecesOS answers")
    command("version", cmd_version, "show the PiecesOS version (--version: this tool's)")
    command(
        "delete-cache",
        cmd_delete_cache,
        "delete an LLM's downloaded data",
        "The model stays known to PiecesOS, to download again.",
        model=True,
    )

    demo = command(
        "demo",
        cmd_demo,
        "walk a model's lifecycle (on the bundled emulator if no PiecesOS runs)",
        "Read-only on a real PiecesOS unless --write: then it downloads, loads and "
        "unloads a small local LLM, creates, updates and deletes a custom model, and "
        "deletes the LLM's cache.",
        options=("url", "timeout"),
    )
    demo.add_argument(
        "--write", action="store_true", help="also change a real PiecesOS, as described above"
    )
    emulator = command(
        "emulator",
        cmd_emulator,
        "serve the PiecesOS emulator until Ctrl-C",
        "Point any PiecesOS client at the URL it prints (also: python -m aiopieces.testing).",
        options=(),
    )
    emulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    emulator.add_argument(
        "--port", type=int, default=39300, help="port to listen on (default: %(default)s)"
    )
    emulator.add_argument(
        "--download-interval",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="pause between a download's progress events (default: %(default)s)",
    )
    emulator.add_argument(
        "--shape",
        choices=["pieces", "schema"],
        default="pieces",
        help="pieces: what PiecesOS really sends (default); schema: schema-complete",
    )
    mcp = command(
        "mcp",
        cmd_mcp,
        "serve model management to AI agents (Model Context Protocol)",
        "Over stdio, for an MCP host to start, or with --http over streamable HTTP on "
        "127.0.0.1. Needs the mcp extra: pip install 'aiopieces[mcp]'.",
        options=("url", "timeout"),
    )
    mcp.add_argument(
        "--emulator", action="store_true", help="serve the bundled PiecesOS emulator's models"
    )
    mcp.add_argument(
        "--http", action="store_true", help="serve http://HOST:PORT/mcp instead of stdio"
    )
    mcp.add_argument(
        "--host", default="127.0.0.1", help="HTTP address, loopback only (default: %(default)s)"
    )
    mcp.add_argument("--port", type=int, default=8000, help="HTTP port (default: %(default)s)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; global options may come before or after the command."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name in GLOBAL_OPTIONS:
        if hasattr(args, name) and name not in args.options:
            parser.error(f"`{args.command}` takes no --{name}")
    args.url = getattr(args, "url", None)
    args.json = getattr(args, "json", False)
    args.timeout = getattr(args, "timeout", None)
    return args


def _error_line(exc: BaseException, args: argparse.Namespace) -> str:
    """The one line an expected failure prints."""
    if isinstance(exc, PiecesConnectionError):
        where = "" if args.url or os.environ.get(URL_ENV_VAR) else " (none was set and none found)"
        return (
            f"cannot reach PiecesOS at {exc.url}: {exc.reason}. Is PiecesOS running? "
            f"Set its URL with --url or {URL_ENV_VAR}{where}."
        )
    if isinstance(exc, PiecesAPIError):
        detail = str(exc).partition(f" answered {exc.status}: ")[2] or str(exc)
        if exc.body.lstrip().startswith("<"):  # a web page: not PiecesOS, most likely
            return (
                f"{exc.url} answered {exc.status}: {detail}. Is this PiecesOS? "
                f"Set its URL with --url or {URL_ENV_VAR}."
            )
        return f"PiecesOS answered {exc.status}: {detail}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 success, 1 expected failure, 130 Ctrl-C)."""
    args = parse_args(argv)
    try:
        asyncio.run(args.handler(args))
        sys.stdout.flush()  # here, where a closed pipe can be caught
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`aiopieces models | head`): stop quietly, as `cat` would.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (PiecesError, CLIError) as exc:
        print(f"error: {_error_line(exc, args)}", file=sys.stderr)
        return 1
    return 0
