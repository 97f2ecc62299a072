"""Benchmarks: several ansätze on several systems, on equal terms, in one table and one plot.

Every cell (ansatz variant, system, seed) is an ordinary run folder
``DIR/cells/<ansatz-label>/<system>/seed<k>/`` written by :func:`qmczoo.runs.lifecycle.train`: the same
Hartree–Fock pretraining, sampler, trainer and settings for every ansatz, the same budget
(steps, or seconds of training loop, or both) and then a fixed-parameter evaluation of the
final parameters by the shared evaluator. ``qmczoo evaluate`` reads any cell.

A bench folder holds ``bench.yaml`` (its settings), ``hartree_fock.json`` (the UHF energies
used for the share of correlation energy), ``results.csv``, ``results.json``, ``results.md``
and ``convergence.png``. Running the same bench again skips finished cells and resumes an
interrupted one from its checkpoint; different settings in the same folder are refused.

From a notebook::

    from qmczoo.runs.bench import run_bench
    res = run_bench("ferminet,ferminet:determinants=1", "H2,LiH", out_dir="bench/h2",
                    preset="small", steps=300)
    res.rows            # list of dicts, one per cell (columns: COLUMNS)
    res.to_dataframe()  # pandas, when installed

==================  ==============================================================
module              job
==================  ==============================================================
``spec``            parsing the variants, systems, seeds and budget; ``bench.yaml``
``cells``           one cell: train (or resume) and evaluate a run folder, make its row
``results``         the rows, the tables (markdown, rich, csv, json) and their notes
``runner``          :func:`run_bench`: the folder, the cells in turn, the plot
``ray_tasks``       :func:`run_bench_on_ray`: the shards of a bench as Ray tasks (optional)
==================  ==============================================================
"""

from qmczoo.runs.bench.cells import hartree_fock_energies
from qmczoo.runs.bench.results import COLUMNS, BenchResults, load_bench
from qmczoo.runs.bench.runner import run_bench
from qmczoo.runs.bench.spec import (
                                    AnsatzVariant,
                                    BenchSettings,
                                    parse_ansatze,
                                    parse_duration,
                                    parse_seeds,
                                    parse_systems,
)

__all__ = ["run_bench", "load_bench", "BenchResults", "BenchSettings", "AnsatzVariant", "COLUMNS",
           "parse_ansatze", "parse_systems", "parse_seeds", "parse_duration", "hartree_fock_energies"]
