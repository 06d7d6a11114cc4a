"""The house rule of issue 22: no function over 80 lines without a sentence saying why
(scripts/long_functions.py; command-line options and report writers aside)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "long_functions", ROOT / "scripts" / "long_functions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_long_function_says_why():
    unexplained = [
        f"{path.relative_to(ROOT)}:{line} {name} ({lines} lines)"
        for path, line, name, lines, says_why in _script().long_functions(ROOT / "src")
        if not says_why
    ]
    assert unexplained == []


def test_the_check_finds_a_long_function_and_its_reason(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(85))
    (tmp_path / "long.py").write_text(f"def quiet():\n{body}\n\ndef loud():\n")
    with (tmp_path / "long.py").open("a") as f:
        f.write('    """Over 80 lines: a table of constants."""\n' + body)
    (tmp_path / "cli").mkdir()
    options = "".join(f"    a{i}: int = {i},\n" for i in range(90))
    (tmp_path / "cli" / "command.py").write_text(f"def command(\n{options}):\n    return 1\n")
    found = {name: says_why for _, _, name, _, says_why in _script().long_functions(tmp_path)}
    assert found == {"quiet": False, "loud": True}  # the command's options do not count
