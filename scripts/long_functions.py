"""List the functions of ``src/`` longer than 80 lines that do not say why.

The house rule (issue 22): no function over 80 lines without a sentence saying why.  A
function says why with a docstring sentence containing "over 80 lines".  Command-line
commands (``src/tomoscribe/cli/``) are measured from the first statement of their body,
so that their option declarations do not count; report writers (``write_*_report``,
HTML assembled line by line) are left out, as the rule leaves them out.

Usage: ``python scripts/long_functions.py [--all] [ROOT]``; exit status 1 when a long
function does not say why (``--all`` also lists those that do).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 80
MARKER = "Over 80 lines"


def long_functions(root: Path, limit: int = LIMIT):
    """(path, line, name, lines, says_why) of every function longer than ``limit``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        in_cli = "cli" in path.relative_to(root).parts
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name.startswith("write_") and node.name.endswith("_report"):
                continue
            first = node.body[0].lineno if in_cli else node.lineno
            lines = node.end_lineno - first + 1
            if lines > limit:
                says_why = MARKER.lower() in (ast.get_docstring(node) or "").lower()
                found.append((path, node.lineno, node.name, lines, says_why))
    return found


def main(argv: list[str]) -> int:
    show_all = "--all" in argv
    args = [a for a in argv if a != "--all"]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "src"
    rows = long_functions(root)
    unexplained = [row for row in rows if not row[4]]
    for path, line, name, lines, says_why in rows if show_all else unexplained:
        mark = "says why" if says_why else "NO REASON"
        print(f"{path.relative_to(root)}:{line} {name}: {lines} lines ({mark})")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
