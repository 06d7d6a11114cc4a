"""``python -m tomoscribe ARGS``: the ``tomoscribe`` command (for environments where the
console script is not on the PATH)."""

from tomoscribe.cli.app import run

if __name__ == "__main__":
    run()
