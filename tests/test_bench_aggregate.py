"""What the bench adds for comparing ansätze: flags, seeds aggregated, published numbers (no training)."""

import math

import pytest
from typer.testing import CliRunner

from qmczoo.chemistry.published import published, table_values
from qmczoo.cli import app
from qmczoo.runs.bench import COLUMNS, BenchResults
from qmczoo.runs.bench.aggregate import aggregate, cell_flags
from qmczoo.runs.bench.spec import SUITES, suite_defaults

LIH = -8.070548


def _row(ansatz, seed, energy, error=3e-4, variance=0.02, system="LiH", ref=LIH, status="ok"):
    row = dict.fromkeys(COLUMNS)
    row.update(ansatz=ansatz, ansatz_name=ansatz.split(":")[0], system=system, seed=seed, status=status, error="",
               energy=energy, energy_error=error, variance=variance, reference_energy=ref,
               error_mha=None if energy is None else 1000 * (energy - ref),
               variational_ok=None if energy is None else energy >= ref - 3 * error, run_dir="x")
    return row


@pytest.fixture
def rows():
    return [_row("ferminet", 0, -8.0700), _row("ferminet", 1, -8.0690, variance=0.03),
            _row("hybrid", 0, -8.0702), _row("paulinet", 0, -8.0600, variance=0.5),
            _row("deepwf", 0, -8.0800, error=1e-3),  # 9.5 mHa below exact, 3 sigma is 3 mHa
            _row("pair_product", 0, None, status="failed")]


def test_flags_name_the_cells_below_exact_and_with_outlying_variance(rows):
    assert cell_flags(rows) == ["", "", "", "high-variance", "below-exact", ""]
    assert cell_flags(rows[:2]) == ["", ""]  # fewer than three finished cells of a system: no variance peers


def test_seeds_are_aggregated_with_mean_spread_and_best(rows):
    by = {a["ansatz"]: a for a in aggregate(rows)}
    fn = by["ferminet"]
    assert fn["seeds"] == "2/2"
    assert fn["energy_mean"] == pytest.approx(-8.0695)
    assert fn["energy_spread"] == pytest.approx(math.sqrt(2) * 0.0005)
    assert fn["best_energy"] == -8.0700 and fn["best_error"] == 3e-4
    assert fn["variance_mean"] == pytest.approx(0.025)
    assert fn["error_mha_best"] == pytest.approx(1000 * (-8.0700 - LIH))
    assert by["hybrid"]["energy_spread"] is None  # one seed
    assert by["pair_product"]["seeds"] == "0/1" and by["pair_product"]["energy_mean"] is None
    assert by["paulinet"]["flags"] == "high-variance" and by["deepwf"]["flags"] == "below-exact"


def test_each_cell_is_shown_beside_its_papers_number(rows):
    by = {a["ansatz"]: a for a in aggregate(rows)}
    assert by["ferminet"]["published_energy"] == -8.0705 and "pfau2020" in by["ferminet"]["published_source"]
    assert by["paulinet"]["published_energy"] == pytest.approx(-8.07027)
    assert by["deepwf"]["table_values"] == [-7.8732]  # the seed talk's DeepWF table
    assert by["hybrid"]["published_energy"] is None  # DeepErwin's paper has no LiH number here
    # a variant is not the paper's model: no published number beside it
    assert aggregate([_row("ferminet:determinants=1", 0, -8.07)])[0]["published_energy"] is None


def test_published_lookup_maps_registry_names_to_paper_keys():
    assert published("hybrid", "N2")["energy"] == pytest.approx(-109.5413328)
    both = published("pair_product", "Be")
    assert both["energy"] == -14.6673 and both["runs"] == [-14.6673, -14.6664] and not both["verified"]
    assert published("ferminet", "H2") is None and published("my_plugin", "LiH") is None
    assert [t["value"] for t in table_values("pair_product", "Li")] == [-7.4782, -7.4781]


def test_markdown_and_json_carry_both_tables(rows):
    settings = {"steps": 10, "time_budget": None, "preset": "tiny", "batch_size": 8, "pretrain_steps": 0,
                "optimizer": "kfac", "dtype": "float32", "seeds": [0, 1], "eval_steps": 2, "hf_basis": None}
    res = BenchResults(rows=rows, settings=settings)
    md = res.to_markdown()
    assert "### Cells" in md and "### Seeds aggregated" in md and "below-exact" in md and "-8.0705" in md
    assert len(res.to_json()["aggregated"]) == 5


def test_suites_name_systems_of_the_reference_file():
    assert suite_defaults(None)["ansatze"] == "all"
    assert SUITES["papers"]["systems"] == "H2,Li,LiH,Be"
    result = CliRunner().invoke(app, ["bench", "--suite", "nonsense", "--out", "x"])
    assert result.exit_code == 2 and "unknown suite 'nonsense'" in result.output
