"""Keep OpenBLAS single-threaded.

jax's CPU linear algebra (LU, Cholesky, inverses: slogdet in every determinant ansatz and
every KFAC inverse) calls LAPACK from scipy's OpenBLAS. On small matrices (tens to hundreds
of rows) OpenBLAS's threads spin and synchronise far longer than they compute: measured on a
2-core machine, inverting a 33x33 matrix took 15 ms with 2 OpenBLAS threads and 0.06 ms with
one. XLA's own kernels have their own thread pool and are not affected.
"""

from __future__ import annotations

import os

_ENV = "QMCZOO_BLAS_THREADS"


def blas_threads() -> int:
    """Threads OpenBLAS may use: ``$QMCZOO_BLAS_THREADS`` or 1."""
    try:
        return max(1, int(os.environ.get(_ENV, "1")))
    except ValueError:
        return 1


def limit_blas_threads() -> None:
    """Limit already-loaded BLAS libraries to :func:`blas_threads` threads (via threadpoolctl)."""
    try:
        import threadpoolctl
    except ImportError:  # the environment variable set at import still applies
        return
    threadpoolctl.threadpool_limits(blas_threads(), user_api="blas")
