"""Run folders: the only part of qmczoo that touches the disk.

==================  ==============================================================
module              job
==================  ==============================================================
``lifecycle``       a run's life: create, lock, write the config, train with checkpoints,
                    evaluate, summarise (:func:`train`, what ``qmczoo train`` calls)
``evaluation``      evaluating a finished run (:func:`evaluate_run`, ``qmczoo evaluate``)
``checks``          settings checked before anything is written
``resume``          what a resume checks first: results without a checkpoint, a finished
                    run, ``train.csv`` against the checkpoint's step
``interrupt``       Ctrl-C at the next step boundary, never inside a step
``folder``          which files a run folder holds, its lock, safe writes (never through a link)
``run_config``      ``config.yaml``
``train_log``       ``train.csv``
``summary``         ``summary.json``
``checkpoint``      the checkpoint format (``checkpoint.msgpack``)
``progress``        progress bars
``plotting``        ``energy.png``, the bench's and the PES plots
``pes``             per-geometry outputs of a PES run (``pes.csv``, ``pes.png``)
``bench``           several ansätze on several systems, on equal terms (``qmczoo bench``)
==================  ==============================================================
"""

from qmczoo.runs.evaluation import evaluate_run
from qmczoo.runs.folder import CHECKPOINT, LOCK_FILE, lock_run
from qmczoo.runs.lifecycle import RunInterrupted, RunResult, TrainingStopped, train
from qmczoo.runs.run_config import load_run_config, read_config_file
from qmczoo.runs.summary import summarize
from qmczoo.runs.train_log import read_log

__all__ = ["train", "evaluate_run", "load_run_config", "read_config_file", "read_log", "summarize", "lock_run",
           "RunResult", "RunInterrupted", "TrainingStopped",
           "CHECKPOINT", "LOCK_FILE"]
