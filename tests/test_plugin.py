"""The pytest plugin, used the way the README tells users to use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"


def readme_user_test() -> str:
    section = README.read_text().split("## Testing your app", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def test_the_readme_user_test_passes_with_only_the_documented_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user_app=readme_user_test())
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


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
