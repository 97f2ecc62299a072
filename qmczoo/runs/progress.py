"""Progress bars (rich) for pretraining, training and evaluation, and the training bar's text."""

from __future__ import annotations

from qmczoo.engine.vmc import StepStats


class Progress:
    """A rich progress bar (or nothing), shared by pretraining, training and evaluation."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), refresh_per_second=4)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int, completed: int = 0):
        if self._progress is None:
            return lambda **_: None
        task_id = self._progress.add_task(description, total=total, completed=completed, info="")

        def update(advance: int = 1, info: str = ""):
            self._progress.update(task_id, advance=advance, info=info)

        return update


class StepLine:
    """The progress bar's text: training energy, the latest monitor-chain energy, variance."""

    def __init__(self):
        self.monitor = None

    def __call__(self, stats: StepStats) -> str:
        if stats.monitor_energy is not None:
            self.monitor = stats.monitor_energy
        monitor = "" if self.monitor is None else f"  monitor E={self.monitor:.5f}"
        return f"E={stats.energy:.5f}{monitor}  var={stats.variance:.3g}  acc={stats.acceptance:.2f}"
