"""Shared fixtures. Physics tests run in float64 (the trainer handles its own dtype).

Also what keeps the suite fast under pytest-xdist (``-n auto --dist loadscope``, see
pyproject.toml): one persistent JAX compilation cache for the whole session (shared by the
workers, removed at the end), tests that share a module-scoped fixture kept on one worker,
and the heaviest tests started first.
"""

import os
import shutil
import tempfile

# ------------------------------------------------------------------ compile for the tests, not for speed
# Most of the suite's time is spent compiling tiny programs that then run for a few steps. Two XLA
# options make CPU compilation much quicker (measured on four heavy tests, one core: 79 s with
# neither, 62 s with both; the first alone took a quarter off three others): LLVM's optimisation
# level 0, and XLA's older fusion code generation instead of its newer "fusion emitters". They
# change how much the machine code is optimised, not what it computes (no fast-math). Set before
# jax starts its backend, and inherited by the xdist workers and by every subprocess a test starts,
# so that runs compared across processes are compiled alike. An XLA_FLAGS of your own that names
# either option wins. XLA aborts on a flag it does not know: check both when jax is upgraded.
_XLA_TEST_FLAGS = {"--xla_backend_optimization_level": "0", "--xla_cpu_use_fusion_emitters": "false"}
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_flags] + [f"{k}={v}" for k, v in _XLA_TEST_FLAGS.items() if k not in _flags]).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from qmczoo.registry import get_ansatz  # noqa: E402
from qmczoo.chemistry.systems import get_system  # noqa: E402
from qmczoo.testing import random_configuration, to_float64  # noqa: E402

# ------------------------------------------------------------------ one compilation cache per session
# Every new VMC (every run, resume and evaluation) traces and compiles its programs again; many are
# identical from test to test (the same tiny ansatz, system and settings), and this cache lets them
# be compiled once. The directory is made by the first process (the xdist controller, or a plain
# pytest run) and inherited by the workers through the environment; only this pytest process uses
# it (the variable is not one that JAX reads, so subprocesses a test starts are unaffected).
_CACHE_ENV = "QMCZOO_TEST_JAX_CACHE_DIR"
_OWN_CACHE = None
if not os.environ.get(_CACHE_ENV):
    _OWN_CACHE = tempfile.mkdtemp(prefix="qmczoo-test-jax-cache-")
    os.environ[_CACHE_ENV] = _OWN_CACHE
jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
# every program, however quick to compile (most of a tiny ansatz's are under JAX's 1 s default)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
        if os.environ.get(_CACHE_ENV) == _OWN_CACHE:
            del os.environ[_CACHE_ENV]


# ------------------------------------------------------------------ scheduling under xdist
# ``--dist loadscope`` (pyproject.toml) sends each *unit* of tests to one worker; units start in
# the order below, heaviest first, so that no long test starts last. A unit is one of the named
# groups (tests that share a module-scoped fixture or are minutes of compilation and training, or a
# chain of real processes, by themselves) or else a whole test file, so that a file's
# module-scoped fixtures and its warm-up (imports, jax's per-primitive compilations, Hartree-Fock
# solutions) are paid once. A stale name here only changes the order. Durations: ``--durations``.
# (xdist's own ``--dist loadgroup`` cannot be used: with pytest 9 its ``xdist_group`` marks no
# longer reach the scheduler, and every test is scheduled alone.)
EARLY = (  # (unit, node-id prefixes after the folder)
    ("devices", ("test_devices.py::",)),  # one subprocess on two CPU devices
    ("distributed", ("test_distributed.py::",)),  # a chain of real process pairs
    ("plugin-tutorial", ("test_plugins.py::test_the_plugin_tutorial_runs_as_written",)),
    ("pes-run", ("test_pesnet.py::test_a_tiny_pesnet_on_two_h2_geometries",  # share the fixture h2_pes_run
                 "test_pesnet.py::test_a_pes_run_resumes_with_its_geometries")),
    ("resume", ("test_resume.py::",)),  # share the fixture three_steps
    ("kill", ("test_kill.py::",)),
    ("cli-train", ("test_cli.py::test_train_resume_evaluate",)),
    ("bench-run", ("test_bench.py::test_interrupted_bench", "test_bench.py::test_bench_files",  # finished_bench
                   "test_bench.py::test_rerun_through_the_cli", "test_bench.py::test_other_settings")),
    ("kfac-paulinet", ("test_zoo.py::test_kfac_steps_are_accepted_with_one_electron_per_spin[paulinet]",)),
    ("kfac-e3nn", ("test_zoo.py::test_kfac_steps_are_accepted_with_one_electron_per_spin[ferminet-e3nn]",)),
    ("e2e-kfac", ("test_train_e2e.py::test_kfac",)),
    ("e2e-adam", ("test_train_e2e.py::test_adam",)),
    *((f"zoo-train-{name}", (f"test_zoo.py::test_each_ansatz_trains_and_evaluates_through_qmczoo_train[{name}]",))
      for name in ("paulinet", "psiformer", "hybrid", "pesnet", "pair_product", "deepwf")),
    ("monitor-chain", ("test_accuracy_engine.py::test_monitor_chain",)),
    ("excited-run", ("test_excited_runs.py::test_tiny_nes_run",  # share the fixture helium_nes
                     "test_excited_runs.py::test_a_run_of_several_states")),
)
FILES = (  # the other units, heaviest first
    "test_excited_runs.py", "test_excited_states.py", "test_ansatz_contract.py", "test_zoo.py", "test_pesnet.py", "test_equivariant.py", "test_imposed_symmetry.py", "test_accuracy_engine.py",
    "test_embeddings.py", "test_train_guards.py", "test_hamiltonian.py", "test_pretrain.py", "test_run_safety.py",
    "test_jastrow_backflow_pairs.py", "test_bad_inputs.py", "test_plugins.py", "test_gaussian_orbitals.py",
    "test_layers.py", "test_geometry_encoder.py", "test_registry.py", "test_sampler.py", "test_cli.py",
)


