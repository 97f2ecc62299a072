"""Draw docs/excited_states.png: the state energies of several-state runs against the step, beside the exact ones.

    python benchmarks/plot_excited.py OUT.png RUN_DIR[=LABEL] [RUN_DIR[=LABEL] ...]

Each run folder (``qmczoo train --states K``) contributes one panel: the error of each state's
training energy (running mean over 100 steps) relative to its exact energy
(``qmczoo/chemistry/data/excited_states.yaml``), with the evaluated ``E ± sigma`` at the end, and
the ±2 mHa band of the benchmark's goal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qmczoo.runs.plotting import running_mean  # noqa: E402
from qmczoo.runs.states import read_state_log  # noqa: E402


def main(out: str, runs: list[str]) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.2), sharey=True, squeeze=False)
    for ax, item in zip(axes[0], runs):
        folder, _, label = item.partition("=")
        folder = Path(folder)
        steps, energies = read_state_log(folder)
        record = json.loads((folder / "evaluation.json").read_text())
        for m, state in enumerate(record["states"]):
            if state["reference_energy"] is None:
                continue
            ok = np.isfinite(energies[:, m])  # a step rejected by the NaN guard has no energies
            err = 1000.0 * (running_mean(energies[ok, m], 100) - state["reference_energy"])
            line, = ax.plot(steps[ok], err, lw=1.2, label=f"state {m} ({state['term']})")
            sigma = 1000.0 * (state["energy_error"] or 0.0)
            ax.errorbar([steps[-1] * 1.02], [state["error_mha"]], yerr=[sigma], fmt="o", color=line.get_color(),
                        capsize=3)
        ax.axhspan(-2, 2, color="0.85", zorder=0, label="±2 mHa")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=2)
        ax.set_xlabel("training step")
        ax.set_title(label or folder.name, fontsize=10)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("E − exact (mHa)")
    fig.suptitle("training energy per state (running mean of 100 steps) and evaluated E ± σ (dots)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"written {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
