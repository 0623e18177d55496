"""What the CLI looks like: in a terminal (a pseudo-terminal) and piped, at 80 columns and
narrower; every help screen; and every global option before and after every command.

These guard a class of problems, not one: a new column, command or option that does not
fit 80 columns, leaves a header blank, or ignores a global option fails here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pytest
from rich.cells import cell_len

from aiopieces import AsyncPiecesClient
from aiopieces._cli import _parser
from aiopieces.testing import PiecesOSEmulator

from .helpers import (
    CLOUD,
    LOCAL_DOWNLOADED,
    LOCAL_NOT_DOWNLOADED,
    SCRIPT,
    cli,
    cli_env,
    model_id,
    seeded,
)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]")
HEADERS = ["name", "id", "where", "state", "size"]


def _read_to_eof(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def cli_tty(*args: str, columns: int = 80) -> tuple[int, list[str], str]:
    """Run the console script with a terminal `columns` wide as its stdout.

    Returns the status, every line the terminal showed (escape codes removed; each
    redraw of a progress bar is a line of its own) and stderr.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**cli_env(columns), "TERM": "xterm-256color"}
    try:
        process = await anyio.open_process(
            [str(SCRIPT), *args], stdin=subprocess.DEVNULL, stdout=slave, env=env
        )
        os.close(slave)
        slave = -1
        async with process:
            raw = await anyio.to_thread.run_sync(_read_to_eof, master)
            assert process.stderr is not None
            err = b""
            with pytest.raises(anyio.EndOfStream):
                while True:
                    err += await process.stderr.receive()
            code = await process.wait()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = _ANSI.sub("", raw.decode())
    return code, re.split(r"\r\n|\r|\n", text), err.decode()


def assert_fits(lines: list[str], columns: int) -> None:
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, f"wider than {columns} columns:\n" + "\n".join(too_wide)


def table_cells(lines: list[str], separator: str) -> list[list[str]]:
    """The cells of each row of a rich table drawn with `separator` between cells."""
    return [
        [cell.strip() for cell in line.strip().strip(separator).split(separator)]
        for line in lines
        if line.strip().startswith(separator)
    ]


# -- models --------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 64, 120])
async def test_models_in_a_terminal_fit_and_label_every_column(
    pieces_emulator: PiecesOSEmulator, columns: int
) -> None:
    code, lines, err = await cli_tty("models", "--url", pieces_emulator.url, columns=columns)
    assert code == 0, err
    assert_fits(lines, columns)
    assert table_cells(lines, "┃") == [HEADERS]  # no header blank, none cut
    rows = table_cells(lines, "│")
    assert all(len(row) == len(HEADERS) for row in rows)
    for index, header in enumerate(HEADERS):
        assert any(row[index] for row in rows), f"column {header!r} is blank"
    if columns >= 80:  # every name whole on one line
        names = {row[0] for row in rows}
        assert names == {m["name"] for m in pieces_emulator.models.values()}


async def test_models_piped_are_aligned_lines_that_fit(pieces_emulator: PiecesOSEmulator) -> None:
    for columns in (80, 40):  # piped: one model a line, whatever COLUMNS says
        code, out, _ = await cli("models", url=pieces_emulator.url, columns=columns)
        assert code == 0
        lines = out.splitlines()
        assert_fits(lines, 80)
        rows = [re.split(r"\s{2,}", line) for line in lines]
        assert rows[0] == [h.upper() for h in HEADERS]
        assert [row[0] for row in rows[1:]] == [m["name"] for m in pieces_emulator.models.values()]
        assert all(len(row) == len(HEADERS) for row in rows)
        starts = [lines[0].index(header) for header in rows[0][1:]]
        for line in lines[1:]:  # aligned: every cell starts under its header
            assert all(line[p - 1] == " " != line[p] for p in starts), line


async def test_models_with_sizes_fit(pieces_emulator_schema: PiecesOSEmulator) -> None:
    code, lines, _ = await cli_tty("models", "--url", pieces_emulator_schema.url)
    assert code == 0
    assert_fits(lines, 80)
    assert any(row[4].endswith("GB") for row in table_cells(lines, "│"))
    code, out, _ = await cli("models", url=pieces_emulator_schema.url)
    assert_fits(out.splitlines(), 80)


@pytest.fixture
async def pieces_emulator_schema() -> AsyncIterator[PiecesOSEmulator]:
    """An emulator in the schema shape: every local model has a size."""
    async with PiecesOSEmulator(shape="schema", download_interval=0.01) as emulator:
        yield emulator


# -- show, download, demo in a terminal ------------------------------------------------------


async def test_show_in_a_terminal_fits(pieces_emulator: PiecesOSEmulator) -> None:
    code, lines, _ = await cli_tty("show", CLOUD, "--url", pieces_emulator.url)
    assert code == 0
    assert_fits(lines, 80)
    assert {"id", "name", "created"} <= {row[0] for row in table_cells(lines, "│")}


async def test_download_bar_shows_size_speed_and_time_left(
    pieces_emulator_schema: PiecesOSEmulator,
) -> None:
    code, lines, err = await cli_tty(
        "download", LOCAL_NOT_DOWNLOADED, "--url", pieces_emulator_schema.url
    )
    assert code == 0, err
    assert_fits(lines, 80)
    final = next(line for line in reversed(lines) if "100%" in line)
    size = pieces_emulator_schema.model(
        model_id(pieces_emulator_schema, LOCAL_NOT_DOWNLOADED)
    ).bytes
    assert size is not None
    assert re.search(r"\d/[\d.]+ GiB", final) and "/s" in final and "0:00:00" in final, final
    assert "done" in final and LOCAL_NOT_DOWNLOADED in final


