"""The typer application and what every command shares: one ``error:`` line for bad input."""

from __future__ import annotations

import functools
import os

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="qmczoo: neural-network wavefunctions for variational quantum Monte Carlo.")


def _friendly(fn):
    """Turn qmczoo's input errors into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from qmczoo.errors import QmczooError

        try:
            return fn(*args, **kwargs)
        except QmczooError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
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
            raise typer.Exit(130)

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
