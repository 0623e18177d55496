"""The `aiopieces` command, run as the installed console script against the emulator.

Output is piped (as in a script or `nox -s demo`) with `COLUMNS=80` unless a test says
otherwise; `tests/test_cli_layout.py` runs it in a terminal too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from aiopieces import AsyncPiecesClient, PiecesAPIError
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import (
    BOUND,
    CLOUD,
    LOCAL_DOWNLOADED,
    LOCAL_NOT_DOWNLOADED,
    SCRIPT,
    cli,
    cli_env,
    free_port,
    model_id,
    seeded,
)


def one_line(err: str) -> str:
    """The single line of an expected failure's stderr, checked to be that."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.exists(), "pip install -e . installs the `aiopieces` command"


# -- the commands ------------------------------------------------------------------------


async def test_models_table(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("models", url=pieces_emulator.url)
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "ID", "WHERE", "STATE", "SIZE"]
    assert len(out.splitlines()) == 1 + len(pieces_emulator.models)
    assert "GPT-4o" in out and "cloud" in out and "local" in out and "downloaded" in out


async def test_models_json(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("--json", "models", url=pieces_emulator.url)
    assert code == 0
    assert [m["id"] for m in json.loads(out)] == list(pieces_emulator.models)


async def test_a_short_id_from_the_table_names_the_model(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    _, out, _ = await cli("models", url=pieces_emulator.url)
    row = next(line for line in out.splitlines() if line.startswith(f"{CLOUD} "))
    short = row.split()[1]
    assert 8 <= len(short) < 36
    code, out, _ = await cli("show", short, "--json", url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["name"] == CLOUD


async def test_show_prints_one_field_a_line(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("show", LOCAL_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["name"] == LOCAL_DOWNLOADED and fields["downloaded"] == "true"
    assert fields["created"].endswith("ago)")  # the timestamp as people read it


async def test_download_by_display_name(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("download", LOCAL_NOT_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0, out
    assert "100%" in out and out.splitlines()[-1].startswith(f"downloaded {LOCAL_NOT_DOWNLOADED}")
    assert pieces_emulator.model(model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)).downloaded


async def test_download_of_a_downloaded_model_says_so(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("download", LOCAL_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0 and out.strip().endswith("is already downloaded")
    assert not any(path.endswith("/download") for _, path in pieces_emulator.requests)


async def test_download_json_events(pieces_emulator: PiecesOSEmulator) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    code, out, _ = await cli("--json", "download", target, url=pieces_emulator.url)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[:2] == [{"status": "UNKNOWN"}, {"status": "INITIALIZED", "percentage": 0}]
    assert events[-1] == {"status": "COMPLETED", "percentage": 100}
    assert len(events) == 12


async def test_download_of_a_cloud_model_draws_no_bar(pieces_emulator: PiecesOSEmulator) -> None:
    for args in (["download", CLOUD], ["--json", "download", CLOUD]):
        code, out, err = await cli(*args, url=pieces_emulator.url)
        assert code == 1 and out == ""
        assert "cloud model" in one_line(err)


async def test_failed_download_exits_non_zero(pieces_emulator: PiecesOSEmulator) -> None:
    pieces_emulator.fail_download(model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED), 30)
    code, out, err = await cli("download", LOCAL_NOT_DOWNLOADED, url=pieces_emulator.url)
    assert code == 1 and "ended FAILED at 30" in one_line(err)
    assert "30%" in out and "failed" in out


async def test_a_canceled_download_keeps_its_percentage(pieces_emulator: PiecesOSEmulator) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=30)
        async with (
            anyio.create_task_group() as tg,
            AsyncPiecesClient(pieces_emulator.url) as client,
        ):
            result: list[tuple[int, str, str]] = []

            async def run() -> None:
                result.append(await cli("download", LOCAL_NOT_DOWNLOADED, url=pieces_emulator.url))

            tg.start_soon(run)
            # Our own subscriber sees what the CLI's sees: the download held at 30%.
            async for event in client.download_progress(target):
                if event.percentage is not None and event.percentage >= 30:
                    await client.cancel_download(target)
                if event.is_terminal:
                    break
        code, out, err = result[0]
        assert code == 1 and "ended CANCELED" in one_line(err)
        assert "30%" in out and " 0%" not in out and "canceled" in out


async def test_actions_print_one_line(pieces_emulator: PiecesOSEmulator, tmp_path: Path) -> None:
    url = pieces_emulator.url
    unique = pieces_emulator.models[model_id(pieces_emulator, LOCAL_DOWNLOADED)]["unique"]
    expected = [
        (["load", unique], f"loaded {LOCAL_DOWNLOADED} ("),
        (["unload", unique], f"unloaded {LOCAL_DOWNLOADED} ("),
        (["unload-all"], "unloaded every model"),
        (["cancel", LOCAL_NOT_DOWNLOADED], "was not downloading: nothing to cancel"),
        (["create", "--name", "one-liner"], "created one-liner ("),
        (["delete-cache", LOCAL_DOWNLOADED], f"deleted the cache of {LOCAL_DOWNLOADED}"),
    ]
    for args, text in expected:
        code, out, err = await cli(*args, url=url)
        assert code == 0, err
        assert len(out.splitlines()) == 1 and text in out, (args, out)
    custom = next(m for m in pieces_emulator.models.values() if m["name"] == "one-liner")
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps({**custom, "description": "edited"}))
    code, out, _ = await cli("update", str(model_file), url=url)
    assert code == 0 and out == f"updated one-liner ({custom['id']})\n"
    code, out, _ = await cli("delete", custom["id"], url=url)
    assert code == 0 and out == f"deleted one-liner ({custom['id']})\n"


async def test_actions_print_the_model_as_json(pieces_emulator: PiecesOSEmulator) -> None:
    unique = pieces_emulator.models[model_id(pieces_emulator, LOCAL_DOWNLOADED)]["unique"]
    code, out, _ = await cli("--json", "show", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["name"] == LOCAL_DOWNLOADED
    code, out, _ = await cli("--json", "load", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["loaded"] is True
    code, out, _ = await cli("--json", "unload", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["loaded"] is False
    code, out, _ = await cli("--json", "unload-all", url=pieces_emulator.url)
    assert code == 0 and json.loads(out) == {"unloaded": "all"}


async def test_cancel(pieces_emulator: PiecesOSEmulator) -> None:
    pieces_emulator.hold_downloads(30)
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    async with AsyncPiecesClient(pieces_emulator.url) as client:
        await client.download_model(target)
    code, out, _ = await cli("cancel", target, url=pieces_emulator.url)
    assert code == 0 and out == f"canceled the download of {LOCAL_NOT_DOWNLOADED} ({target})\n"
    assert not pieces_emulator.model(target).downloading


async def test_create_update_delete_as_json(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_bytes(msgspec.json.encode(seeded(name="cli-model")))
    code, out, _ = await cli("--json", "create", "--file", str(seed), url=pieces_emulator.url)
    assert code == 0
    created = json.loads(out)
    assert created["custom"] is True
    created["description"] = "edited on the command line"
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(created))
    code, out, _ = await cli("--json", "update", str(model_file), url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["description"] == "edited on the command line"
    code, out, _ = await cli("--json", "delete-cache", LOCAL_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["model"]["id"] == model_id(
        pieces_emulator, LOCAL_DOWNLOADED
    )
    code, out, _ = await cli("--json", "delete", created["id"], url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["id"] == created["id"]
    assert created["id"] not in pieces_emulator.models
    code, out, _ = await cli("--json", "create", "--name", "flag-model", url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["name"] == "flag-model"


# -- create: files, flags and enum values -------------------------------------------------


async def test_create_from_a_file_without_created(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    fields = msgspec.to_builtins(seeded(name="no-date"))
    del fields["created"]
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(fields))
    code, out, err = await cli("--json", "create", "--file", str(seed), url=pieces_emulator.url)
    assert code == 0, err
    assert json.loads(out)["created"]["value"].startswith(str(dt.datetime.now(dt.UTC).year))


async def test_flags_given_with_a_file_replace_its_fields(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_bytes(msgspec.json.encode(seeded(name="from-file", description="file")))
    code, out, _ = await cli(
        "--json", "create", "--file", str(seed), "--name", "from-flag", url=pieces_emulator.url
    )
    created = json.loads(out)
    assert code == 0 and created["name"] == "from-flag" and created["description"] == "file"


@pytest.mark.parametrize("flag", ["--type", "--usage"])
async def test_unknown_enum_values_are_sent_with_a_warning(
    pieces_emulator: PiecesOSEmulator, flag: str
) -> None:
    args = ["--json", "create", "--name", f"odd{flag}", flag, "BOGUS"]
    code, out, err = await cli(*args, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)[flag[2:]] == "BOGUS"
    line = one_line(err)
    assert line.startswith("warning:") and "'BOGUS' is not one aiopieces knows" in line


async def test_enum_values_ignore_case_and_typos_get_a_suggestion(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    args = ["create", "--name", "cased", "--type", "speed", "--usage", "code_generation"]
    code, _, err = await cli("--json", *args, url=pieces_emulator.url)
    assert code == 0 and err == ""
    code, _, err = await cli(
        "create", "--name", "typo", "--usage", "CODE_CONVERSATON", url=pieces_emulator.url
    )
    assert code == 0 and "did you mean CODE_CONVERSATION?" in one_line(err)


async def test_create_needs_a_file_or_a_name(pieces_emulator: PiecesOSEmulator) -> None:
    code, _, err = await cli("create", url=pieces_emulator.url)
    assert code == 1 and "create needs --file FILE or --name NAME" in one_line(err)


async def test_a_file_of_the_wrong_shape_is_one_line(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    bad = tmp_path / "seed.json"
    for text, message in [('{"name": 1}', "seed.json is not a SeededModel"), ("[]", "JSON object")]:
        bad.write_text(text)
        code, _, err = await cli("create", "--file", str(bad), url=pieces_emulator.url)
        assert code == 1 and message in one_line(err)


# -- global options, --version, errors ---------------------------------------------------------


async def test_version() -> None:
    from aiopieces import __version__

    code, out, _ = await cli("--version")
    assert code == 0 and out == f"aiopieces {__version__}\n"
    module = await anyio.run_process([sys.executable, "-m", "aiopieces", "--version"])
    assert module.stdout.decode() == out


async def test_options_that_do_not_apply_are_refused() -> None:
    for args, message in [
        (["--json", "emulator"], "`emulator` takes no --json"),
        (["--url", "http://127.0.0.1:1", "emulator"], "`emulator` takes no --url"),
        (["--json", "demo"], "`demo` takes no --json"),
        (["demo", "--json"], "unrecognized arguments: --json"),
        (["models", "--timeout", "0"], "must be more than 0 seconds"),
    ]:
        code, _, err = await cli(*args)
        assert code == 2 and message in err, (args, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "no-such-model"], "no model is named 'no-such-model'"),
        (["delete", "GPT-4o"], "PiecesOS answered 500: only custom models"),
        (["load", LOCAL_NOT_DOWNLOADED], "must be downloaded"),
    ],
)
async def test_expected_failures_are_one_line(
    pieces_emulator: PiecesOSEmulator, args: list[str], message: str
) -> None:
    code, _, err = await cli(*args, url=pieces_emulator.url)
    assert code == 1 and message in one_line(err)


async def test_unreachable_pieces_os_names_the_cli_options() -> None:
    code, _, err = await cli("models", url=f"http://127.0.0.1:{free_port()}")
    line = one_line(err)
    assert code == 1 and "Is PiecesOS running?" in line
    assert "--url or PIECES_OS_URL" in line and "AsyncPiecesClient" not in line


_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
    "<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
    + "<p>The requested URL was not found on this server.</p>\n" * 200
    + "</body></html>\n"
)


async def test_an_html_answer_is_one_line_with_its_title(serve_app: ServeApp) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=404, text=_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    url = await serve_app(app)
    code, out, err = await cli("models", url=url)
    line = one_line(err)
    assert code == 1 and out == "" and len(line) < 200
    assert "404" in line and "(404 Not Found)" in line and "--url" in line
    async with AsyncPiecesClient(url) as client:
        with pytest.raises(PiecesAPIError) as info:
            await client.list_models()
    assert info.value.body == _PAGE  # the whole body, for code that wants it
    assert str(info.value).endswith("answered 404: an HTML page (404 Not Found)")


async def test_a_text_answer_shows_its_first_line_cut_short(serve_app: ServeApp) -> None:
    body = "\n  database is locked  \nsecond line\n" + "x" * 5000

    async def locked(request: web.Request) -> web.Response:
        return web.Response(status=500, text=body, content_type="text/plain")

    async def long_line(request: web.Request) -> web.Response:
        return web.Response(status=500, text="y" * 5000, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/models", locked)
    app.router.add_get("/model/{id}", long_line)
    url = await serve_app(app)
    code, _, err = await cli("models", url=url)
    assert code == 1 and one_line(err) == "error: PiecesOS answered 500: database is locked"
    async with AsyncPiecesClient(url) as client:
        with pytest.raises(PiecesAPIError) as info:
            await client.get_model("m")
    assert info.value.body == "y" * 5000 and len(str(info.value)) < 250
    assert str(info.value).endswith("y...")


# -- demo, Ctrl-C, pipes, rich ------------------------------------------------------------------


async def test_demo_read_only_against_a_running_pieces_os(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    code, out, _ = await cli("demo", url=pieces_emulator.url)
    assert code == 0 and "Read-only" in out
    assert [m for m, _ in pieces_emulator.requests] == ["GET"]


async def test_demo_starts_the_emulator_when_nothing_answers() -> None:
    code, out, err = await cli("demo")
    assert code == 0, err
    for step in ["bundled emulator", "Downloading", "100%", "Loaded", "Unloaded", "Created"]:
        assert step in out, out
    assert "Updated its description" in out and "Deleted custom model" in out
    assert "demo complete" in out


async def test_ctrl_c_cancels_the_download_and_exits_cleanly(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=30)
        command = [str(SCRIPT), "--url", pieces_emulator.url, "--json"]
        async with await anyio.open_process(
            [*command, "download", target], env=cli_env()
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            seen = b""
            while b"INITIALIZED" not in seen:  # UNKNOWN first: PiecesOS knew no download yet
                seen += await process.stdout.receive()
            assert json.loads(seen.splitlines()[0])["status"] == "UNKNOWN"
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            err = (await process.stderr.receive()).decode()
        assert code == 130 and err.strip() == "interrupted"
        assert ("POST", f"/model/{target}/download/cancel") in pieces_emulator.requests
        assert not pieces_emulator.model(target).downloading


async def test_ctrl_c_under_the_progress_bar_cancels_too(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=30)
        command = [str(SCRIPT), "download", LOCAL_NOT_DOWNLOADED, "--url", pieces_emulator.url]
        async with (
            await anyio.open_process(command, env=cli_env()) as process,
            AsyncPiecesClient(pieces_emulator.url) as client,
        ):
            # Our own subscriber: once it sees 30%, the CLI has started the download.
            async for event in client.download_progress(target):
                if event.percentage is not None and event.percentage >= 30:
                    process.send_signal(signal.SIGINT)
                if event.is_terminal:
                    break
            code = await process.wait()
            assert process.stderr is not None
            err = (await process.stderr.receive()).decode()
        assert code == 130 and err.strip() == "interrupted"
        assert ("POST", f"/model/{target}/download/cancel") in pieces_emulator.requests


async def test_a_closed_pipe_ends_quietly(pieces_emulator: PiecesOSEmulator) -> None:
    # `aiopieces models | head -0`: the reader is gone before the table is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        command = [str(SCRIPT), "--url", pieces_emulator.url, "models"]
        result = await anyio.run_process(command, stdout=write_end, env=cli_env(), check=False)
    finally:
        os.close(write_end)
    code, err = result.returncode, result.stderr
    assert code == 141 and err == b""


async def test_without_rich_tables_ask_for_the_extra(pieces_emulator: PiecesOSEmulator) -> None:
    # rich made unimportable, as in an install without the `cli` extra.
    program = (
        "import sys; sys.modules['rich'] = None; from aiopieces._cli import main; "
        f"sys.exit(main(['--url', '{pieces_emulator.url}', 'models']))"
    )
    result = await anyio.run_process([sys.executable, "-c", program], check=False)
    err = result.stderr.decode()
    assert result.returncode == 1 and "pip install 'aiopieces[cli]'" in err
    assert "Traceback" not in err
    ok = await anyio.run_process(
        [sys.executable, "-c", program.replace("'models'", "'--json', 'models'")], check=False
    )
    assert ok.returncode == 0  # --json needs no rich


# -- the rest of the model surface --------------------------------------------------------


async def test_health_and_version(pieces_emulator: PiecesOSEmulator) -> None:
    pieces_emulator.version = "10.1.2"
    code, out, _ = await cli("health", url=pieces_emulator.url)
    assert code == 0 and out.strip() == f"{pieces_emulator.url}: ok"
    code, out, _ = await cli("version", "--json", url=pieces_emulator.url)
    assert code == 0 and json.loads(out) == {"url": pieces_emulator.url, "version": "10.1.2"}


async def test_score(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("score", "GPT-4o", url=pieces_emulator.url)
    assert code == 0 and out.startswith("scored GPT-4o") and "used 1 times" in out
    target = model_id(pieces_emulator, "GPT-4o")
    assert pieces_emulator.model(target).score is not None


async def test_watch_prints_changes_as_json_lines_until_ctrl_c(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    command = [str(SCRIPT), "--url", pieces_emulator.url, "watch", "--json"]
    with anyio.fail_after(BOUND):
        async with await anyio.open_process(command, env=cli_env()) as process:
            assert process.stdout is not None
            lines = _lines(process.stdout)
            first = json.loads(await anext(lines))
            assert first == {"watching": len(pieces_emulator.models)}
            async with AsyncPiecesClient(pieces_emulator.url) as client:
                created = await client.create_model(seeded())
            change = json.loads(await anext(lines))
            assert change["kind"] == "added" and change["model_id"] == created.id
            process.send_signal(signal.SIGINT)
            code = await process.wait()
    assert code == 130


async def _lines(stream: Any) -> AsyncIterator[str]:
    """Lines of a process's output as they come."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            buffer += await stream.receive()
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()
