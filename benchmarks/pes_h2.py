"""PESNet on the H2 dissociation curve against independent FermiNet runs (issue 17's benchmark).

Trains PESNet (one network, all geometries at once) on a scan of the H2 bond, and FermiNet
once per geometry, with the same total number of optimisation steps (PESNet's steps = the
FermiNet runs' steps summed) and the same walkers per step; evaluates every geometry with
fixed parameters (reblocked error bars) and compares with the exact Born–Oppenheimer curve
(``qmczoo/chemistry/data/pes.yaml``, Sims & Hagstrom 2006). Prints one table and writes ``table.md``,
``results.json`` and ``pes_h2.png`` (energies and errors of both against the bond length).

    python benchmarks/pes_h2.py --out runs/pes_h2                  # defaults below
    python benchmarks/pes_h2.py --pesnet-steps 3400 --out runs/pes_h2b

Training wall time counts everything a user waits for before the evaluation: Hartree–Fock,
pretraining, compilation and the optimisation steps; the evaluation (the same for both:
``--batch-size`` walkers per geometry for ``--eval-steps`` steps) is timed apart. A finished
part (its ``benchmark.json`` exists) is not run again, so a killed benchmark continues where it
stopped. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmczoo import runs  # noqa: E402
from qmczoo.runs.folder import json_safe  # noqa: E402
from qmczoo.chemistry.reference_curves import interpolate_reference, reference_curve  # noqa: E402
from qmczoo.chemistry.scans import parse_scan  # noqa: E402
from qmczoo.chemistry.systems import get_system  # noqa: E402
from qmczoo.engine.config import TrainConfig  # noqa: E402


def _run(out: Path, eval_steps: int, eval_batch: int, **kwargs) -> dict:
    """Train into ``out`` (unless finished before), then evaluate with ``eval_batch`` walkers;
    the summary with the training and evaluation wall times and the evaluation record."""
    done = out / "benchmark.json"
    if done.exists():
        return json.loads(done.read_text())
    if out.exists():  # a killed part: start it again
        import shutil

        shutil.rmtree(out)
    start = time.perf_counter()
    result = runs.train(out_dir=out, progress=False, eval_steps=0, **kwargs)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    runs.evaluate_run(out, eval_steps, batch_size=eval_batch, progress=False)
    record = dict(result.summary, train_wall_seconds=train_seconds, eval_wall_seconds=time.perf_counter() - start,
                  evaluation=json.loads((out / "evaluation.json").read_text()))
    done.write_text(json.dumps(json_safe(record), indent=2))
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scan", default="bond=0.8:4.0:17")
    ap.add_argument("--pesnet-steps", type=int, default=1700)
    ap.add_argument("--ferminet-steps", type=int, default=None,
                    help="steps of each FermiNet run (default: PESNet's steps / number of geometries)")
    ap.add_argument("--pesnet-preset", default="small")
    ap.add_argument("--ferminet-preset", default="small")
    ap.add_argument("--batch-size", type=int, default=256, help="walkers per step, for both")
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--eval-steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("runs/pes_h2"))
    ap.add_argument("--replot", action="store_true", help="only redraw pes_h2.png from --out's results.json")
    args = ap.parse_args(argv)
    if args.replot:
        results = json.loads((args.out / "results.json").read_text())
        ref_x, ref_e, _ = reference_curve()
        _plot(results["rows"], ref_x, ref_e, args.out / "pes_h2.png", results["geometries"], results["pesnet_steps"],
              results["ferminet_steps_each"])
        return

    system = get_system("H2")
    gset = parse_scan(system, args.scan)
    n = gset.n_geometries
    ferminet_steps = args.ferminet_steps or max(1, args.pesnet_steps // n)
    args.out.mkdir(parents=True, exist_ok=True)
    common = dict(pretrain_steps=args.pretrain_steps, batch_size=args.batch_size)

    # the same walkers per step for both (PESNet: --batch-size in all, split over the geometries);
    # the same evaluation for both: --batch-size walkers per geometry, --eval-steps steps
    pesnet = _run(args.out / "pesnet", args.eval_steps, args.batch_size * n, system=system, ansatz="pesnet",
                  preset=args.pesnet_preset, geometries=gset, config=TrainConfig(steps=args.pesnet_steps, **common))
    ferminet = []
    for g in range(n):
        ferminet.append(_run(args.out / f"ferminet_{g:02d}", args.eval_steps, args.batch_size,
                             system=gset.system_at(g), ansatz="ferminet", preset=args.ferminet_preset,
                             config=TrainConfig(steps=ferminet_steps, **common)))
        print(f"FermiNet at {gset.labels[g]}: {ferminet[-1]['evaluation']['energy']:.5f}", flush=True)

    ref_x, ref_e, source = reference_curve()
    exact = interpolate_reference(np.asarray(gset.values), ref_x, ref_e)
    rows = []
    for g in range(n):
        p = pesnet["evaluation"]["pes"][g]
        f = ferminet[g]["evaluation"]
        rows.append(dict(bond=gset.values[g], exact=float(exact[g]),
                         pesnet=p["energy"], pesnet_error=p["energy_error"], pesnet_mha=1000 * (p["energy"] - exact[g]),
                         ferminet=f["energy"], ferminet_error=f["energy_error"],
                         ferminet_mha=1000 * (f["energy"] - exact[g])))

    def stats(key):
        errs = np.array([abs(r[key]) for r in rows if np.isfinite(r[key])])
        return float(errs.max()), float(errs.mean()), int(np.sum(errs <= 2.0))

    p_max, p_mean, p_ok = stats("pesnet_mha")
    f_max, f_mean, f_ok = stats("ferminet_mha")
    p_wall = pesnet["train_wall_seconds"]
    f_wall = float(sum(r["train_wall_seconds"] for r in ferminet))
    p_eval = pesnet["eval_wall_seconds"]
    f_eval = float(sum(r["eval_wall_seconds"] for r in ferminet))
    results = dict(scan=args.scan, geometries=n, pesnet_steps=args.pesnet_steps, ferminet_steps_each=ferminet_steps,
                   batch_size=args.batch_size, pretrain_steps=args.pretrain_steps, eval_steps=args.eval_steps,
                   reference=source, rows=rows,
                   pesnet=dict(preset=args.pesnet_preset, max_abs_mha=p_max, mean_abs_mha=p_mean, within_2mha=p_ok,
                               train_wall_seconds=p_wall, eval_wall_seconds=p_eval,
                               seconds_per_step=pesnet.get("seconds_per_step")),
                   ferminet=dict(preset=args.ferminet_preset, max_abs_mha=f_max, mean_abs_mha=f_mean, within_2mha=f_ok,
                                 train_wall_seconds=f_wall, eval_wall_seconds=f_eval,
                                 seconds_per_step=float(np.mean([r["seconds_per_step"] for r in ferminet]))))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))

    lines = [f"H2 curve, {args.scan} ({n} geometries), {args.batch_size} walkers per step, exact: {source}", "",
             "| bond (bohr) | exact (Ha) | PESNet (Ha) | PESNet − exact (mHa) | FermiNet (Ha) | FermiNet − exact (mHa) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['bond']:.2f} | {r['exact']:.6f} | {r['pesnet']:.5f}({1e5 * r['pesnet_error']:.0f}) | "
                     f"{r['pesnet_mha']:+.2f} | {r['ferminet']:.5f}({1e5 * r['ferminet_error']:.0f}) | "
                     f"{r['ferminet_mha']:+.2f} |")
    lines += ["", "| | steps | max abs error (mHa) | mean abs error (mHa) | within 2 mHa | training (min) | "
                  "evaluation (min) |",
              "|---|---|---|---|---|---|---|",
              f"| PESNet {args.pesnet_preset}, one run | {args.pesnet_steps} | {p_max:.2f} | {p_mean:.2f} | {p_ok}/{n} | "
              f"{p_wall / 60:.1f} | {p_eval / 60:.1f} |",
              f"| FermiNet {args.ferminet_preset}, {n} runs | {n} × {ferminet_steps} | {f_max:.2f} | {f_mean:.2f} | "
              f"{f_ok}/{n} | {f_wall / 60:.1f} | {f_eval / 60:.1f} |",
              "", f"PESNet's training wall time / the independent runs': {p_wall / f_wall:.2f} (training includes "
                  "Hartree-Fock, pretraining and compilation)"]
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    _plot(rows, ref_x, ref_e, args.out / "pes_h2.png", n, args.pesnet_steps, ferminet_steps)


def _plot(rows, ref_x, ref_e, path, n, pesnet_steps, ferminet_steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r["bond"] for r in rows])
    fig, (ax, ax_d) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    keep = (ref_x >= x.min() - 0.05) & (ref_x <= x.max() + 0.05)
    ax.plot(ref_x[keep], ref_e[keep], "k-", lw=1, label="exact (Sims & Hagstrom 2006)")
    for key, label, colour, dx in (("pesnet", f"PESNet, one run of {pesnet_steps} steps", "tab:red", -0.01),
                                   ("ferminet", f"FermiNet, {n} runs of {ferminet_steps} steps", "tab:blue", 0.01)):
        e = np.array([r[key] for r in rows])
        s = np.array([r[key + "_error"] for r in rows])
        ax.errorbar(x + dx, e, yerr=s, fmt="o", ms=3.5, color=colour, label=label)
        ax_d.errorbar(x + dx, [r[key + "_mha"] for r in rows], yerr=1000 * s, fmt="o-", ms=3.5, lw=0.8, color=colour)
    ax_d.axhspan(-2, 2, color="0.85", label="±2 mHa")
    ax_d.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("energy (Ha)")
    ax_d.set_ylabel("E − exact (mHa)")
    ax_d.set_xlabel("H–H distance (bohr)")
    ax.legend(fontsize=8)
    ax_d.legend(fontsize=8)
    ax.set_title("H2 dissociation: one PESNet against independent FermiNet runs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"written {path}")


if __name__ == "__main__":
    main()
