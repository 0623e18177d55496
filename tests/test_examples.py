"""Every example runs, as a user would run it, against the emulator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from aiopieces.testing import PiecesOSEmulator

EXAMPLES = Path(__file__).parent.parent / "examples"

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


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
async def test_example_runs(pieces_emulator: PiecesOSEmulator, script: str) -> None:
    env = {**os.environ, "PIECES_OS_URL": pieces_emulator.url, "COLUMNS": "120"}
    result = await anyio.run_process([sys.executable, str(EXAMPLES / script)], env=env, check=False)
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    for expected in EXPECTED[script]:
        assert expected in output, output
