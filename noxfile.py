"""Automation: `nox -s tests` (what CI runs), `demo`, `lint`, `typecheck`, `examples`, `bench`,
`soak`, `mutate`."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (pytest exits 5 when it collects nothing: a failure here)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Walk a model lifecycle; starts the bundled emulator when no PiecesOS answers."""
    session.install("-e", ".[cli]")
    session.run("python", "-m", "aiopieces", "demo", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the examples."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "aiopieces", "examples", "scripts")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example against the emulator."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/test_examples.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the official SDK and raw aiohttp; prints medians and ratios."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """The randomised hostile-server test at length: 20,000 runs (AIOPIECES_CHAOS_RUNS and
    AIOPIECES_CHAOS_SEED override; the test prints the seed that reproduces a failure)."""
    session.install("-e", ".[test]")
    runs = os.environ.get("AIOPIECES_CHAOS_RUNS", "20000")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "tests/faults/test_chaos.py",
        *session.posargs,
        env={"AIOPIECES_CHAOS_RUNS": runs, "AIOPIECES_CHAOS_MAX_FAILURES": "10"},
    )


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing of the core with mutmut, then the score (90% or the session fails).

    `nox -s mutate` runs every mutant of the modules `[tool.mutmut]` lists; a pattern runs
    a part, e.g. `nox -s mutate -- "aiopieces._retry.*"` (results are cached in `mutants/`,
    so a second run redoes only what changed). `mutmut show NAME` shows one mutant.
    """
    session.install("-e", ".[test]", "mutmut==3.8.1")
    # A few chaos runs: mutants are judged by the tests that run the mutated function,
    # and the chaos test runs nearly all of them.
    env = {"AIOPIECES_CHAOS_RUNS": "30"}
    # Two mutants per core: the tests mostly wait on sockets and timers, not the CPU.
    children = str(2 * (os.cpu_count() or 1))
    session.run("mutmut", "run", "--max-children", children, *session.posargs, env=env)
    session.run("python", "scripts/mutation_score.py", *session.posargs)
