"""Draws docs/architecture.png: the packages and their imports, one run, and one VMC step.

Run: python docs/architecture.py   (matplotlib only; rewrites docs/architecture.png)
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

COLOURS = {"cli": "#f4d7d7", "runs": "#f9e6c8", "engine": "#d8e8f6", "models": "#dcefd9", "registry": "#dcefd9",
           "layers": "#e7e0f3", "chemistry": "#efefd0", "contract": "#e6e6e6"}


def box(ax, x, y, w, h, text, kind, size=8.5, bold=False):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.012,rounding_size=0.015",
                                fc=COLOURS[kind], ec="#555555", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, fontweight="bold" if bold else "normal",
            linespacing=1.25)


def arrow(ax, a, b, text="", rad=0.0, colour="#333333", size=7.5, offset=(0.0, 0.0)):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, lw=0.9, color=colour,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
    if text:
        ax.text((a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1], text, fontsize=size, color="#333333",
                ha="center", va="center", style="italic")


def packages(ax):
    ax.set_title("packages: imports flow downwards only", fontsize=10, loc="left")
    rows = [(0.92, [("cli/\nlist · info · train · evaluate · bench", "cli")]),
            (0.74, [("runs/\nlifecycle · evaluation · checks · folder\ncheckpoint · bench/ · plots · pes", "runs")]),
            (0.52, [("engine/\nsampler · hamiltonian · loss\nvmc · pretrain · evaluate\nstatistics", "engine"),
                    ("registry/\nnames -> AnsatzSpec\nclaims · symmetry", "registry"),
                    ("models/\nferminet · paulinet\npair_product · pesnet", "models")]),
            (0.30, [("layers/\nfeatures · embeddings · orbitals · envelopes\nbackflow · antisymmetrizers · jastrows · geometry encoder", "layers")]),
            (0.09, [("chemistry/\nsystems · hartree_fock · geometry sets", "chemistry"),
                    ("wavefunction.py (the contract)\nsign, log|psi| = apply(params, r, R)", "contract")])]
    for y, items in rows:
        n = len(items)
        for i, (text, kind) in enumerate(items):
            x = (i + 0.5) / n
            box(ax, x, y, 0.94 / n, 0.15, text, kind, size=7.8)
    for y0, y1 in ((0.85, 0.81), (0.67, 0.59), (0.45, 0.37), (0.23, 0.16)):
        arrow(ax, (0.5, y0), (0.5, y1))


def one_run(ax):
    ax.set_title("one run: qmczoo train (runs/lifecycle.py)", fontsize=10, loc="left")
    steps = [("check every setting\n(nothing written on bad input)", "runs"),
             ("create + lock the folder\nwrite config.yaml", "runs"),
             ("Hartree–Fock (pyscf, cached)\nbuild the ansatz from the registry", "chemistry"),
             ("pretrain orbitals to HF\n(compile the step beside it)", "engine"),
             ("burn-in, then VMC steps\ntrain.csv + checkpoint every 100", "engine"),
             ("fixed-parameter evaluation\nreblocked error bar", "engine"),
             ("summary.json · evaluation.json\nenergy.png", "runs")]
    n = len(steps)
    for i, (text, kind) in enumerate(steps):
        y = 0.93 - i * (0.86 / (n - 1))
        box(ax, 0.5, y, 0.86, 0.095, text, kind, size=8)
        if i:
            arrow(ax, (0.5, y + 0.86 / (n - 1) - 0.048), (0.5, y + 0.048))
    ax.text(0.5, -0.02, "Ctrl-C / kill: resume from the last checkpoint (--resume)", ha="center", fontsize=7.5,
            style="italic")


def one_step(ax):
    ax.set_title("one VMC step: VMC.step (engine/)", fontsize=10, loc="left")
    pts = {"walkers": (0.18, 0.80), "mcmc": (0.70, 0.80), "el": (0.70, 0.52), "loss": (0.70, 0.24),
           "opt": (0.18, 0.24), "params": (0.18, 0.52)}
    box(ax, *pts["walkers"], 0.30, 0.13, "walkers\nr [B, N, 3]", "engine", bold=True)
    box(ax, *pts["mcmc"], 0.40, 0.13, "sampler.make_mcmc\nMetropolis on |psi|^2", "engine")
    box(ax, *pts["el"], 0.40, 0.15, "hamiltonian: local energy\nforward Laplacian (folx)\nin chunks of walkers", "engine")
    box(ax, *pts["loss"], 0.40, 0.13, "loss: clip around median\ncentred gradient", "engine")
    box(ax, *pts["opt"], 0.30, 0.13, "KFAC (kfac-jax)\nor optax; NaN guard", "engine")
    box(ax, *pts["params"], 0.30, 0.13, "params\nansatz (models, layers)", "models", bold=True)
    arrow(ax, (0.33, 0.80), (0.50, 0.80))
    arrow(ax, (0.70, 0.735), (0.70, 0.595), "new walkers", offset=(0.13, 0.0))
    arrow(ax, (0.70, 0.445), (0.70, 0.305), "E_L [B]", offset=(0.09, 0.0))
    arrow(ax, (0.50, 0.24), (0.33, 0.24), "gradient", offset=(0.0, 0.04))
    arrow(ax, (0.18, 0.305), (0.18, 0.455), "update", offset=(-0.08, 0.0))
    arrow(ax, (0.33, 0.55), (0.50, 0.76), "log|psi|", rad=-0.15, offset=(0.0, 0.04))
    ax.text(0.45, 0.06, "monitor chain every 10 steps: walkers never used for an update", ha="center", fontsize=7.5,
            style="italic")


def main():
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), gridspec_kw={"width_ratios": [1.25, 0.9, 1.0]})
    for ax, draw in zip(axes, (packages, one_run, one_step)):
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.0)
        ax.axis("off")
        draw(ax)
    fig.tight_layout()
    out = Path(__file__).with_name("architecture.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
