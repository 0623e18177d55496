"""Every code block in the README runs as written (against the emulator).

Each script runs as a user would run it: `python -c` from an empty temporary directory,
which carries none of this project's configuration.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from aiopieces.testing import PiecesOSEmulator

from .helpers import BOUND

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
# The user test of "Testing your app" runs under pytest in test_plugin.py.
USER_TEST = next(code for code in PYTHON if "def test_" in code)
SCRIPTS = [code for code in PYTHON if code is not USER_TEST]
# Blocks name PiecesOS's usual port; here it is the emulator's.
USUAL_URL = "http://localhost:39300"


def test_every_block_is_a_known_kind() -> None:
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash", "toml", "json", "text", ""}
    for lang, code in BLOCKS:
        if lang == "json":
            json.loads(code)  # a host's config a reader copies must parse
    assert len(SCRIPTS) >= 5
    for code in PYTHON:
        ast.parse(code)


def test_the_two_setup_commands_come_first() -> None:
    first_lang, first = BLOCKS[0]
    assert first_lang == "bash"
    lines = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    assert lines == [
        "python3 -m pip install nox && nox -s demo",
        "python3 -m pip install nox && nox -s tests",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert lines[1] in ci.splitlines()  # CI runs exactly the README's test command
    noxfile = (ROOT / "noxfile.py").read_text()
    assert "def demo(" in noxfile and "def tests(" in noxfile


def the_note_under_the_setup_commands() -> str:
    after = README.split(BLOCKS[0][1], 1)[1].removeprefix("```").lstrip("\n")
    return after.split("\n\n", 1)[0]


def test_right_under_the_setup_commands_a_line_says_what_to_do_on_debian() -> None:
    note = the_note_under_the_setup_commands()
    assert "Debian or Ubuntu" in note and "externally-managed-environment" in note
    assert "`pipx run nox -s demo`" in note and "`pipx run nox -s tests`" in note
    assert "python3 -m venv .venv && . .venv/bin/activate" in note


@pytest.mark.skipif(shutil.which("bash") is None, reason="the README's line is for a POSIX shell")
def test_the_virtualenv_the_note_gives_is_where_the_setup_commands_then_install(
    tmp_path: Path,
) -> None:
    """After the note's command, `python3 -m pip` (the setup commands' pip) is the venv's."""
    note = the_note_under_the_setup_commands()
    command = next(c for c in re.findall(r"`([^`]+)`", " ".join(note.split())) if "venv" in c)
    # `python3` is whatever Python the user has: here, the one running the tests.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    script = f"{command} && python3 -m pip --version && python3 -c 'import sys; print(sys.prefix)'"
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pip_line, prefix = result.stdout.strip().splitlines()[-2:]
    venv = (tmp_path / ".venv").resolve()
    assert Path(prefix).resolve() == venv
    assert str(venv) in pip_line  # pip installs into the venv, not the system Python


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
async def test_python_block_runs(index: int, tmp_path: Path) -> None:
    # The official SDK cannot decode what PiecesOS really sends, so the migration block
    # that uses it runs against the schema-complete shape; every other block against
    # the realistic one.
    shape = "schema" if "pieces_os_client" in SCRIPTS[index] else "pieces"
    async with PiecesOSEmulator(shape=shape) as emulator:
        code = SCRIPTS[index].replace(USUAL_URL, emulator.url)
        env = {**os.environ, "PIECES_OS_URL": emulator.url}
        with anyio.fail_after(BOUND):
            result = await anyio.run_process(
                [sys.executable, "-c", code], env=env, check=False, cwd=tmp_path
            )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, f"{code}\n---\n{output}"
