"""kill -9 at random moments of every writer, and concurrent runs on one output.

    python benchmarks/bench_kill.py [--kills 20] [--concurrent 20] [--seed 0]

For each writer of ``tests/kill_harness.py`` (preprocess, merge, segment, trainset,
train): one uninterrupted run, then ``--kills`` runs killed with SIGKILL after a random
fraction (0.2–1.0) of the uninterrupted run's time, each followed by the same command
to completion.  Prints per writer: kills that landed while the command still ran, how
many reruns equal the uninterrupted output (bytes; trained weights and losses for
train), and how many left a temporary, journal, checkpoint or lock behind.

Then ``--concurrent`` tries of two ``segment`` runs on different tomograms writing the
same output name at once: counts finished maps that equal neither tomogram's solo
result (corrupt), and losers whose message is not the one-sentence refusal.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kill_harness as kh  # noqa: E402


def concurrent_tries(inputs: Path, work: Path, tries: int) -> dict:
    """Two segment runs on one output name, ``tries`` times."""
    import numpy as np

    rng = np.random.default_rng(1)
    for name in ("x", "y"):
        (inputs / name).mkdir(exist_ok=True)
        kh._user_mrc(inputs / name / "t.mrc", rng.normal(size=(48, 128, 128)).astype(np.float32))
    solo = {}
    for name in ("x", "y"):
        out = work / f"solo-{name}"
        kh.run(
            ["segment", f"{name}/t.mrc", "-m", "m.tsm", "-o", str(out), "-q", "--slab-slices", "2"],
            inputs,
        )
        solo[name] = (out / "t_disc.mrc").read_bytes()
    corrupt = refused_badly = both_finished = 0
    for k in range(tries):
        out = work / f"pair-{k}"
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    kh.CLI,
                    "segment",
                    f"{name}/t.mrc",
                    "-m",
                    "m.tsm",
                    "-o",
                    str(out),
                    "-q",
                    "--slab-slices",
                    "2",
                ],
                cwd=inputs,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("x", "y")
        ]
        codes = [r.wait() for r in runs]
        errors = [r.stderr.read() for r in runs]
        both_finished += codes == [0, 0]
        for code, err in zip(codes, errors):
            if code != 0 and ("being written by another" not in err or "Traceback" in err):
                refused_badly += 1
        result = (out / "t_disc.mrc").read_bytes()
        corrupt += result not in solo.values()
    return {
        "tries": tries,
        "corrupt": corrupt,
        "refusals_not_one_sentence": refused_badly,
        "both_finished_one_after_the_other": both_finished,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        inputs = kh.make_inputs(tmp / "inputs")["root"]
        print(f"{'writer':<11} {'kills':>5} {'landed':>6} {'identical':>9} {'leftovers':>9}")
        for writer in kh.WRITERS:
            records = kh.kill_and_rerun(writer, inputs, tmp / "work", args.kills, rng)
            print(
                f"{writer.name:<11} {len(records):>5} {sum(r['killed'] for r in records):>6} "
                f"{sum(r['identical'] for r in records):>9} "
                f"{sum(bool(r['leftovers']) for r in records):>9}",
                flush=True,
            )
        if args.concurrent:
            found = concurrent_tries(inputs, tmp / "concurrent", args.concurrent)
            print("concurrent segment runs on one output:", found)
        print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