def _unit(nodeid):
    """``(rank, unit)`` of a test: its named group, else its file."""
    path, _, rest = nodeid.partition("::")
    name = path.rsplit("/", 1)[-1] + "::" + rest
    for rank, (unit, prefixes) in enumerate(EARLY):
        if name.startswith(prefixes):
            return rank, unit
    file = path.rsplit("/", 1)[-1]
    return len(EARLY) + (FILES.index(file) if file in FILES else len(FILES)), path


# ------------------------------------------------------------------ the quick subset
# `pytest -q -m "not slow"` (README): besides the tests marked slow where they are written (end-to-end
# runs), every test that took at least QUICK_LIMIT seconds in the last recorded run of the suite
# (tests/durations.json, written by tests/record_durations.py), and every test that shares a
# module-scoped fixture whose setup took that long (the next test would pay it instead).
QUICK_LIMIT = 2.0
_DURATIONS = os.path.join(os.path.dirname(__file__), "durations.json")


def _recorded_durations() -> dict:
    import json

    try:
        with open(_DURATIONS, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _module_fixtures(item) -> set:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope == "module"}


def _mark_slow_by_duration(items) -> None:
    durations = _recorded_durations()
    heavy_fixtures = set()
    for item in items:
        call, setup = durations.get(item.nodeid, (0.0, 0.0))
        if setup >= QUICK_LIMIT:
            heavy_fixtures |= {(item.path, name) for name in _module_fixtures(item)}
        if call + setup >= QUICK_LIMIT:
            item.add_marker(pytest.mark.slow)
    for item in items:
        if any((item.path, name) in heavy_fixtures for name in _module_fixtures(item)):
            item.add_marker(pytest.mark.slow)


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests (above), then the heaviest units first (a stable sort: within a unit,
    tests keep their order)."""
    _mark_slow_by_duration(items)
    items[:] = sorted(items, key=lambda item: _unit(item.nodeid)[0])


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with the units above (other ``--dist`` modes are left as they are)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _unit(nodeid)[1]

    return UnitScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Every test (and its fixtures, whatever their scope) starts in float64.

    ``qmczoo.engine.vmc.VMC`` sets the global ``jax_enable_x64`` to match its run's dtype, so a
    float32 training test would otherwise leave x64 off for every test after it.
    """
    jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def lih():
    return get_system("LiH")


@pytest.fixture(scope="session")
def lih_ferminet(lih):
    """``(wf, params, R)``: a tiny FermiNet on LiH with float64 parameters."""
    wf = get_ansatz("ferminet", preset="tiny").build(lih)
    R = jnp.asarray(lih.positions, dtype=jnp.float64)
    r = random_configuration(jax.random.PRNGKey(0), lih, jnp.float64)
    params = to_float64(jax.jit(wf.init)(jax.random.PRNGKey(1), r, R))
    return wf, params, R


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
