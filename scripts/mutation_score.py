"""The mutation score of the last `mutmut run`, less the survivors accepted as equivalent.

Run by `nox -s mutate` after mutmut, in the checkout's root:

    python scripts/mutation_score.py [--min 90] [PATTERN ...]

It asks mutmut for every mutant's result (`mutmut results --all true`), sets aside the
survivors listed in `scripts/mutation_survivors.txt` (one per line, `name: why it is
equivalent`), and prints the score per module and in all:

    killed / (mutants - accepted survivors - skipped)

A timeout counts as killed (the mutant hung a test that has a deadline). Anything else
that is not killed, `no tests` included, counts against the score. PATTERNs (fnmatch, as
given to `mutmut run`) limit the score to the mutants they match: the quick mode. It exits
1 when the score is under `--min`, and lists the survivors to look at.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from collections import Counter
from pathlib import Path

SURVIVORS_FILE = Path(__file__).with_name("mutation_survivors.txt")
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_COUNTED = {"skipped"}


def load_accepted(path: Path = SURVIVORS_FILE) -> dict[str, str]:
    """The accepted survivors: mutant name -> the one line that says why it is equivalent."""
    accepted: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, why = line.partition(": ")
        if not sep or not why.strip():
            raise SystemExit(f"{path}:{number}: expected `mutant name: why`, got {line!r}")
        accepted[name.strip()] = why.strip()
    return accepted


def parse_results(text: str) -> dict[str, str]:
    """mutmut's `results --all true` output: mutant name -> status."""
    results: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("aiopieces."):
            results[name] = status
    return results


def module_of(mutant: str) -> str:
    """`aiopieces._retry.x_backoff__mutmut_5` -> `aiopieces._retry`."""
    return mutant.rsplit(".", 1)[0]


def main(argv: list[str] | None = None) -> int:
    """Print the score; 1 when it is under the minimum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="lowest passing score, in %%")
    parser.add_argument("patterns", nargs="*", help="score only the mutants matching these")
    args = parser.parse_args(argv)

    answer = subprocess.run(
        ["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    results = parse_results(answer.stdout)
    if args.patterns:
        results = {
            name: status
            for name, status in results.items()
            if any(fnmatch.fnmatch(name, pattern) for pattern in args.patterns)
        }
    if not results:
        print("no mutants: run `mutmut run` first (or check the patterns)", file=sys.stderr)
        return 1
    accepted = load_accepted()

    counted: Counter[str] = Counter()
    killed: Counter[str] = Counter()
    to_look_at: list[str] = []
    for name, status in sorted(results.items()):
        if status in NOT_COUNTED or (status not in KILLED and name in accepted):
            continue
        module = module_of(name)
        counted[module] += 1
        if status in KILLED:
            killed[module] += 1
        else:
            to_look_at.append(f"{name}: {status}")

    width = max(len(module) for module in counted)
    for module in sorted(counted):
        share = 100 * killed[module] / counted[module]
        print(f"{module:<{width}}  {killed[module]:5d} / {counted[module]:5d}  {share:5.1f}%")
    total, total_killed = sum(counted.values()), sum(killed.values())
    score = 100 * total_killed / total
    stale = sorted(set(accepted) - set(results)) if not args.patterns else []
    print(
        f"{'all':<{width}}  {total_killed:5d} / {total:5d}  {score:5.1f}%"
        f"  ({sum(1 for n in results if n in accepted and results[n] not in KILLED)}"
        " accepted survivors set aside)"
    )
    if stale:
        print(f"{len(stale)} accepted survivors no longer exist; remove them:", *stale, sep="\n  ")
    if to_look_at:
        print("not killed (`mutmut show NAME` shows the change):", *to_look_at, sep="\n  ")
    if score < args.min:
        print(f"mutation score {score:.1f}% is under {args.min:.0f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
