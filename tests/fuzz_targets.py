"""Mutation fuzzing of the readers: seed files, mutations, and one case runner.

Shared by ``tests/test_fuzz_readers.py`` (hypothesis, bounded for CI) and
``benchmarks/bench_fuzz.py`` (a plain seeded random generator, ≥ 100,000 cases).
Both draw through the small :class:`Draw` interface, so the same generators serve
both.  A case is: a valid seed file of one reader, one to three mutations
(truncation, bit flips, byte runs written, inserted or removed; chunks removed or
repeated; header fields set to edge values; JSON values replaced, deleted or
re-typed; text lines dropped, repeated or given odd tokens), then the reader under a
time limit.  The outcome is ``accepted`` (returned), ``refused`` (raised a
:class:`TomoscribeError`), ``other`` (any other exception: a bug) or ``hang``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import signal
import struct
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tomoscribe.errors import TomoscribeError

logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # damaged files log a lot
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TIME_LIMIT_S = 10.0


# ----------------------------------------------------------------------------- drawing
class Draw:
    """Where the random choices come from (hypothesis or :mod:`random`)."""

    def integer(self, lo: int, hi: int) -> int:  # inclusive
        raise NotImplementedError

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def raw(self, n: int) -> bytes:
        return bytes(self.integer(0, 255) for _ in range(n))


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def raw(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class HypothesisDraw(Draw):
    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def raw(self, n: int) -> bytes:
        return self.data.draw(self.st.binary(min_size=n, max_size=n))


# ------------------------------------------------------------------------------- seeds
@dataclass
class Seed:
    """One valid input: a file's bytes (or a directory's files) plus where its
    structure is, so mutations can aim at it."""

    name: str
    files: dict[str, bytes]  # relative path -> bytes ("" = the file itself)
    fields: list[tuple[int, str]] = field(default_factory=list)  # (offset, struct format)
    chunks: list[int] = field(default_factory=list)  # offsets where chunks start
    kind: str = "binary"  # binary, text, json, safetensors, store


INT_EDGES = [
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    12,
    16,
    255,
    256,
    1024,
    65535,
    2**31 - 1,
    -(2**31),
    2**32 - 1,
    2**30,
    -1024,
]
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 3.4e38]
JSON_EDGES = [
    None,
    0,
    -1,
    1.5,
    2**40,
    "",
    "x",
    "0",
    [],
    {},
    [1, 2],
    [1, 2, 3, 4],
    {"a": 1},
    True,
    [[1, 2, 3]],
    "NaN",
    [None],
    float("nan"),
]
ODD_TOKENS = [
    "",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "1e999",
    "-1",
    "0",
    '"',
    "'",
    "data_",
    "loop_",
    "_rlnCoordinateX",
    "#",
    "1,2",
    ";",
    "\t",
    "\u00e9",
    "None",
]


# ---------------------------------------------------------------------------- mutations
def mutate_bytes(data: bytes, seed: Seed, draw: Draw) -> bytes:
    """One binary mutation, aimed at the seed's fields and chunks where it has them."""
    data = bytearray(data)
    n = len(data)
    if n == 0:
        return draw.raw(draw.integer(0, 8))
    ops = ["truncate", "flip", "write", "insert", "delete", "copy"]
    if seed.fields:
        ops += ["field"] * 4
    if len(seed.chunks) > 1:
        ops += ["drop_chunk", "repeat_chunk", "cut_at_chunk"]
    op = draw.choice(ops)
    pos = draw.integer(0, max(n - 1, 0))
    if op == "truncate":
        return bytes(data[: draw.integer(0, max(n - 1, 0))])
    if op == "flip":
        for _ in range(draw.integer(1, 4)):
            at = draw.integer(0, n - 1)
            data[at] ^= 1 << draw.integer(0, 7)
        return bytes(data)
    if op == "write":
        run = draw.raw(draw.integer(1, 8))
        data[pos : pos + len(run)] = run
        return bytes(data)
    if op == "insert":
        return bytes(data[:pos] + draw.raw(draw.integer(1, 16)) + data[pos:])
    if op == "delete":
        return bytes(data[:pos] + data[pos + draw.integer(1, 64) :])
    if op == "copy":
        length = draw.integer(1, 256)
        dest = draw.integer(0, n)
        return bytes(data[:dest] + data[pos : pos + length] + data[dest:])
    if op == "field":
        return _set_field(bytes(data), draw.choice(seed.fields), draw)
    chunks = sorted(set(seed.chunks) | {n})
    i = draw.integer(0, len(chunks) - 2)
    start, end = chunks[i], chunks[i + 1]
    if op == "drop_chunk":
        return bytes(data[:start] + data[end:])
    if op == "repeat_chunk":
        dest = draw.choice(chunks)
        return bytes(data[:dest] + data[start:end] + data[dest:])
    return bytes(data[: max(0, start + draw.integer(-8, 8))])


