"""Every example runs as a user would run it: `python examples/X.py`, from a directory of
their own (an empty temporary one, carrying none of this project's configuration).

Examples are what people copy, so their failures are tested too: an expected error is
one line on stderr and exit status 1, never a traceback, and Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

from aiopieces import AsyncPiecesClient, ModelDownloadProgressStatusEnum
from aiopieces.testing import PiecesOSEmulator

EXAMPLES = Path(__file__).parent.parent / "examples"
#: Seconds an example run may take: a subprocess that imports everything, so more than
#: the in-process `helpers.BOUND`, and under pytest-timeout's 10 s so that this fires first.
BOUND = 8

EXPECTED = {
    "quickstart.py": ["Llama-3 8B Instruct", "provider"],
    "download_with_progress.py": ["downloaded"],
    "custom_model.py": ["custom=True", "returns the same model: True", "v2", "deleted"],
    "concurrent_tasks.py": ["loaded Llama-3 8B Instruct: True", "COMPLETED 100", "models,"],
    "chat_bot.py": [
        "bot> 33 models",
        "Phi-2: COMPLETED 100%",
        "Phi-2 is loaded.",
        "PiecesOS said no",
        "bot> I cannot tell which model you mean: no model has the id or name 'Nope'",
    ],
    "live_agent.py": [
        "watching 33 models",
        "task 1: used",
        "added: Team fine-tune",
        "task 2: used Team fine-tune (reuse score 1)",
        "deleted: False",
    ],
    "agent_tools.py": ['"name": "load_model"', "list_models -> 33 models", "bad arguments"],
}


def example_env(url: str) -> dict[str, str]:
    return {**os.environ, "PIECES_OS_URL": url, "COLUMNS": "120"}


async def run_example(script: str, url: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    with anyio.fail_after(BOUND):
        result = await anyio.run_process(
            [sys.executable, str(EXAMPLES / script), *args],
            env=example_env(url),
            cwd=cwd,
            check=False,
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
async def test_example_runs(pieces_emulator: PiecesOSEmulator, script: str, tmp_path: Path) -> None:
    code, out, err = await run_example(script, pieces_emulator.url, tmp_path)
    output = out + err
    assert code == 0, output
    for expected in EXPECTED[script]:
        assert expected in output, output
    assert "Traceback" not in output


@contextlib.contextmanager
def refused_url() -> Iterator[str]:
    """A URL where nothing listens: a port held bound (so no one else takes it), unlistened."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.mark.parametrize("script", sorted(EXPECTED))
async def test_with_no_pieces_os_an_example_says_so_in_one_line(
    script: str, tmp_path: Path
) -> None:
    with refused_url() as url:
        code, out, err = await run_example(script, url, tmp_path)
    assert "Traceback" not in out + err
    if script == "chat_bot.py":  # a bot stays up, and says so in its replies
        assert code == 0 and not err, err
        replies = [line for line in out.splitlines() if line.startswith("bot> ")]
        assert replies[:-1] and all("PiecesOS is not answering" in r for r in replies[:-1])
        return
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: cannot reach PiecesOS at http://127.0.0.1:"), err


async def test_download_with_progress_of_an_unknown_model_is_one_line(
    pieces_emulator: PiecesOSEmulator, tmp_path: Path
) -> None:
    code, out, err = await run_example(
        "download_with_progress.py", pieces_emulator.url, tmp_path, "No Such Model"
    )
    assert code == 1, out + err
    assert err.strip() == "error: no model has the id or name 'No Such Model'"
    assert not any(method == "POST" for method, _ in pieces_emulator.requests)  # nothing started


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, anyio.Event]]:
    """A server that accepts connections and never answers: every example waits on it.

    The event is set once a connection comes in, so the example is inside its event loop.
    """
    connected = anyio.Event()

    async def hold(stream: anyio.abc.SocketStream) -> None:
        connected.set()
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            async with stream:
                async for _ in stream:  # read whatever comes, answer nothing, until EOF
                    pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        try:
            yield f"http://127.0.0.1:{port}", connected
        finally:
            tg.cancel_scope.cancel()


async def interrupt(process: anyio.abc.Process) -> tuple[int, str]:
    """Ctrl-C: SIGINT to the example, then its exit status and stderr once it is gone."""
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    err = b""
    with anyio.fail_after(BOUND):
        async for chunk in process.stderr:
            err += chunk
        code = await process.wait()
    return code, err.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is how Ctrl-C reaches a process")
@pytest.mark.parametrize("script", sorted(EXPECTED))
async def test_ctrl_c_exits_130_with_no_traceback(script: str, tmp_path: Path) -> None:
    async with silent_server() as (url, connected):
        process = await anyio.open_process(
            [sys.executable, str(EXAMPLES / script)], env=example_env(url), cwd=tmp_path
        )
        async with process:
            with anyio.fail_after(BOUND):
                await connected.wait()  # waiting on PiecesOS: inside its event loop
            code, err = await interrupt(process)
    assert code == 130, err
    assert "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is how Ctrl-C reaches a process")
async def test_ctrl_c_during_a_download_cancels_it_and_exits_130(
    pieces_emulator: PiecesOSEmulator, pieces_client: AsyncPiecesClient, tmp_path: Path
) -> None:
    phi = (await pieces_client.list_models()).find("Phi-2")
    pieces_emulator.hold_downloads(at_percentage=50)  # runs to 50%, then waits
    async with pieces_client.download_progress(phi.id) as events:
        process = await anyio.open_process(
            [sys.executable, str(EXAMPLES / "download_with_progress.py"), "Phi-2"],
            env=example_env(pieces_emulator.url),
            cwd=tmp_path,
        )
        async with process:
            with anyio.fail_after(BOUND):
                async for event in events:  # the example's download, seen from here
                    if event.status == ModelDownloadProgressStatusEnum.IN_PROGRESS:
                        break
            code, err = await interrupt(process)
        with anyio.fail_after(BOUND):
            statuses = [event.status async for event in events]
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "canceled"
    assert "Traceback" not in err
    # cancel_on_exit: PiecesOS was told, and the download ended there too.
    assert statuses[-1] == ModelDownloadProgressStatusEnum.CANCELED
    assert ("POST", f"/model/{phi.id}/download/cancel") in pieces_emulator.requests
    assert not pieces_emulator.running_downloads()
