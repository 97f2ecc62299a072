"""What a resume checks before it trains: is the folder a run that can continue, and does its log
agree with its checkpoint.

A resume never replaces a finished run's results without adding steps, and never starts a run
that holds results from step 0 again:

* no checkpoint but results (``summary.json``, ``evaluation.json``, ``pes.csv``, a ``train.csv``
  with rows): refused (the checkpoint was deleted; starting again would overwrite them);
* a requested total below the checkpoint's step: refused (``--steps`` must be larger);
* a requested total equal to the checkpoint's step in a run that wrote its ``summary.json``
  (it finished): refused (nothing to train; ``qmczoo evaluate`` evaluates it again). Without a
  summary (killed after its last checkpoint) the resume writes the missing results;
* ``train.csv`` checked against the checkpoint's step (:func:`~qmczoo.runs.train_log.check_log`):
  a last line cut short by a kill is repaired, a log that is binary, skips or repeats steps or
  stops before the checkpoint is refused with the way out; a missing log continues with a note.

:func:`check_resume` only reads, so the command line runs it before it prints anything; the
trainer runs it again with the folder locked.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from qmczoo.errors import ConfigError, QmczooWarning
from qmczoo.runs import checkpoint
from qmczoo.runs.folder import CHECKPOINT
from qmczoo.runs.train_log import check_log

RESULT_FILES = ("summary.json", "evaluation.json", "pes.csv")


class ResumeWarning(QmczooWarning):
    """Something a resume repaired or will do differently (the command line prints ``warning:``)."""


def _has_rows(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return len(f.read(1 << 16).splitlines()) > 1
    except OSError:
        return False


def check_resume(out: Path, steps: int) -> int | None:
    """Check that the run in ``out`` may continue to ``steps`` steps in total.

    Returns the checkpoint's step (None: no checkpoint, the run starts again from its
    config.yaml). Warns (:class:`ResumeWarning`) about what the resume will repair.

    Raises:
      ConfigError: see the module docstring; the message says why and what to do.
    """
    out = Path(out)
    if not (out / CHECKPOINT).exists():
        results = [n for n in RESULT_FILES if (out / n).exists()]
        results += [n for n in ("train.csv", "train_geometries.csv") if _has_rows(out / n)]
        if results:
            raise ConfigError(
                f"{out} holds results ({', '.join(results)}) but no {CHECKPOINT}: resuming would start the run "
                f"again from step 0 and overwrite them. Restore the checkpoint, or start a new run with the same "
                f"settings: qmczoo train --config {out / 'config.yaml'} --out NEW")
        return None
    done = checkpoint.saved_step(out / CHECKPOINT)
    if steps < done:
        raise ConfigError(f"{out} already has {done} steps (its checkpoint is at step {done}): --steps {steps} would "
                          f"train nothing; give a larger --steps to continue it")
    if steps == done and (out / "summary.json").exists():
        raise ConfigError(f"{out} already finished its {done} steps: to train further give --steps larger than "
                          f"{done}; to evaluate it again use qmczoo evaluate {out}")
    _, note = check_log(out, done)
    if note:
        warnings.warn(note, ResumeWarning, stacklevel=2)
    return done
