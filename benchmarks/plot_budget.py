"""Plot energy error against wall time for budget runs of benchmarks/lih_kfac.py.

    python benchmarks/plot_budget.py OUT.png RUN.csv[:LABEL] [RUN.csv[:LABEL] ...]

Each curve is the 300-step running mean of the training energy minus the exact LiH energy,
against minutes since process start; the band marks ±1.6 mHa (chemical accuracy).
"""

from __future__ import annotations

import sys

import numpy as np

EXACT = -8.070548
WINDOW = 300


def main(out: str, runs: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for spec in runs:
        path, _, label = spec.partition(":")
        d = np.loadtxt(path, delimiter=",", skiprows=1)
        t, e = d[:, 1] / 60, d[:, 2]
        mean = np.convolve(e, np.ones(WINDOW) / WINDOW, mode="valid")
        ax.plot(t[WINDOW - 1:], 1e3 * (mean - EXACT), lw=1.2, label=label or path)
    ax.axhspan(-1.6, 1.6, color="tab:green", alpha=0.15, label="±1.6 mHa")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(-5, 15)
    ax.set_xlabel("minutes since start (pretraining and compilation included)")
    ax.set_ylabel("300-step mean − exact (mHa)")
    ax.set_title("LiH, FermiNet (4×(128,16), 8 dets), 256 walkers, KFAC, 2-core CPU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
