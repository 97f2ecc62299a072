"""The typer application and what every command shares: one ``error:`` line for bad input."""

from __future__ import annotations

import functools
import os
import sys
import warnings

import typer

try:  # typer >= 0.25 carries its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer on click
    import click
from typer.core import TyperGroup

#: exit codes: 0 done, 1 a bench cell failed, 2 an ``error:`` line (bad input, a refused
#: folder, a disk that cannot be written), 130 interrupted (Ctrl-C)
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def _usage_hint(ctx) -> str:
    """``qmczoo COMMAND --help`` for the context of a usage error (``qmczoo --help`` at the top)."""
    names = []
    while ctx is not None and ctx.parent is not None:  # the root's name is however qmczoo was started
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["qmczoo", *reversed(names), "--help"])


class _Group(TyperGroup):
    """The application's click group: a usage error (an option of the wrong type, an unknown option
    or command, a missing argument) is one line ``error: ... (see qmczoo COMMAND --help)`` and
    exit code 2, like every other bad input, instead of click's boxed usage text."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `qmczoo` alone: the help text (as click: exit 2)
            if exc.format_message().strip():  # (rich has printed it already)
                click.echo(exc.format_message(), err=True)
            code = EXIT_ERROR
        except click.exceptions.UsageError as exc:
            message = " ".join(exc.format_message().split()).rstrip(".")
            click.echo(f"error: {message} (see {_usage_hint(exc.ctx)})", err=True)
            code = EXIT_ERROR
        except click.exceptions.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            code = EXIT_ERROR
        except (typer.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            code = EXIT_INTERRUPTED
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_Group,
                  help="qmczoo: neural-network wavefunctions for variational quantum Monte Carlo.")


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """qmczoo's own warnings (a broken plug-in, what a resume repaired) as ``warning: ...`` lines."""
    from qmczoo.errors import QmczooWarning

    if issubclass(category, QmczooWarning):
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file, flush=True)
        return
    _default(message, category, filename, lineno, file, line)


def _friendly(fn):
    """Turn qmczoo's input errors into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from qmczoo.errors import QmczooError

        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return fn(*args, **kwargs)
        except QmczooError as exc:
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(EXIT_ERROR)
        except OSError as exc:  # a file that is missing, not readable or not writable; a full disk
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR)
        except RecursionError:
            typer.echo("error: the input is nested too deeply to read (Python's recursion limit); flatten it",
                       err=True)
            raise typer.Exit(EXIT_ERROR)
        except KeyboardInterrupt as exc:
            from qmczoo.runs import RunInterrupted

            if isinstance(exc, RunInterrupted) and exc.checkpointed:
                msg = (f"interrupted: progress so far is checkpointed; continue with "
                       f"qmczoo train --resume {exc.out_dir}")
            elif isinstance(exc, RunInterrupted):
                msg = (f"interrupted before the first checkpoint: nothing to continue from; "
                       f"qmczoo train --resume {exc.out_dir} starts the run again from the beginning")
            else:
                msg = "interrupted"
            typer.echo(msg, err=True)
            raise typer.Exit(EXIT_INTERRUPTED)
        finally:
            warnings.showwarning = previous

    return wrapper


def _quiet_jax():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


def _claims_text(claims) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in (claims or {}).items() if v) or "-"


def _options_text(options) -> str:
    import yaml

    return ", ".join(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                     for k, v in (options or {}).items()) or "-"


def _capture_geometry_warnings(fn, *args, **kwargs):
    """Call ``fn``; print its GeometryWarnings as ``warning: ...`` lines on stderr."""
    import warnings

    from qmczoo.chemistry.systems import GeometryWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeometryWarning)
        result = fn(*args, **kwargs)
    for w in caught:
        if issubclass(w.category, GeometryWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


# --distributed and its three options, shared by train, evaluate and bench (docs/devices.md)
DISTRIBUTED = typer.Option(False, "--distributed",
                           help="Run as one process of several (hosts, or one per GPU) on jax's distributed "
                                "runtime; every process gets the same command and --out. Under SLURM or Open MPI "
                                "the processes are found from the environment.")
COORDINATOR = typer.Option(None, "--coordinator", show_default=False,
                           help="With --distributed: HOST:PORT of process 0 (default: from SLURM / Open MPI).")
NUM_PROCESSES = typer.Option(None, "--num-processes", show_default=False,
                             help="With --distributed: the number of processes (default: from SLURM / Open MPI).")
PROCESS_ID = typer.Option(None, "--process-id", show_default=False,
                          help="With --distributed: this process's index, 0 .. P-1 (default: from SLURM / Open MPI).")


def _join_distributed(distributed: bool, coordinator, num_processes, process_id) -> None:
    """Join a distributed run (before anything starts jax); only process 0 prints results."""
    from qmczoo.errors import ConfigError

    if not distributed:
        if coordinator is not None or num_processes is not None or process_id is not None:
            raise ConfigError("--coordinator, --num-processes and --process-id belong to a distributed run: "
                              "add --distributed")
        return
    from qmczoo.distributed import initialize, is_main_process

    initialize(coordinator, num_processes, process_id)
    if not is_main_process():  # the same lines would come from every process: process 0 speaks
        sys.stdout.flush()
        try:  # the collectives' own C++ lines too; errors stay on stderr
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
