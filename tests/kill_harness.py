"""kill -9 at random moments of the writing commands, then the same command again:
the result must equal an uninterrupted run's and no temporary may be left.

Shared by ``tests/test_kill.py`` (a few kills per writer, in CI) and
``benchmarks/bench_kill.py`` (≥ 20 per writer).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mrcfile
import numpy as np

CLI = "import sys; from tomoscribe.cli.app import main; sys.exit(main(sys.argv[1:]))"
MANIFEST = ".tomoscribe-outputs.json"
MODEL_KEY = "tomoscribe_model"  # the metadata key of model files (segment/modelfile.py)


def _user_mrc(path: Path, data, voxel=10.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data))
        mrc.voxel_size = voxel
    return path


def make_inputs(root: Path) -> dict:
    """A tomogram, a painted volume, boxes, two feature maps, a model and a training set."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shape = (48, 128, 128)
    tomo = rng.normal(size=shape).astype(np.float32)
    paint = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[:128, :128]
    for z in range(4, 44, 4):
        disc = (yy - 40) ** 2 + (xx - 40) ** 2 <= 64
        tomo[z][disc] += 2
        paint[z][disc] = 1
    _user_mrc(root / "t.mrc", tomo)
    _user_mrc(root / "paint.mrc", paint)
    _user_mrc(root / "a.mrc", rng.uniform(0, 2, shape).astype(np.float32))
    _user_mrc(root / "b.mrc", rng.uniform(0, 2, shape).astype(np.float32))
    (root / "boxes.csv").write_text(
        "x,y,z,label\n"
        + "".join(
            f"40,40,{z},positive\n100,100,{z},negative\n100,30,{z},negative\n"
            for z in range(4, 44, 4)
        )
    )
    run(
        [
            "trainset",
            "t.mrc",
            "-o",
            "ts.trainset",
            "-f",
            "disc",
            "--painted",
            "paint.mrc",
            "--boxes",
            "boxes.csv",
            "--tile",
            "32",
        ],
        root,
    )
    run(["train", "ts.trainset", "-o", "m.tsm", "--epochs", "2", "--optimizer", "adam", "-q"], root)
    return {"root": root}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", CLI, *argv], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr}")
    return done


@dataclass
class Writer:
    """A command, the outputs to compare, and how to compare them."""

    name: str
    argv: Callable[[Path, Path], list[str]]  # (inputs root, output folder) -> argv
    outputs: tuple[str, ...]
    compare: Callable[[Path, Path], bool] = None  # default: identical bytes


def _same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def _same_model(a: Path, b: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        if sorted(fa.keys()) != sorted(fb.keys()):
            return False
        if any(not (fa.get_tensor(k) == fb.get_tensor(k)).all() for k in fa.keys()):
            return False
        history = [
            [
                (h["train_loss"], h["validation_loss"])
                for h in json.loads(f.metadata()[MODEL_KEY])["training"]["history"]
            ]
            for f in (fa, fb)
        ]
    return history[0] == history[1]


WRITERS = [
    Writer(
        "preprocess",
        lambda i, o: ["preprocess", f"{i}/t.mrc", "-o", f"{o}/p.mrc", "-q"],
        ("p.mrc",),
    ),
    Writer(
        "merge",
        lambda i, o: [
            "merge",
            f"{i}/a.mrc",
            f"{i}/b.mrc",
            "--names",
            "a,b",
            "-o",
            f"{o}/labels.mrc",
            "-q",
        ],
        ("labels.mrc", "labels.mrc.legend.json"),
    ),
    Writer(
        "segment",
        lambda i, o: [
            "segment",
            f"{i}/t.mrc",
            "-m",
            f"{i}/m.tsm",
            "-o",
            str(o),
            "-q",
            "--slab-slices",
            "2",
        ],
        ("t_disc.mrc",),
    ),
    Writer(
        "trainset",
        lambda i, o: [
            "trainset",
            f"{i}/t.mrc",
            "-o",
            f"{o}/ts.trainset",
            "-f",
            "disc",
            "--painted",
            f"{i}/paint.mrc",
            "--boxes",
            f"{i}/boxes.csv",
            "--tile",
            "32",
        ],
        ("ts.trainset",),
    ),
    Writer(
        "train",
        lambda i, o: [
            "train",
            f"{i}/ts.trainset",
            "-o",
            f"{o}/m.tsm",
            "--epochs",
            "6",
            "--optimizer",
            "adam",
            "-q",
        ],
        ("m.tsm",),
        _same_model,
    ),
]


def leftovers(folder: Path) -> list[str]:
    """Hidden files other than tomoscribe's manifest: temporaries, journals, locks."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != MANIFEST)


def kill_and_rerun(
    writer: Writer, inputs: Path, work: Path, kills: int, rng: random.Random
) -> list[dict]:
    """Run ``writer`` once whole, then ``kills`` times killed (-9) at a random moment and
    run again; returns one record per kill."""
    reference = work / f"{writer.name}-whole"
    reference.mkdir(parents=True)
    started = time.perf_counter()
    run(writer.argv(inputs, reference), inputs)
    duration = time.perf_counter() - started
    compare = writer.compare or _same_bytes
    records = []
    for k in range(kills):
        out = work / f"{writer.name}-{k}"
        out.mkdir()
        delay = rng.uniform(0.2, 1.0) * duration
        process = subprocess.Popen(
            [sys.executable, "-c", CLI, *writer.argv(inputs, out)],
            cwd=inputs,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        killed = process.poll() is None
        process.kill()
        process.wait()
        left_after_kill = leftovers(out)
        run(writer.argv(inputs, out), inputs)
        same = all(compare(reference / name, out / name) for name in writer.outputs)
        records.append(
            {
                "writer": writer.name,
                "delay_s": round(delay, 3),
                "killed": killed,
                "left_after_kill": left_after_kill,
                "identical": same,
                "leftovers": leftovers(out),
            }
        )
    return records
