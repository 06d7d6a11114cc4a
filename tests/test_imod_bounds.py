"""IMOD models cannot hang the readers: every truncation is refused within a time limit."""

from __future__ import annotations

import struct

import pytest

from fuzz_targets import Hang, time_limit
from tomoscribe.errors import InputFileError
from tomoscribe.io.imodcheck import check_imod_structure
from tomoscribe.io.points import read_imod_contours, read_points

REAL_MODELS = [
    "meshed_contour_example.mod",
    "meshed_curvature_example.mod",
    "multiple_objects_example.mod",
    "point_sizes_example.mod",
    "slicer_angle_example.mod",
    "two_contour_example.mod",
]


@pytest.fixture
def imod_dir(shared_data):
    return shared_data / "formats" / "imod"


@pytest.mark.parametrize("name", REAL_MODELS)
def test_every_real_model_still_reads(imod_dir, name):
    with time_limit(20):
        table = read_points(imod_dir / name)
    assert len(table) > 0


def test_imodmodel_alone_hangs_on_a_truncated_model(imod_dir, tmp_path):
    """Why the check exists: without it the parser never returns."""
    import imodmodel

    data = (imod_dir / "two_contour_example.mod").read_bytes()
    cut = tmp_path / "cut.mod"
    cut.write_bytes(data[:-4])  # drop IEOF only
    with pytest.raises(Hang), time_limit(1.0):
        imodmodel.read(cut)


def test_missing_ieof_is_named(imod_dir, tmp_path):
    data = (imod_dir / "two_contour_example.mod").read_bytes()
    cut = tmp_path / "cut.mod"
    cut.write_bytes(data[:-4])
    with pytest.raises(InputFileError, match=r"cut\.mod .*IEOF is missing.*byte 1255"):
        with time_limit(5):
            read_points(cut)


@pytest.mark.parametrize(
    "name", ["two_contour_example.mod", "slicer_angle_example.mod", "multiple_objects_example.mod"]
)
def test_every_truncation_is_refused_quickly(imod_dir, tmp_path, name):
    data = (imod_dir / name).read_bytes()
    cut = tmp_path / name
    with time_limit(60):  # the whole file's truncations; each takes about a millisecond
        for length in range(len(data)):
            cut.write_bytes(data[:length])
            with pytest.raises(InputFileError, match=str(cut)):
                read_imod_contours(cut)


@pytest.mark.parametrize(
    "name",
    ["meshed_contour_example.mod", "meshed_curvature_example.mod", "point_sizes_example.mod"],
)
def test_dense_sample_of_truncations_is_refused(imod_dir, name):
    data = (imod_dir / name).read_bytes()
    lengths = set(range(0, len(data), max(1, len(data) // 1500)))
    lengths |= {len(data) - k for k in range(1, 9)}
    with time_limit(60):
        for length in sorted(lengths):
            with pytest.raises(InputFileError, match="not .*IMOD model"):
                check_imod_structure(name, data[:length])


def _model_with_contour(psize_field: int, points: int) -> bytes:
    header = b"IMODV1.2" + bytes(232)
    objt = b"OBJT" + bytes(176)
    cont = b"CONT" + struct.pack(">iIii", psize_field, 0, 0, 0) + bytes(12 * points)
    return header + objt + cont + b"IEOF"


def test_contour_count_past_the_end_is_refused():
    check_imod_structure("ok.mod", _model_with_contour(3, 3))
    with pytest.raises(InputFileError, match="points of contour chunk CONT"):
        check_imod_structure("big.mod", _model_with_contour(2**30, 3))
    with pytest.raises(InputFileError, match="negative"):
        check_imod_structure("neg.mod", _model_with_contour(-4, 3))


def test_chunk_sizes_imodmodel_ignores_are_checked():
    base = _model_with_contour(2, 2)[:-4]
    with pytest.raises(InputFileError, match="IMAT says 20 bytes where 16 belong"):
        check_imod_structure(
            "imat.mod", base + b"IMAT" + struct.pack(">I", 20) + bytes(20) + b"IEOF"
        )
    with pytest.raises(InputFileError, match="SIZE says 4 bytes where 8 belong"):
        check_imod_structure("size.mod", base + b"SIZE" + struct.pack(">I", 4) + bytes(4) + b"IEOF")
    check_imod_structure(
        "size.mod",
        base
        + b"SIZE"
        + struct.pack(">I", 8)
        + bytes(8)
        + b"VIEW"
        + struct.pack(">I", 3)
        + bytes(3)
        + b"IEOF",
    )


def test_chunk_out_of_place_and_not_imod():
    header = b"IMODV1.2" + bytes(232)
    with pytest.raises(InputFileError, match="CONT comes before any object"):
        check_imod_structure("x.mod", header + b"CONT" + bytes(16) + b"IEOF")
    with pytest.raises(InputFileError, match="not an IMOD model"):
        check_imod_structure("x.mod", b"MRC?" + bytes(300))
    with pytest.raises(InputFileError, match="not a chunk ID"):
        check_imod_structure("x.mod", header + b"\x00\xff\x01\x02" + bytes(8) + b"IEOF")


def test_a_truncated_model_names_its_length(imod_dir, tmp_path):
    """A trial: a model cut to 58 bytes was said to end "at byte 0 (file length 58)"."""
    cut = tmp_path / "cut.mod"
    cut.write_bytes((imod_dir / "two_contour_example.mod").read_bytes()[:58])
    with pytest.raises(InputFileError) as err:
        read_imod_contours(cut)
    assert "needs 240 bytes from byte 0 but the file is 58 bytes long" in str(err.value)