def _set_field(data: bytes, spec: tuple[int, str], draw: Draw) -> bytes:
    offset, fmt = spec
    size = struct.calcsize(fmt)
    if offset + size > len(data):
        return data
    (old,) = struct.unpack_from(fmt, data, offset) if fmt[-1] != "s" else (None,)
    code = fmt[-1]
    if code == "s":
        value = draw.raw(size)
    elif code in "fd":
        value = draw.choice(FLOAT_EDGES + [old * 2 if math.isfinite(old) else 1.0, -old])
    else:
        value = draw.choice(INT_EDGES + [old + 1, old - 1, old * 2, draw.integer(-300, 300)])
        bits = 8 * size
        lo, hi = (
            (0, 2**bits - 1)
            if code.isupper() or code == "B"
            else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        )
        value = min(max(int(value), lo), hi)
    out = bytearray(data)
    out[offset : offset + size] = struct.pack(fmt, value)
    return bytes(out)


def mutate_text(data: bytes, seed: Seed, draw: Draw) -> bytes:
    """Line- and token-level damage to a text table (CSV, STAR)."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    op = draw.choice(["drop", "repeat", "swap", "token", "token", "bytes", "cut", "blank"])
    i = draw.integer(0, len(lines) - 1)
    if op == "drop":
        del lines[i]
    elif op == "repeat":
        lines.insert(draw.integer(0, len(lines)), lines[i])
    elif op == "swap":
        j = draw.integer(0, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "token":
        parts = lines[i].replace(",", " , ").split(" ")
        k = draw.integer(0, max(len(parts) - 1, 0))
        parts[k] = draw.choice(ODD_TOKENS)
        lines[i] = " ".join(parts).replace(" , ", ",")
    elif op == "cut":
        text = "\n".join(lines)
        return text[: draw.integer(0, max(len(text) - 1, 0))].encode()
    elif op == "blank":
        lines = [line for line in lines if draw.integer(0, 3)]
    else:
        return mutate_bytes(data, Seed(seed.name, {}), draw)
    return "\n".join(lines).encode("utf-8", errors="surrogateescape")


def mutate_json_value(value, draw: Draw, depth: int = 0):
    """Replace, delete or re-type one node of a parsed JSON document."""
    if isinstance(value, (dict, list)) and value and depth < 8 and draw.integer(0, 9):
        keys = list(value.keys()) if isinstance(value, dict) else list(range(len(value)))
        key = draw.choice(keys)
        op = draw.integer(0, 9)
        if op == 0:
            del value[key]
            return value
        if op == 1 and isinstance(value, dict):
            value[key + "_"] = value.pop(key)
            return value
        if op == 2:
            value[key] = [value[key]]
            return value
        if op == 3 and isinstance(value[key], list) and value[key]:
            value[key] = value[key][0]
            return value
        value[key] = mutate_json_value(value[key], draw, depth + 1)
        return value
    if isinstance(value, str) and draw.integer(0, 1):
        try:  # safetensors metadata hold JSON documents as strings
            inner = json.loads(value)
        except ValueError:
            inner = None
        if isinstance(inner, (dict, list)):
            return json.dumps(mutate_json_value(inner, draw, depth + 1))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and draw.integer(0, 1):
        return draw.choice([v for v in INT_EDGES if isinstance(v, int)] + FLOAT_EDGES)
    return draw.choice(JSON_EDGES)


def mutate_json(data: bytes, seed: Seed, draw: Draw) -> bytes:
    if draw.integer(0, 4) == 0:
        return mutate_bytes(data, Seed(seed.name, {}), draw)
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate_bytes(data, Seed(seed.name, {}), draw)
    return json.dumps(mutate_json_value(doc, draw)).encode()


def mutate_safetensors(data: bytes, seed: Seed, draw: Draw) -> bytes:
    """Mutate the JSON record in the metadata (most often), the JSON header (re-framed
    or with its old length), or the bytes."""
    if len(data) < 8:
        return mutate_bytes(data, seed, draw)
    (length,) = struct.unpack_from("<Q", data)
    header, body = data[8 : 8 + length], data[8 + length :]
    op = draw.integer(0, 3)
    try:
        doc = json.loads(header)
        meta = doc["__metadata__"]
        key = next(iter(meta))
        if not isinstance(meta[key], str):
            op = 1
    except (ValueError, KeyError, TypeError, StopIteration):
        op = 0
    if op == 0:
        return mutate_bytes(data, seed, draw)
    if op == 1:
        new = mutate_json(header, seed, draw)
        if draw.integer(0, 4) == 0:  # keep the old length: the frame no longer fits
            return data[:8] + new + body
    else:
        meta[key] = mutate_json(meta[key].encode(), seed, draw).decode("utf-8", "replace")
        new = json.dumps(doc).encode()
    return struct.pack("<Q", len(new)) + new + body


MUTATORS = {
    "binary": mutate_bytes,
    "text": mutate_text,
    "json": mutate_json,
    "safetensors": mutate_safetensors,
}


def mutate(seed: Seed, draw: Draw) -> dict[str, bytes]:
    """One to three mutations of a seed; a store mutates (or loses) one of its files."""
    files = dict(seed.files)
    for _ in range(draw.integer(1, 3)):
        name = draw.choice(sorted(files))
        if seed.kind == "store":
            if draw.integer(0, 9) == 0:
                del files[name]
                if not files:
                    break
                continue
            kind = "json" if name.rsplit("/", 1)[-1].startswith(".") else "binary"
        else:
            kind = seed.kind
        files[name] = MUTATORS[kind](files[name], seed, draw)
    return files


# ------------------------------------------------------------------------------ targets
@dataclass
class Target:
    """A reader under test: how to make its seeds and how to call it."""

    name: str
    suffix: str
    make_seeds: Callable[[Path], list[Seed]]
    read: Callable[[Path], object]


def _write_case(files: dict[str, bytes], path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if list(files) == [""]:
        path.write_bytes(files[""])
        return
    path.mkdir()
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _file_seed(name: str, path: Path, kind: str = "binary", **kw) -> Seed:
    return Seed(name, {"": path.read_bytes()}, kind=kind, **kw)


# MRC header words (offset, format), little-endian as the seeds are written.
_MRC_FIELDS = (
    [(o, "<i") for o in range(0, 40, 4)]
    + [(o, "<f") for o in range(40, 64, 4)]
    + [(o, "<i") for o in (64, 68, 72, 88, 92, 108, 220)]
    + [(o, "<f") for o in (76, 80, 84, 196, 200, 204, 216)]
    + [(208, "4s"), (212, "4s"), (104, "4s")]
)


def mrc_seeds(work: Path) -> list[Seed]:
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    seeds = []
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.int16, np.uint8, np.float16):
        path = work / f"seed_{np.dtype(dtype).name}.mrc"
        data = (rng.normal(size=(5, 6, 7)) * 20).astype(dtype)
        write_volume(path, Volume(data, (4.0, 4.0, 4.0), (1.0, 2.0, 3.0)))
        seeds.append(_file_seed(path.name, path, fields=_MRC_FIELDS, chunks=[0, 1024]))
    real = SHARED_DATA / "formats" / "emdb" / "EMD-3197.map"
    if real.exists():
        seeds.append(_file_seed(real.name, real, fields=_MRC_FIELDS, chunks=[0, 1024]))
    return seeds


def read_mrc_case(path: Path):
    from tomoscribe.io import read_volume

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = read_volume(path)
        return volume.load().shape


def _tiff_fields(path: Path) -> tuple[list[tuple[int, str]], list[int]]:
    import tifffile

    fields, chunks = [(4, "<I")], [0]
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            chunks.append(page.offset)
            for tag in page.tags.values():
                fields += [(tag.offset + 2, "<H"), (tag.offset + 4, "<I"), (tag.offset + 8, "<I")]
    return fields, sorted(set(chunks))


def tiff_seeds(work: Path) -> list[Seed]:
    import tifffile

    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    rng = np.random.default_rng(1)
    seeds = []
    made = {
        "grey.tif": lambda p: tifffile.imwrite(
            p, rng.integers(0, 255, (3, 8, 9), np.uint8), photometric="minisblack"
        ),
        "flat.tif": lambda p: tifffile.imwrite(p, rng.normal(size=(8, 9)).astype(np.float32)),
        "rgb.tif": lambda p: tifffile.imwrite(
            p, rng.integers(0, 255, (8, 9, 3), np.uint8), photometric="rgb"
        ),
        "zlib.tif": lambda p: tifffile.imwrite(
            p,
            rng.integers(0, 9, (2, 8, 9), np.uint16),
            photometric="minisblack",
            compression="zlib",
        ),
        "imagej.tif": lambda p: write_volume(
            p, Volume(rng.normal(size=(3, 8, 9)).astype(np.float32), (5.0, 5.0, 5.0))
        ),
    }
    for name, make in made.items():
        path = work / name
        make(path)
        fields, chunks = _tiff_fields(path)
        seeds.append(_file_seed(name, path, fields=fields, chunks=chunks))
    return seeds


def read_tiff_case(path: Path):
    from tomoscribe.io.tiff import read_tiff

    return read_tiff(path, voxel_size_A=1.0).load().shape


def zarr_seeds(work: Path) -> list[Seed]:
    from tomoscribe.io.zarr import create_ome_zarr

    path = work / "seed.zarr"
    with create_ome_zarr(
        path, (4, 5, 6), np.float32, 5.0, (1.0, 2.0, 3.0), chunks=(2, 5, 3)
    ) as out:
        out[:] = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
    files = {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }
    return [Seed("seed.zarr", files, kind="store")]


def read_zarr_case(path: Path):
    from tomoscribe.io.zarr import read_ome_zarr

    return read_ome_zarr(path).load().shape


def csv_seeds(work: Path) -> list[Seed]:
    texts = {
        "labels.csv": "x,y,z,label\n412,388,61,positive\n120,95,61,negative\n7,8,9,1\n",
        "plain.csv": "X;Y;Z\n1.5;2;3\n4;5;6e1\n",
        "class.csv": "z,y,x,class,score\n1,2,3,pos,0.5\n4,5,6,neg,0.1\n7,8,9,0,1\n",
    }
    return [Seed(name, {"": text.encode()}, kind="text") for name, text in texts.items()]


def read_csv_case(path: Path):
    from tomoscribe.io.points import read_points

    return len(read_points(path))


def _imod_layout(data: bytes) -> tuple[list[tuple[int, str]], list[int]]:
    """Chunk starts and count/size fields of a valid model (walking it as imodcheck does)."""
    fields = [(8 + 128 + 4 * i, ">i") for i in range(4)]
    chunks, pos = [], 240
    while pos + 4 <= len(data):
        name = data[pos : pos + 4]
        chunks.append(pos)
        if name == b"IEOF":
            break
        if name == b"OBJT":
            fields.append((pos + 4 + 128, ">i"))  # contsize
            pos += 4 + 176
        elif name == b"CONT":
            fields.append((pos + 4, ">i"))
            (psize,) = struct.unpack_from(">i", data, pos + 4)
            pos += 4 + 16 + 12 * psize
        elif name == b"MESH":
            fields += [(pos + 4, ">i"), (pos + 8, ">i")]
            vsize, lsize = struct.unpack_from(">ii", data, pos + 4)
            pos += 4 + 16 + 12 * vsize + 4 * lsize
        else:
            fields.append((pos + 4, ">I"))
            (size,) = struct.unpack_from(">I", data, pos + 4)
            pos += 8 + size
    return fields, chunks


def imod_seeds(work: Path) -> list[Seed]:
    import pandas as pd

    from tomoscribe.io.points import write_imod_points

    paths = []
    folder = SHARED_DATA / "formats" / "imod"
    for name in (
        "two_contour_example.mod",
        "slicer_angle_example.mod",
        "multiple_objects_example.mod",
        "point_sizes_example.mod",
        "meshed_curvature_example.mod",
    ):
        if (folder / name).exists():
            paths.append(folder / name)
    ours = work / "ours.mod"
    write_imod_points(
        ours,
        pd.DataFrame(
            {"x": [1.0, 5, 9], "y": [2.0, 3, 4], "z": [0.0, 1, 2], "contour_id": [0, 0, 1]}
        ),
    )
    paths.append(ours)
    seeds = []
    for path in paths:
        data = path.read_bytes()
        fields, chunks = _imod_layout(data)
        seeds.append(Seed(path.name, {"": data}, fields=fields, chunks=chunks))
    return seeds


def read_imod_case(path: Path):
    from tomoscribe.io.points import read_imod_contours, read_points

    return len(read_points(path)), len(read_imod_contours(path))


def _safetensors_chunks(data: bytes) -> list[int]:
    (length,) = struct.unpack_from("<Q", data)
    return [0, 8, 8 + length]


def model_seeds(work: Path) -> list[Seed]:
    import torch

    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    spec = ArchitectureSpec("unet")
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    path = work / "seed.tsm"
    save_model(path, FeatureModel(network, spec, "membrane", 10.0, 0.8, {"annotator": "a"}))
    data = path.read_bytes()
    return [
        Seed(
            path.name,
            {"": data},
            kind="safetensors",
            fields=[(0, "<Q")],
            chunks=_safetensors_chunks(data),
        )
    ]


def read_model_case(path: Path):
    from tomoscribe.segment.modelfile import load_model

    return load_model(path).feature


def classifier_seeds(work: Path) -> list[Seed]:
    from tomoscribe.classify.modelfile import save_classifier
    from tomoscribe.classify.models import build_classifier
    from tomoscribe.classify.training import Classifier

    network = build_classifier("inception3d", 16, 2)
    path = work / "seed.tsc"
    save_classifier(path, Classifier(network, "inception3d", 16, 9.2, ["a", "b"], {}))
    data = path.read_bytes()
    return [
        Seed(
            path.name,
            {"": data},
            kind="safetensors",
            fields=[(0, "<Q")],
            chunks=_safetensors_chunks(data),
        )
    ]


def read_classifier_case(path: Path):
    from tomoscribe.classify.modelfile import load_classifier

    return load_classifier(path).class_names


def trainset_seeds(work: Path) -> list[Seed]:
    from tomoscribe.segment.trainset import TrainingSet, save_training_set

    rng = np.random.default_rng(2)
    n, tile = 4, 16
    trainset = TrainingSet(
        rng.normal(size=(n, 1, tile, tile)).astype(np.float32),
        (rng.random((n, tile, tile)) > 0.5).astype(np.uint8),
        np.array([1, 1, 0, 0], bool),
        np.arange(n, dtype=np.int32),
        {
            "feature": "membrane",
            "annotator": "a",
            "voxel_size_A": [10.0, 10.0, 10.0],
            "tile_size": tile,
            "context_slices": 0,
            "preprocessing": {"lowpass_A": 20},
        },
    )
    path = work / "seed.trainset"
    save_training_set(path, trainset)
    data = path.read_bytes()
    return [
        Seed(
            path.name,
            {"": data},
            kind="safetensors",
            fields=[(0, "<Q")],
            chunks=_safetensors_chunks(data),
        )
    ]


def read_trainset_case(path: Path):
    from tomoscribe.segment.trainset import load_training_set

    return len(load_training_set(path))


def star_seeds(work: Path) -> list[Seed]:
    import pandas as pd

    from tomoscribe.io.particles import write_particles

    ours = work / "ours.star"
    write_particles(
        ours,
        pd.DataFrame(
            {
                "x": [1.0, 20],
                "y": [2.0, 30],
                "z": [3.0, 4],
                "score": [0.5, 0.9],
                "rot": [10.0, 0],
                "tilt": [20.0, 90],
                "psi": [30.0, -45],
            }
        ),
        10.0,
        (50, 100, 100),
    )
    paths = [ours]
    for rel in (
        "formats/star/one_loop.star",
        "formats/star/rln3.1_data_style.star",
        "formats/star/warp_particles_1.star",
        "formats/relion5_project/Picks/job_picks/particles.star",
    ):
        if (SHARED_DATA / rel).exists():
            paths.append(SHARED_DATA / rel)
    paths += sorted((SHARED_DATA / "formats" / "star").glob("warp_particles_*.star"))[:1]
    return [_file_seed(p.name, p, kind="text") for p in dict.fromkeys(paths)]


def copick_seeds(work: Path) -> list[Seed]:
    import pandas as pd

    from tomoscribe.io.particles import write_particles

    path = work / "ours.json"
    write_particles(
        path,
        pd.DataFrame(
            {
                "x": [1.0, 20],
                "y": [2.0, 30],
                "z": [3.0, 4],
                "score": [0.5, 0.9],
                "rot": [10.0, 0],
                "tilt": [20.0, 90],
                "psi": [30.0, -45],
            }
        ),
        10.0,
        (50, 100, 100),
        object_name="ribosome",
    )
    return [_file_seed(path.name, path, kind="json")]


def read_particles_case(path: Path):
    from tomoscribe.io.particles import read_particles

    return len(read_particles(path, voxel_size_A=10.0, tomogram_shape_zyx=(50, 100, 100)))


TARGETS = [
    Target("mrc", ".mrc", mrc_seeds, read_mrc_case),
    Target("tiff", ".tif", tiff_seeds, read_tiff_case),
    Target("ome-zarr", ".zarr", zarr_seeds, read_zarr_case),
    Target("csv-points", ".csv", csv_seeds, read_csv_case),
    Target("imod", ".mod", imod_seeds, read_imod_case),
    Target("model", ".tsm", model_seeds, read_model_case),
    Target("classifier", ".tsc", classifier_seeds, read_classifier_case),
    Target("trainset", ".trainset", trainset_seeds, read_trainset_case),
    Target("particles-star", ".star", star_seeds, read_particles_case),
    Target("particles-copick", ".json", copick_seeds, read_particles_case),
]
TARGET_BY_NAME = {t.name: t for t in TARGETS}


# ---------------------------------------------------------------------------- running
class Hang(BaseException):
    """The reader ran past the time limit (a BaseException: readers catching Exception
    cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM; pure-Python loops included)."""

    def _raise(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    kind: str  # accepted, refused, other, hang
    detail: str = ""


def run_case(
    target: Target, files: dict[str, bytes], path: Path, limit_s: float = TIME_LIMIT_S
) -> Outcome:
    """Write the mutated input to ``path`` and classify what the reader does with it."""
    _write_case(files, path)
    try:
        with time_limit(limit_s):
            target.read(path)
    except Hang as err:
        return Outcome("hang", str(err))
    except TomoscribeError as err:
        return Outcome("refused", str(err))
    except Exception:  # noqa: BLE001 - what the fuzzer is looking for
        return Outcome("other", traceback.format_exc())
    return Outcome("accepted")
