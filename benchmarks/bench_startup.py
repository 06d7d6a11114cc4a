"""Start-up time of the command line: median wall time of fresh processes.

    python benchmarks/bench_startup.py [--repeats 5] [--src DIR ...]

Runs ``tomoscribe --version``, ``--help``, ``info --help`` and ``convert --help`` each in
``--repeats`` fresh Python processes (``main(argv)`` of ``tomoscribe.cli.app``, with the
source tree ``DIR`` first on ``PYTHONPATH``) and prints the median seconds per command
line against the target of 0.3 s, with the CPU seconds (user + system) of the same
processes, which a loaded machine inflates less than wall time.  Two reference lines
say what no change to tomoscribe can remove: the bare interpreter (``python -c pass``)
and typer with rich rendering the ``--help`` of a two-command app.  With several
``--src`` trees (say a checkout of the previous commit and this one) the runs are
interleaved, so that a loaded machine slows them alike, and the ratio of each tree's
medians to the first tree's is printed too.  Also prints the CPU model, since the
figures mean little without it; exit status 1 when a median misses the target.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3
COMMANDS = (["--version"], ["--help"], ["info", "--help"], ["convert", "--help"])
SOURCE = Path(__file__).resolve().parents[1] / "src"
# What tomoscribe cannot make faster: the interpreter alone, and typer + rich rendering
# the help of a two-command app (help rendering imports rich's markdown and traceback).
REFERENCES = {
    "python -c pass": "pass",
    "typer app --help": (
        "import typer\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def hello(name: str = typer.Option('x', help='who')) -> None:\n"
        "    'Say hello.'\n"
        "@app.command()\n"
        "def bye() -> None:\n"
        "    'Say bye.'\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
    ),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _once(src: Path, argv: list[str], code: str | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) for one fresh process running ``tomoscribe
    ARGV`` from source tree ``src`` (or the Python ``code`` given)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    if code is None:
        code = f"import sys; from tomoscribe.cli.app import main; sys.exit(main({argv!r}))"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"tomoscribe {' '.join(argv)} failed ({src}):\n{done.stderr}")
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command")
    parser.add_argument(
        "--src",
        type=Path,
        action="append",
        help="source tree(s) to time (default: this checkout's src/)",
    )
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in (args.src or [SOURCE])]

    print(
        f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    times = {(str(src), tuple(cmd)): [] for src in sources for cmd in COMMANDS}
    references = {name: [] for name in REFERENCES}
    for _ in range(args.repeats):
        for name, code in REFERENCES.items():
            references[name].append(_once(sources[0], [name], code))
        for cmd in COMMANDS:
            for src in sources:  # interleaved: a loaded machine slows every tree alike
                times[(str(src), tuple(cmd))].append(_once(src, cmd))

    print("\nreferences (not tomoscribe)")
    for name, runs in references.items():
        wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
        print(f"  {name:<27} median {wall:6.3f} s, CPU {cpu:6.3f} s")

    failed = False
    for src in sources:
        print(f"\n{src}")
        for cmd in COMMANDS:
            runs = times[(str(src), tuple(cmd))]
            median, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
            line = (
                f"  tomoscribe {' '.join(cmd):<16} median {median:6.3f} s, CPU {cpu:6.3f} s "
                f"(target {TARGET_S} s)"
            )
            if src != sources[0]:
                first = statistics.median(r[0] for r in times[(str(sources[0]), tuple(cmd))])
                line += f", {median / first:.2f}× the first tree"
            failed |= median > TARGET_S
            print(line)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
