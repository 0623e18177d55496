"""Every code block in the README runs as written (against the emulator)."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import anyio
import pytest

from aiopieces.testing import PiecesOSEmulator

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
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash", "text", ""}
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


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
async def test_python_block_runs(index: int) -> None:
    # The official SDK cannot decode what PiecesOS really sends, so the migration block
    # that uses it runs against the schema-complete shape; every other block against
    # the realistic one.
    shape = "schema" if "pieces_os_client" in SCRIPTS[index] else "pieces"
    async with PiecesOSEmulator(shape=shape) as emulator:
        code = SCRIPTS[index].replace(USUAL_URL, emulator.url)
        env = {**os.environ, "PIECES_OS_URL": emulator.url}
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [sys.executable, "-c", code], env=env, check=False, cwd=ROOT
            )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, f"{code}\n---\n{output}"
