"""Ctrl-C between training steps, never inside one.

kfac-jax takes ownership of (donates) the parameter and optimizer-state arrays it is given, so
an interrupt that lands inside an optimisation step leaves the loop holding a state whose
arrays are deleted: saving it ("Array has been deleted") turned a Ctrl-C into a traceback.
While :class:`StepBoundaryInterrupt` is active, the first Ctrl-C only asks the loop to stop: the
step in flight finishes, and :meth:`~StepBoundaryInterrupt.check` raises ``KeyboardInterrupt``
at the next step boundary, where the state is whole and is checkpointed. A second Ctrl-C stops
at once (the last checkpoint is then what is kept).

Only the main thread can take signals; elsewhere (or with a non-default SIGINT handler that is
not Python's) the context does nothing and Ctrl-C behaves as usual.
"""

from __future__ import annotations

import signal
import sys
import threading


class StepBoundaryInterrupt:
    """Context manager: defer the first Ctrl-C to the next :meth:`check` (a step boundary)."""

    def __init__(self, message: str = "interrupt: stopping after this step (Ctrl-C again to stop at once)"):
        self.message = message
        self.pending = False
        self._previous = None
        self._active = False

    def __enter__(self):
        self.pending = False
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
                self._active = True
            except (ValueError, OSError):  # not possible here (an embedded interpreter): Ctrl-C as usual
                self._active = False
        return self

    def _handler(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True
        print(self.message, file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._active:
            signal.signal(signal.SIGINT, self._previous)
            self._active = False
        return False
