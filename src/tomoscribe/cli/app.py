"""The typer application, its global options, and the error policy.

Bad input raises a :class:`~tomoscribe.errors.TomoscribeError`; :func:`main` prints
its one sentence to stderr and exits with status 2, with no traceback unless
``--debug`` is given.  Usage errors (unknown options, missing arguments) also exit 2.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import warnings

import typer

from ..errors import TomoscribeError
from ..outputs import guarding_inputs
from ..ownership import writing_as
from ..progress import clear_bars
from ..said import said_once

app = typer.Typer(
    name="tomoscribe",
    help="Annotate cryo-electron tomograms with small per-feature CNNs "
    "(Chen et al. 2017), merge the features, and measure the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"tomoscribe {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """tomoscribe: per-feature CNN annotation of tomograms."""


# Command groups register themselves on `app` when imported.
from . import (  # noqa: E402,F401
    annotate,
    classify,
    classify2d,
    clem,
    convert,
    demo,
    mining,
    prepare,
    simulate,
    spa,
    structure,
)
from .checks import naming_flags  # noqa: E402


def _name_flags_in_errors(group: typer.Typer) -> None:
    """Every command's errors about a parameter name its flag (see checks.naming_flags)."""
    for info in group.registered_commands:
        info.callback = naming_flags(info.callback)
    for sub in group.registered_groups:
        _name_flags_in_errors(sub.typer_instance)


_name_flags_in_errors(app)


def run() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` and return the exit status (0, 2, …)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = typer.main.get_command(app)
    try:
        with (
            guarding_inputs(),
            said_once(),
            _terminate_as_interrupt(),
            _warnings_as_lines(),
            writing_as(_command_name(command, argv)),
        ):
            status = command.main(args=argv, prog_name="tomoscribe", standalone_mode=False)
        if isinstance(status, int) and status:  # typer's click returns 130 on Ctrl-C
            if status == 130:
                typer.echo(
                    "interrupted; nothing unfinished was left under an output's name", err=True
                )
            return _exit(status)
    except TomoscribeError as err:
        if debug:
            raise
        clear_bars()
        typer.echo(f"error: {getattr(err, 'command_line_message', None) or err}", err=True)
        return _exit(2)
    except typer.Exit as done:
        return _exit(int(getattr(done, "exit_code", 0) or 0))
    except typer.Abort:
        typer.echo("aborted", err=True)
        return _exit(130)
    except _USAGE_ERRORS as err:  # unknown option, missing argument, bad value
        context = getattr(err, "ctx", None)
        where = context.command_path if context is not None else "tomoscribe"
        message = " ".join(err.format_message().split()).rstrip(".")
        typer.echo(f"error: {message} (see '{where} --help').", err=True)
        return _exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing unfinished was left under an output's name", err=True)
        return _exit(130)
    except OSError as err:  # the machine's, not the input's: a full disk, a lost mount
        if debug:
            raise
        clear_bars()
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        typer.echo(
            f"error: {err.strerror or err}{where}; check the file system and try again.", err=True
        )
        return _exit(2)
    return _exit(0)


def _command_name(group, argv: list[str]) -> str | None:
    """The command ``argv`` runs, as its words (``"clem register"``), or None where
    its first word names none (``--help``, a typo)."""
    words = []
    for word in (w for w in argv if not w.startswith("-")):  # `--debug` may come first
        sub = getattr(group, "commands", {}).get(word)
        if sub is None:
            break
        words.append(word)
        group = sub
    return " ".join(words) or None


@contextlib.contextmanager
def _warnings_as_lines():
    """Warnings (an unusual MRC header, a TIFF's guessed voxel size) as one line each,
    ``warning: …`` on stderr, not Python's two-line source listing, with the running
    command's flags where the library names its arguments; the same sentence once."""
    from .checks import command_line_text

    previous = warnings.showwarning
    shown: set[str] = set()  # one file read twice in a run said the same twice (a trial)

    def show(message, category, filename, lineno, file=None, line=None):
        text = command_line_text(str(message))
        if text not in shown:
            shown.add(text)
            typer.echo(f"warning: {text}", err=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a scheduler's time limit) unwinds like Ctrl-C, so temporaries
    are removed; only ``kill -9`` cannot be caught (the next run removes its leftovers)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _usage_errors() -> tuple[type, ...]:
    """Usage-error classes of the click that typer runs on (vendored in newer typer)."""
    found = []
    try:
        from typer._click.exceptions import ClickException as vendored  # typer >= 0.20

        found.append(vendored)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException as upstream

        found.append(upstream)
    except ImportError:
        pass
    return tuple(found)


_USAGE_ERRORS = _usage_errors()


def _exit(code: int) -> int:
    return int(code)
