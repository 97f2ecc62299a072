"""Plots of a run: the training and monitor-chain energies against steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(fig, path: Path, dpi: int) -> None:
    """Render ``fig`` as PNG into ``path`` through :func:`~qmczoo.runs.folder.write_file` (never through a link)."""
    import io

    from qmczoo.runs.folder import write_file

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    write_file(path, buf.getvalue())


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
    _save(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_bench(curves: list[dict], path: str | Path, *, references: dict | None = None) -> Path:
    """Write a bench's ``convergence.png``: one row of panels per system.

    Columns: training energy against step, against training wall time, and the distance
    |E − E_ref| (mHa, running means, log scale) against step. One colour per ansatz (seeds
    share it); the reference as a dashed line; the evaluated energy of the final parameters
    as a point with its error bar at the end of each line.

    ``curves``: dicts with ``label``, ``system``, ``seed``, ``step``, ``wall_time``,
    ``energy`` (arrays), ``evaluation`` (``(E, sigma)`` or None) and optionally ``kind`` (which
    energy it is, shown on the axis).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    references = references or {}
    systems = list(dict.fromkeys([c["system"] for c in curves] + list(references)))
    labels = list(dict.fromkeys(c["label"] for c in curves))
    colours = {lab: plt.get_cmap("tab10")(i % 10) for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(max(1, len(systems)), 3, figsize=(15, 3.6 * max(1, len(systems))), squeeze=False)
    for row, system in zip(axes, systems):
        ref = references.get(system)
        mine = [c for c in curves if c["system"] == system]
        finals, tails = [], []
        for c in mine:
            steps, wall, energy = (np.asarray(c[k], dtype=float) for k in ("step", "wall_time", "energy"))
            ok = np.isfinite(energy)
            if not ok.any():
                continue
            steps, wall, energy = steps[ok], wall[ok], energy[ok]
            smooth = running_mean(energy, max(1, min(100, energy.size // 5)))
            tails.append(smooth[smooth.size // 2:])
            first = c is next(x for x in mine if x["label"] == c["label"])
            style = dict(color=colours[c["label"]], lw=1.4, label=c["label"] if first else None)
            row[0].plot(steps, smooth, **style)
            row[1].plot(wall, smooth, **style)
            if ref is not None:
                gap = np.abs(smooth - ref) * 1000.0
                good = gap > 0
                row[2].semilogy(steps[good], gap[good], **style)
            finals.append(smooth[-1])
            if c.get("evaluation") is not None and np.isfinite(c["evaluation"][0]):
                e, s = c["evaluation"]
                s = s if np.isfinite(s) else 0.0
                row[0].errorbar([steps[-1]], [e], yerr=[s], fmt="o", ms=4, color=colours[c["label"]])
                row[1].errorbar([wall[-1]], [e], yerr=[s], fmt="o", ms=4, color=colours[c["label"]])
                if ref is not None and abs(e - ref) > 0:
                    row[2].errorbar([steps[-1]], [1000 * abs(e - ref)], yerr=[1000 * s], fmt="o", ms=4,
                                    color=colours[c["label"]])
        for ax in row[:2]:
            if ref is not None:
                ax.axhline(ref, color="k", ls="--", lw=1, label=f"reference {ref:.6f}")
            if finals:  # the second half of every curve, the evaluations and the reference
                values = np.concatenate(tails + [np.asarray(finals), np.asarray([ref] if ref is not None else [])])
                values = np.concatenate([values, [c["evaluation"][0] for c in mine if c.get("evaluation")]])
                lo, hi = np.percentile(values[np.isfinite(values)], [2, 98])
                if ref is not None:
                    lo, hi = min(lo, ref), max(hi, ref)
                pad = max(0.15 * (hi - lo), 2e-3)
                ax.set_ylim(lo - pad, hi + 2 * pad)
            ax.set_ylabel("energy (Ha)")
            ax.grid(alpha=0.3)
        kinds = sorted({c.get("kind", "training walkers") for c in mine})
        row[0].set_ylabel(f"energy (Ha), {' / '.join(kinds)}", fontsize=8)
        row[0].set_title(f"{system}: energy against step")
        row[1].set_title(f"{system}: energy against training wall time")
        row[0].set_xlabel("step")
        row[1].set_xlabel("training wall time (s)")
        row[2].set_title(f"{system}: |E − E_ref| (running mean; dots: evaluated)")
        row[2].set_xlabel("step")
        row[2].set_ylabel("mHa")
        if ref is not None:
            row[2].axhline(1.6, color="grey", ls=":", lw=1, label="1.6 mHa")
        row[2].grid(alpha=0.3, which="both")
        for ax in row:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    _save(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_pes(values, energies, errors, path: str | Path, *, reference=None, xlabel: str = "bond length (bohr)",
             title: str = "", label: str = "qmczoo") -> Path:
    """Write a potential-energy curve: energies ± errors (hartree) against the coordinate.

    ``values`` ``[G]`` (the coordinate, e.g. bond lengths in bohr), ``energies`` ``[G]`` and
    ``errors`` ``[G]`` (standard errors; None for none) in hartree; NaN energies are left out.
    ``reference`` = ``(x [P], E [P], source_label)`` draws a tabulated curve as a black line
    with points, and a lower panel of ``E − E_ref`` in mHa (± error) with a ±2 mHa band, where
    ``E_ref`` is the tabulated value at that x or, inside the table's range, its cubic-spline
    interpolation (see :func:`qmczoo.chemistry.reference_curves.interpolate_reference`). Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qmczoo.chemistry.reference_curves import interpolate_reference

    x, e = (np.asarray(a, dtype=float).ravel() for a in (values, energies))
    s = np.zeros_like(e) if errors is None else np.asarray(errors, dtype=float).ravel()
    s = np.where(np.isfinite(s), s, 0.0)
    order = np.argsort(x, kind="stable")
    x, e, s = x[order], e[order], s[order]
    ok = np.isfinite(x) & np.isfinite(e)
    if reference is None:
        fig, ax_e = plt.subplots(figsize=(7, 4.5))
        ax_d = None
    else:
        fig, (ax_e, ax_d) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    ax_e.errorbar(x[ok], e[ok], yerr=s[ok], fmt="o-", ms=4, lw=1.2, capsize=3, color="tab:blue", label=label)
    if reference is not None:
        ref_x, ref_e, ref_label = reference
        ref_x, ref_e = np.asarray(ref_x, dtype=float), np.asarray(ref_e, dtype=float)
        ref_order = np.argsort(ref_x, kind="stable")
        ax_e.plot(ref_x[ref_order], ref_e[ref_order], "k.-", lw=1, ms=5, label=str(ref_label))
        e_ref = interpolate_reference(x, ref_x, ref_e)
        has = ok & np.isfinite(e_ref)
        ax_d.axhspan(-2.0, 2.0, color="tab:green", alpha=0.15, label="±2 mHa")
        ax_d.axhline(0.0, color="k", lw=0.8)
        if has.any():
            ax_d.errorbar(x[has], 1000.0 * (e[has] - e_ref[has]), yerr=1000.0 * s[has], fmt="o-", ms=4, lw=1.0,
                          capsize=3, color="tab:blue", label=label)
        else:
            ax_d.text(0.5, 0.5, "no reference value at these points", transform=ax_d.transAxes,
                      ha="center", va="center", fontsize=9, color="grey")
        ax_d.set_ylabel("E − E_ref (mHa)")
        ax_d.set_xlabel(xlabel)
        ax_d.grid(alpha=0.3)
        ax_d.legend(fontsize=8, loc="upper right")
    else:
        ax_e.set_xlabel(xlabel)
    ax_e.set_ylabel("energy (Ha)")
    ax_e.set_title(title)
    ax_e.grid(alpha=0.3)
    if ax_e.get_legend_handles_labels()[0]:
        ax_e.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    _save(fig, path, dpi=110)
    plt.close(fig)
    return path