async def test_download_bar_without_a_size_shows_the_percentage(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    code, lines, _ = await cli_tty("download", LOCAL_NOT_DOWNLOADED, "--url", pieces_emulator.url)
    assert code == 0
    assert_fits(lines, 80)
    final = next(line for line in reversed(lines) if "100%" in line)
    assert "GiB" not in final and "/s" not in final


async def test_download_of_a_cloud_model_draws_no_bar_in_a_terminal(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    code, lines, err = await cli_tty("download", CLOUD, "--url", pieces_emulator.url)
    assert code == 1 and "cloud model" in err
    assert not any(line.strip() for line in lines), lines


async def test_demo_fits_in_a_terminal_and_piped(pieces_emulator: PiecesOSEmulator) -> None:
    code, lines, err = await cli_tty("demo", "--write", "--url", pieces_emulator.url)
    assert code == 0, err
    assert_fits(lines, 80)
    assert table_cells(lines, "┃") == [HEADERS]
    code, out, err = await cli("demo", url=pieces_emulator.url)
    assert code == 0, err
    assert_fits(out.splitlines(), 80)
    assert any(
        re.split(r"\s{2,}", line) == [h.upper() for h in HEADERS] for line in out.splitlines()
    )


# -- help ------------------------------------------------------------------------------------


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _commands() -> list[str]:
    return sorted(_subparsers())


@pytest.mark.parametrize("command", ["", *_commands()])
async def test_help_fits_80_columns(command: str) -> None:
    code, out, _ = await cli(*([command] if command else []), "--help")
    assert code == 0
    assert_fits(out.splitlines(), 80)
    if command:
        assert all(option in out for option in ("--url", "--json", "--timeout")) == (
            command not in ("demo", "emulator", "mcp")
        )


def test_every_command_and_option_explains_itself() -> None:
    parsers = {"aiopieces": _parser(), **_subparsers()}
    for name, parser in parsers.items():
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions)
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


# -- global options before and after every command ---------------------------------------------

Setup = Callable[[PiecesOSEmulator, Path], Awaitable[list[str]]]


async def _custom_model_file(emulator: PiecesOSEmulator, tmp_path: Path) -> list[str]:
    async with AsyncPiecesClient(emulator.url) as client:
        model = await client.create_model(seeded(name="to update"))
    path = tmp_path / "model.json"
    path.write_bytes(msgspec.json.encode(model))
    return [str(path)]


async def _custom_model(emulator: PiecesOSEmulator, tmp_path: Path) -> list[str]:
    async with AsyncPiecesClient(emulator.url) as client:
        return [(await client.create_model(seeded(name="to delete"))).id]


def _args(*args: str) -> Setup:
    async def setup(emulator: PiecesOSEmulator, tmp_path: Path) -> list[str]:
        return list(args)

    return setup


#: A valid invocation of every client command (arguments after the command's name).
INVOCATIONS: dict[str, Setup] = {
    "models": _args(),
    "show": _args(CLOUD),
    "download": _args(LOCAL_NOT_DOWNLOADED),
    "cancel": _args(LOCAL_NOT_DOWNLOADED),
    "load": _args(LOCAL_DOWNLOADED),
    "unload": _args(LOCAL_DOWNLOADED),
    "unload-all": _args(),
    "create": _args("--name", "made here"),
    "update": _custom_model_file,
    "delete": _custom_model,
    "delete-cache": _args(LOCAL_DOWNLOADED),
    "score": _args(CLOUD),
    "health": _args(),
    "version": _args(),
}
#: Commands that run until interrupted: their options are tested in test_cli.py.
ENDLESS_COMMANDS = {"watch"}
#: Commands that take only some of the global options.
NOT_CLIENT_COMMANDS = {"demo", "emulator", "mcp"}


def test_every_command_has_an_invocation_below() -> None:
    # A new command must be added to INVOCATIONS, and so gets its global options tested.
    assert set(_commands()) - NOT_CLIENT_COMMANDS - ENDLESS_COMMANDS == set(INVOCATIONS)


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("command", sorted(INVOCATIONS))
async def test_global_options_before_or_after_the_command(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path, command: str, position: str
) -> None:
    args = [command, *await INVOCATIONS[command](pieces_emulator, tmp_path)]
    options = ["--url", pieces_emulator.url, "--json", "--timeout", "30"]
    code, out, err = await cli(*(options + args if position == "before" else args + options))
    assert code == 0, err
    for line in out.splitlines() if command == "download" else [out]:
        json.loads(line)  # --json was applied
    assert len(pieces_emulator.requests) > 0  # --url was applied


@pytest.mark.parametrize("position", ["before", "after"])
async def test_demo_takes_url_and_timeout_before_or_after(
    pieces_emulator: PiecesOSEmulator, position: str
) -> None:
    options = ["--url", pieces_emulator.url, "--timeout", "30"]
    code, out, err = await cli(
        *([*options, "demo"] if position == "before" else ["demo", *options])
    )
    assert code == 0 and "Read-only" in out, err


def test_the_main_parser_and_every_command_share_the_global_options() -> None:
    for name, parser in _subparsers().items():
        options = {o.lstrip("-") for a in parser._actions for o in a.option_strings}
        expected = {"url", "json", "timeout"} if name not in NOT_CLIENT_COMMANDS else set()
        assert expected <= options, name
