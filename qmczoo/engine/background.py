"""Work that may run beside the main thread and is never needed for correctness.

The training step's compilation (tens of seconds on a CPU) does not depend on pretraining's
result, only on the shapes of the parameters and walkers, so :class:`~qmczoo.engine.vmc.VMC`
compiles it in a thread while Hartree–Fock and pretraining run (see
:meth:`~qmczoo.engine.vmc.VMC.pretrain`). XLA compiles on one core while pretraining's kernels use
the others; jax's compilation caches are shared between threads, so the main thread's first
call of a compiled function finds it ready.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class BackgroundWork:
    """Run ``fn()`` once in a daemon thread.

    The work is an optimisation only: an exception in it is logged (at debug level) and
    dropped, and the main thread then does the same work itself and raises the error there,
    with its ordinary traceback. A daemon thread does not keep a process alive that is
    interrupted (Ctrl-C) while the work runs.
    """

    def __init__(self, fn: Callable[[], object], name: str = "qmczoo-background"):
        self.seconds: float | None = None
        self.error: BaseException | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        start = time.perf_counter()
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - the main thread redoes the work and raises
            self.error = exc
            log.debug("background work failed (the main thread will redo it): %r", exc)
        finally:
            self.seconds = time.perf_counter() - start

    def join(self) -> "BackgroundWork":
        """Wait for the work to finish; returns self."""
        self._thread.join()
        return self
