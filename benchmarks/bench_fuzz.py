"""Mutation fuzzing of every reader at scale: outcomes per reader.

    python benchmarks/bench_fuzz.py [--cases 100000] [--seed 0] [--readers mrc imod ...]
                                    [--time-limit 10] [--tracebacks 3]

Runs the generators of ``tests/fuzz_targets.py`` (the same ones the CI fuzz test draws
through hypothesis) from a seeded :class:`random.Random`, spreading ``--cases`` evenly
over the readers, and prints per reader: cases, accepted, refused with a project error,
other exceptions (with the first few tracebacks), hangs (past the time limit), and the
time taken.  Exit status 1 when any reader leaked a non-project exception or hung.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_targets as ft  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="total over readers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--readers",
        nargs="+",
        default=[t.name for t in ft.TARGETS],
        choices=[t.name for t in ft.TARGETS],
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=ft.TIME_LIMIT_S,
        help="seconds per case before it counts as a hang",
    )
    parser.add_argument(
        "--tracebacks", type=int, default=3, help="distinct tracebacks shown per reader"
    )
    args = parser.parse_args(argv)

    targets = [ft.TARGET_BY_NAME[name] for name in args.readers]
    per_reader = max(1, args.cases // len(targets))
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="tomoscribe-fuzz-") as tmp:
        work = Path(tmp)
        for index, target in enumerate(targets):
            row = fuzz_one(
                target,
                work / target.name,
                per_reader,
                random.Random(args.seed * 1000 + index),
                args,
            )
            rows.append(row)
            failed |= bool(row["other"] or row["hang"])
    print_table(rows)
    return 1 if failed else 0


def fuzz_one(target: ft.Target, work: Path, cases: int, rng: random.Random, args) -> dict:
    """Run ``cases`` mutated inputs through one reader; count outcomes, keep tracebacks."""
    work.mkdir(parents=True)
    seeds = target.make_seeds(work)
    draw = ft.RandomDraw(rng)
    counts = collections.Counter()
    shown: dict[str, str] = {}
    start = time.perf_counter()
    case_path = work / f"case{target.suffix}"
    for _ in range(cases):
        seed = draw.choice(seeds)
        outcome = ft.run_case(target, ft.mutate(seed, draw), case_path, args.time_limit)
        counts[outcome.kind] += 1
        if outcome.kind in ("other", "hang"):
            key = outcome.detail.strip().splitlines()[-1] if outcome.detail else outcome.kind
            if key not in shown and len(shown) < args.tracebacks:
                shown[key] = f"[seed {seed.name}]\n{outcome.detail}"
    elapsed = time.perf_counter() - start
    label = target.name
    for text in shown.values():
        print(f"--- {label}: {text}", file=sys.stderr)
    return {
        "reader": label,
        "cases": cases,
        "accepted": counts["accepted"],
        "refused": counts["refused"],
        "other": counts["other"],
        "hang": counts["hang"],
        "seconds": elapsed,
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'reader':28} {'cases':>8} {'accepted':>9} {'refused':>8} {'other':>6} "
        f"{'hangs':>6} {'s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['reader']:28} {r['cases']:>8} {r['accepted']:>9} {r['refused']:>8} "
            f"{r['other']:>6} {r['hang']:>6} {r['seconds']:>7.1f}"
        )
    total = {
        k: sum(r[k] for r in rows)
        for k in ("cases", "accepted", "refused", "other", "hang", "seconds")
    }
    print(
        f"{'total':28} {total['cases']:>8} {total['accepted']:>9} {total['refused']:>8} "
        f"{total['other']:>6} {total['hang']:>6} {total['seconds']:>7.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
