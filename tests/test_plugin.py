"""The pytest plugin, used the way the README tells users to use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"


def readme_section() -> str:
    return README.read_text().split("## Testing your app", 1)[1].split("\n## ", 1)[0]


def readme_user_test() -> str:
    return re.findall(r"```python\n(.*?)```", readme_section(), flags=re.S)[0]


def readme_pytest_config() -> str:
    return re.findall(r"```toml\n(.*?)```", readme_section(), flags=re.S)[0]


def test_the_readme_user_test_passes_in_a_project_with_no_configuration(
    pytester: pytest.Pytester,
) -> None:
    """A user's own project: an empty pytest.ini, pytest-asyncio in its default strict mode."""
    pytester.makepyfile(test_user_app=readme_user_test())
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["asyncio: mode=*STRICT*"])
    result.assert_outcomes(passed=2, warnings=0)


def test_the_readme_user_test_passes_under_the_readme_configuration_without_marks(
    pytester: pytest.Pytester,
) -> None:
    """The README's auto-mode `pyproject.toml`, and the test with its `pytestmark` left out."""
    config = readme_pytest_config()
    assert 'asyncio_mode = "auto"' in config
    pytester.makepyprojecttoml(config)
    code = readme_user_test()
    marks = [line for line in code.splitlines() if line.startswith("pytestmark = ")]
    assert len(marks) == 1
    pytester.makepyfile(test_user_app=code.replace(marks[0], ""))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["asyncio: mode=*AUTO*"])
    result.assert_outcomes(passed=2, warnings=0)
    assert "Warning" not in result.stderr.str()  # the loop scope is set: nothing to say


def test_an_unmarked_async_test_in_strict_mode_is_told_what_to_do(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_user_app="""
async def test_unmarked(pieces_client):
    await pieces_client.list_models()
"""
    )
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_unmarked is an async test that pytest-asyncio will not run: *"
            'pytestmark = pytest.mark.asyncio*asyncio_mode = "auto"*'
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_user_test_can_fail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user_app="""
async def test_wrong(pieces_client):
    assert len((await pieces_client.list_models()).iterable) == 0
"""
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)


def test_a_leaked_session_fails_the_run_under_our_settings(pytester: pytest.Pytester) -> None:
    """The suite's own guard: ResourceWarnings and unclosed sessions are errors."""
    project = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    settings = project.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    settings = settings.replace('testpaths = ["tests"]', 'testpaths = ["."]')
    pytester.makepyprojecttoml("[tool.pytest.ini_options]" + settings)
    pytester.makepyfile(
        test_leak="""
import gc

import aiohttp


async def test_leaks_a_session():
    session = aiohttp.ClientSession()
    del session
    gc.collect()
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Unclosed client session*"])


def test_pieces_emulator_options_choose_the_shape(pytester: pytest.Pytester) -> None:
    """The emulator speaks like PiecesOS by default; the options fixture picks a shape."""
    pytester.makepyfile(
        test_user_app="""
import pytest


async def test_default(pieces_emulator, pieces_client):
    assert pieces_emulator.shape == "pieces"
    models = (await pieces_client.list_models()).iterable
    assert any(not m.cloud for m in models)
    local = [raw for raw in pieces_emulator.models.values() if not raw.get("cloud")]
    assert local and all("cloud" not in raw for raw in local)


class TestSchemaShape:
    @pytest.fixture
    def pieces_emulator_options(self):
        return {"shape": "schema", "download_steps": 2}

    async def test_schema(self, pieces_emulator, pieces_client):
        assert pieces_emulator.shape == "schema"
        assert all("cloud" in raw for raw in pieces_emulator.models.values())
        models = (await pieces_client.list_models()).iterable
        local = next(m for m in models if not m.cloud and not m.downloaded)
        statuses = [str(e.status) async for e in pieces_client.download(local.id)]
        assert statuses == ["INITIALIZED", "IN-PROGRESS", "COMPLETED"]
"""
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
