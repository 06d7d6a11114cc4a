"""Damaged CSV point lists: one sentence each, naming the file and what is wrong."""

from __future__ import annotations

import pytest

from tomoscribe.errors import InputFileError
from tomoscribe.io.points import read_points

CASES = [
    ("empty", "", r"is empty"),
    ("blank lines", "\n\n  \n", r"is empty"),
    ("header only", "x,y,z\n", r"has column names but no rows"),
    ("missing z", "x,y\n1,2\n", r"needs columns x, y, z; it has \['x', 'y'\]"),
    ("non-numeric", "x,y,z\n1,2,3\n4,five,6\n", r"column y of data row 2 is 'five'"),
    ("empty cell", "x,y,z\n1,2,\n", r"column z of data row 1 is empty"),
    ("NaN", "x,y,z\n1,NaN,3\n", r"column y of data row 1 is 'NaN', not a finite"),
    ("inf", "x,y,z\n1,2,-inf\n", r"column z of data row 1 is '-inf'"),
    ("short row", "x,y,z\n1,2\n", r"column z of data row 1 is empty"),
    ("long row", "x,y,z\n1,2,3,4,5\n", r"not a readable CSV table"),
    ("repeated column", "x,X,y,z\n1,2,3,4\n", r"has column 'x' twice"),
    ("binary", b"\xff\xfe\x00\x01junk", r"is not a text CSV table"),
]


@pytest.mark.parametrize("label,content,pattern", CASES, ids=[c[0] for c in CASES])
def test_damaged_csv_is_refused_in_one_sentence(tmp_path, label, content, pattern):
    path = tmp_path / "boxes.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputFileError, match=pattern) as caught:
        read_points(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_surplus_fields_are_not_taken_as_an_index(tmp_path):
    """pandas would read '1,2,3,4,5' under x,y,z as x=3, y=4, z=5 (an index of two)."""
    path = tmp_path / "boxes.csv"
    path.write_text("x,y,z\n1,2,3,4,5\n")
    with pytest.raises(InputFileError):
        read_points(path)


def test_semicolons_tabs_and_spaces_in_cells_still_read(tmp_path):
    for sep in (";", "\t", ","):
        path = tmp_path / "boxes.csv"
        path.write_text(sep.join(["x", "y", "z"]) + "\n" + sep.join([" 1", "2.5 ", "3e1"]) + "\n")
        table = read_points(path)
        assert table[["x", "y", "z"]].to_numpy().tolist() == [[1.0, 2.5, 30.0]]
