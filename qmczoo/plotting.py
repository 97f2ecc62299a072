"""Plots of a run: the training and monitor-chain energies against steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` samples (shorter at the start). ``[T] -> [T]``."""
    x = np.asarray(x, dtype=float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_training(steps, energies, variances, path: str | Path, *, reference: float | None = None,
                  title: str = "", evaluation: tuple[float, float] | None = None, monitor=None) -> Path:
    """Write ``energy.png``: energy (raw and running mean) and variance against step.

    ``reference`` draws the exact energy; ``evaluation`` = ``(E, sigma)`` draws the
    evaluated energy band; ``monitor`` ``[T]`` (NaN where not measured) draws the running
    mean of the monitor chain, the honest energy while training.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, energies, variances = (np.asarray(a, dtype=float) for a in (steps, energies, variances))
    ok = np.isfinite(energies)
    window = max(1, min(100, len(energies) // 10))
    fig, (ax_e, ax_v) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
    ax_e.plot(steps[ok], energies[ok], lw=0.6, alpha=0.45, color="tab:blue", label="energy per step")
    ax_e.plot(steps[ok], running_mean(energies[ok], window), lw=1.6, color="tab:blue",
              label=f"running mean ({window} steps)")
    if monitor is not None:
        monitor = np.asarray(monitor, dtype=float)
        seen = np.isfinite(monitor)
        if seen.sum() > 1:
            m_window = max(1, min(20, int(seen.sum()) // 10))
            ax_e.plot(steps[seen], running_mean(monitor[seen], m_window), lw=1.6, color="tab:red",
                      label=f"monitor chain, running mean ({m_window} points)")
    if reference is not None:
        ax_e.axhline(reference, color="k", ls="--", lw=1, label=f"reference {reference:.6f}")
    if evaluation is not None:
        e, s = evaluation
        ax_e.axhspan(e - s, e + s, color="tab:orange", alpha=0.35, label=f"evaluation {e:.5f} ± {s:.5f}")
    tail = energies[ok][len(energies[ok]) // 5:]
    if tail.size > 2:
        lo, hi = np.percentile(tail, [1, 99])
        if reference is not None:
            lo, hi = min(lo, reference), max(hi, reference)
        pad = 0.25 * (hi - lo) + 1e-3
        ax_e.set_ylim(lo - pad, hi + pad)
    ax_e.set_ylabel("energy (Ha)")
    ax_e.legend(fontsize=8, loc="upper right")
    ax_e.set_title(title)
    ax_e.grid(alpha=0.3)
    good = np.isfinite(variances) & (variances > 0)
    ax_v.semilogy(steps[good], variances[good], lw=0.6, color="tab:green")
    ax_v.set_ylabel("variance (Ha²)")
    ax_v.set_xlabel("step")
    ax_v.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
