"""Walkers over several devices (:mod:`qmczoo.engine.devices`).

The runs on two devices happen in one subprocess with two CPU devices (``tests/two_devices.py``,
``JAX_NUM_CPU_DEVICES=2``: jax fixes its device count at start-up); this process keeps its one
device. Float64 throughout: a sum split over two devices differs from the one-device sum by
rounding only, so the energies must agree to 1e-9 relative.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qmczoo.engine.devices import check_divides, resolve_device_count, walker_sharding
from qmczoo.errors import ConfigError

SCRIPT = Path(__file__).with_name("two_devices.py")


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-devices")
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", OMP_NUM_THREADS="1",
               JAX_COMPILATION_CACHE_DIR=str(tmp / "jax-cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp)], capture_output=True, text=True, timeout=900,
                          env=env, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _same_run(case: dict, devices_first: int, devices_then: int):
    np.testing.assert_allclose(case["run"], case["reference"], rtol=1e-9, atol=0)
    assert len(case["run"]) == len(case["reference"])
    assert case["summary_devices"] == [devices_first, devices_then]
    assert case["walkers_on"] == devices_first and case["resumed_walkers_on"] == devices_then
    assert case["params_on"] == [devices_first]  # replicated on every device of the run
    if case["monitor_on"] is not None:
        assert case["monitor_on"] == devices_first


@pytest.mark.slow
def test_kfac_steps_on_two_devices_equal_one_device_and_resume_on_one(two_devices):
    """FermiNet tiny on LiH, KFAC with Hartree-Fock pretraining and the monitor chain: two steps
    on two devices, the checkpoint resumed on one, equal the one-device run step by step."""
    assert two_devices["devices"] == 2
    _same_run(two_devices["kfac"], 2, 1)


@pytest.mark.slow
def test_a_pes_scan_on_one_device_resumes_on_two_whose_geometries_do_not_divide_them(two_devices):
    """PESNet over three H2 geometries with Adam, 18 walkers: one step on one device, resumed on
    two (a geometry's group straddles both devices): the one-device energies."""
    _same_run(two_devices["pes"], 1, 2)


@pytest.mark.slow
def test_no_walker_sized_array_is_gathered_onto_every_device(two_devices):
    """The compiled sampler, loss gradient and local energy on two devices: no all-gather of
    walker positions or anything larger. The loss gathers the batch's [B] local energies (the
    median of the clipping window) and nothing else; the sampler and the local energy gather
    nothing of walker size."""
    programs = two_devices["programs"]
    batch = programs["batch"]
    for name, sizes in programs["gathers"].items():
        assert all(size <= batch for size in sizes), (name, sizes)
    assert not [s for s in programs["gathers"]["mcmc"] if s >= batch]
    assert not [s for s in programs["gathers"]["local_energy"] if s >= batch]


@pytest.mark.slow
def test_a_batch_that_does_not_divide_the_devices_is_one_error_line(two_devices):
    for name, expected in (("odd_batch", "the batch size (15) must divide by the number of devices (2): use "
                                         "--batch-size 14 or 16"),
                           ("too_many", "3 devices asked for, but this machine has 2")):
        result = two_devices["cli"][name]
        assert result["code"] == 2, result
        assert result["output"].startswith("error: ") and expected in result["output"], result
        assert "Traceback" not in result["output"] and not result["written"]


def test_one_device_places_nothing():
    assert walker_sharding(1) is None
    assert resolve_device_count(None) >= 1 and resolve_device_count(1) == 1


@pytest.mark.parametrize("devices", [0, -1, 1.5, True, "2"])
def test_a_device_count_that_is_not_a_positive_integer_is_refused(devices):
    with pytest.raises(ConfigError, match="devices must be a positive integer"):
        resolve_device_count(devices)


def test_more_devices_than_there_are_is_refused():
    with pytest.raises(ConfigError, match="asked for, but this machine has"):
        resolve_device_count(10_000)


def test_walker_counts_must_divide():
    check_divides(16, 4, "the batch size", "--batch-size")
    check_divides(15, 1, "the batch size", "--batch-size")
    with pytest.raises(ConfigError, match=r"the batch size \(10\) must divide by the number of devices \(4\): use "
                                          r"--batch-size 8 or 12"):
        check_divides(10, 4, "the batch size", "--batch-size")
    with pytest.raises(ConfigError, match=r"\(3\) must divide by the number of devices \(4\): "
                                          r"use --monitor-walkers 4, "):
        check_divides(3, 4, "the monitor chain's walkers", "--monitor-walkers")
