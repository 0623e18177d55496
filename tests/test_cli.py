"""The `aiopieces` command, run as a subprocess against the emulator."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from aiopieces import AsyncPiecesClient
from aiopieces.testing import PiecesOSEmulator

from .test_client import LOCAL_DOWNLOADED, LOCAL_NOT_DOWNLOADED, free_port, model_id, seeded


async def cli(*args: str, url: str | None = None) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "aiopieces"]
    if url:
        command += ["--url", url]
    env = {k: v for k, v in os.environ.items() if k != "PIECES_OS_URL"}
    env["COLUMNS"] = "160"
    result = await anyio.run_process([*command, *args], env=env, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_models_table(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("models", url=pieces_emulator.url)
    assert code == 0
    assert f"{len(pieces_emulator.models)} models" in out
    assert "GPT-4o" in out and "cloud" in out and "local" in out


async def test_models_json(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("--json", "models", url=pieces_emulator.url)
    assert code == 0
    assert [m["id"] for m in json.loads(out)] == list(pieces_emulator.models)


async def test_download_by_display_name(pieces_emulator: PiecesOSEmulator) -> None:
    code, out, _ = await cli("download", LOCAL_NOT_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0, out
    assert "COMPLETED" in out and "100%" in out
    assert pieces_emulator.model(model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)).downloaded


async def test_download_json_events(pieces_emulator: PiecesOSEmulator) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    code, out, _ = await cli("--json", "download", target, url=pieces_emulator.url)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[:2] == [{"status": "UNKNOWN"}, {"status": "INITIALIZED", "percentage": 0}]
    assert events[-1] == {"status": "COMPLETED", "percentage": 100}
    assert len(events) == 12


async def test_failed_download_exits_non_zero(pieces_emulator: PiecesOSEmulator) -> None:
    pieces_emulator.fail_download(model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED), 30)
    code, _, err = await cli("download", LOCAL_NOT_DOWNLOADED, url=pieces_emulator.url)
    assert code == 1 and "FAILED" in err


async def test_show_load_unload_unload_all(pieces_emulator: PiecesOSEmulator) -> None:
    unique = pieces_emulator.models[model_id(pieces_emulator, LOCAL_DOWNLOADED)]["unique"]
    code, out, _ = await cli("--json", "show", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["name"] == LOCAL_DOWNLOADED
    code, out, _ = await cli("--json", "load", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["loaded"] is True
    code, out, _ = await cli("--json", "unload", unique, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["loaded"] is False
    code, out, _ = await cli("unload-all", url=pieces_emulator.url)
    assert code == 0 and "unloaded" in out


async def test_cancel(pieces_emulator: PiecesOSEmulator) -> None:
    pieces_emulator.hold_downloads(30)
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    async with AsyncPiecesClient(pieces_emulator.url) as client:
        await client.download_model(target)
    code, out, _ = await cli("--json", "cancel", target, url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["downloading"] is False


async def test_create_update_delete_delete_cache(
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
    code, out, _ = await cli("delete-cache", LOCAL_DOWNLOADED, url=pieces_emulator.url)
    assert code == 0 and "deleted the cache" in out
    code, out, _ = await cli("delete", created["id"], url=pieces_emulator.url)
    assert code == 0 and created["id"] not in pieces_emulator.models
    code, out, _ = await cli("--json", "create", "--name", "flag-model", url=pieces_emulator.url)
    assert code == 0 and json.loads(out)["name"] == "flag-model"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "no-such-model"], "no model is named 'no-such-model'"),
        (["delete", "GPT-4o"], "only custom models"),
        (["load", LOCAL_NOT_DOWNLOADED], "must be downloaded"),
    ],
)
async def test_expected_failures_are_one_line(
    pieces_emulator: PiecesOSEmulator, args: list[str], message: str
) -> None:
    code, _, err = await cli(*args, url=pieces_emulator.url)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


async def test_unreachable_pieces_os_is_one_line() -> None:
    code, _, err = await cli("models", url=f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "Is PiecesOS running?" in err and "Traceback" not in err


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
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    command = [sys.executable, "-m", "aiopieces", "--url", pieces_emulator.url, "--json"]
    async with await anyio.open_process([*command, "download", target]) as process:
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


async def test_the_console_script_is_installed(pieces_emulator: PiecesOSEmulator) -> None:
    script = Path(sys.executable).parent / "aiopieces"
    assert script.exists(), "pip install -e . installs the `aiopieces` command"
    result = await anyio.run_process(
        [str(script), "--url", pieces_emulator.url, "--json", "models"], check=False
    )
    assert result.returncode == 0
    assert len(json.loads(result.stdout)) == len(pieces_emulator.models)


async def test_a_file_of_the_wrong_shape_is_one_line(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    bad = tmp_path / "seed.json"
    bad.write_text('{"name": 1}')
    code, _, err = await cli("create", "--file", str(bad), url=pieces_emulator.url)
    assert code == 1 and "is not a SeededModel" in err and "Traceback" not in err


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
