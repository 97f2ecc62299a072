"""Plug-ins: entry points (name collisions, overrides, broken plug-ins), Haiku entries through the
registry, and the tutorial of docs/plugins.md run command by command on its example package."""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from typer.testing import CliRunner

from qmczoo import registry, testing
from qmczoo.cli import app
from qmczoo.errors import ConfigError
from qmczoo.chemistry.systems import get_system

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugins.md"
runner = CliRunner()


class _EntryPoint:
    """Stands in for an ``importlib.metadata.EntryPoint`` of the ``qmczoo.registry`` group."""

    def __init__(self, name, value, entries):
        self.name, self.value, self._entries = name, value, entries

    def load(self):
        if isinstance(self._entries, Exception):
            raise self._entries
        return self._entries


def _with_plugins(monkeypatch, *points):
    """Reload the registry as if ``points`` were installed."""
    monkeypatch.setattr(registry.catalogue, "_REGISTRY", None)
    monkeypatch.setattr(registry.catalogue.metadata, "entry_points",
                        lambda group=None: list(points) if group == registry.ENTRY_POINT_GROUP else [])


def _toy_ansatz_entry(**extra):
    return dict(factory="qmczoo.models.ferminet:make_ferminet", description="a plug-in's FermiNet", **extra)


def test_a_plugin_name_that_collides_with_a_builtin_is_a_clear_error(monkeypatch):
    ferminet = dict(registry._load()["ansatze"]["ferminet"])
    _with_plugins(monkeypatch, _EntryPoint("mine", "my_pkg:entries", {"ansatze": {"ferminet": ferminet}}))
    with pytest.raises(ConfigError, match=r"plug-in 'my_pkg:entries' registers ansatz 'ferminet', which qmczoo "
                                          r"itself already registers.*override: true"):
        registry.list_ansatze()
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "ferminet" in lines[0], result.output


def test_two_plugins_with_one_layer_name_collide(monkeypatch):
    layer = dict(registry._load()["layers"]["raw_embedding"])
    _with_plugins(monkeypatch, _EntryPoint("a", "pkg_a:entries", {"layers": {"my_layer": layer}}),
                  _EntryPoint("b", "pkg_b:entries", {"layers": {"my_layer": layer}}))
    with pytest.raises(ConfigError, match="plug-in 'pkg_b:entries' registers layer 'my_layer', which pkg_a:entries"):
        registry.list_layers()


def test_an_explicit_override_replaces_the_builtin_and_says_so(monkeypatch):
    entry = dict(registry._load()["ansatze"]["ferminet"], description="FermiNet, patched by a plug-in", override=True)
    _with_plugins(monkeypatch, _EntryPoint("mine", "my_pkg:entries", {"ansatze": {"ferminet": entry}}))
    kind, e = registry.entry("ferminet")
    assert e["description"] == "FermiNet, patched by a plug-in" and e["overrides"] == "built-in"
    result = runner.invoke(app, ["info", "ferminet"])
    assert result.exit_code == 0, result.output
    assert "from plug-in: my_pkg:entries; overrides built-in" in result.output


def test_new_plugin_names_are_added_and_a_broken_plugin_only_warns(monkeypatch):
    _with_plugins(monkeypatch, _EntryPoint("good", "good_pkg:entries", {"ansatze": {"plugin_net": _toy_ansatz_entry(
        slots=registry._load()["ansatze"]["ferminet"]["slots"],
        defaults=registry._load()["ansatze"]["ferminet"]["defaults"])}}),
        _EntryPoint("broken", "broken_pkg:entries", ImportError("no module named broken_pkg")),
        _EntryPoint("odd", "odd_pkg:entries", ["not", "a", "mapping"]))
    with pytest.warns(UserWarning) as caught:
        names = registry.list_ansatze()
    messages = " ".join(str(w.message) for w in caught)
    assert "broken_pkg:entries" in messages and "odd_pkg:entries" in messages
    assert "plugin_net" in names and "ferminet" in names
    assert registry.entry("plugin_net")[1]["plugin"] == "good_pkg:entries"
    testing.check_spec(registry.get_ansatz("plugin_net", **{"embedding.hidden_dims": [[8, 4]], "determinants": 1}),
                       get_system("H2"))


def test_register_from_python_refuses_a_taken_name_unless_told_to_override(monkeypatch):
    monkeypatch.setattr(registry.catalogue, "_REGISTRY", {k: dict(v) for k, v in registry._load().items()})
    with pytest.raises(ConfigError, match="'ferminet' is already registered"):
        registry.register_ansatz("ferminet", "qmczoo.models.ferminet:make_ferminet")
    with pytest.raises(ConfigError, match="'raw_embedding' is already registered"):
        registry.register_layer("raw_embedding", "qmczoo.layers.raw_embedding:RawFeaturesEmbedding", slot="embedding")
    registry.register_layer("raw_embedding", "qmczoo.layers.raw_embedding:RawFeaturesEmbedding", slot="embedding",
                            description="replaced", override=True)
    assert registry.entry("raw_embedding")[1]["overrides"] == "built-in"


def _haiku_slater(system, width: int = 4):
    import haiku as hk

    def f(r, R):
        d = jnp.linalg.norm(r[:, None] - R[None], axis=-1)
        phi = hk.Linear(system.n_up, name="orbitals")(jnp.concatenate([r - R[0], d], -1)) * jnp.exp(-jnp.sum(d, -1))[:, None]
        s, l = jnp.linalg.slogdet(phi[: system.n_up])
        return s, l + jnp.sum(-d[system.n_up:])

    return hk.transform(f)


def test_a_haiku_ansatz_comes_through_the_registry(monkeypatch):
    pytest.importorskip("haiku")
    monkeypatch.setattr(registry.catalogue, "_REGISTRY", {k: dict(v) for k, v in registry._load().items()})
    registry.register_ansatz("toy_haiku", _haiku_slater, framework="haiku", defaults={"width": 4})
    spec = registry.get_ansatz("toy_haiku")
    assert spec.framework == "haiku"
    system = get_system("Li")
    wf = spec.build(system)
    testing.check_spec(spec, system)  # antisymmetry, translation invariance, finiteness, KFAC blocks
    r = jnp.arange(9.0).reshape(3, 3) / 4
    params = wf.init(jax.random.PRNGKey(0), r, jnp.zeros((1, 3)))
    assert jnp.isfinite(wf.log_psi(params, r, jnp.zeros((1, 3))))
    with pytest.raises(ConfigError, match="unknown framework 'torch'"):
        registry.register_ansatz("toy_torch", _haiku_slater, framework="torch")
    registry._load()["ansatze"]["slotted_haiku"] = dict(factory=_haiku_slater, framework="haiku",
                                                        slots={"embedding": "embedding"},
                                                        defaults={"embedding": "raw_embedding"})
    with pytest.raises(ConfigError, match="Haiku ansatz but declares slots"):
        registry.get_ansatz("slotted_haiku")


def _tutorial_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@pytest.mark.slow
def test_the_plugin_tutorial_runs_as_written(tmp_path):
    """Each command of docs/plugins.md, in order. ``pip install PKG`` installs into a folder on
    PYTHONPATH (a real pip install with the package's entry point, isolated from this
    environment); run folders go to a temporary directory; ``pip uninstall`` is left out. The
    example's own tests (``python -m pytest``) run in one process: ``PYTEST_ADDOPTS=-n 0`` undoes
    this repository's ``-n auto`` default, which would start more workers inside this one."""
    pytest.importorskip("haiku")
    site = tmp_path / "site"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    env["PYTEST_ADDOPTS"] = " ".join([os.environ.get("PYTEST_ADDOPTS", ""), "-n 0"]).strip()
    # the commands' processes share one compilation cache (the same tiny programs recur)
    env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    bin_dir = Path(sys.executable).parent
    outputs = {}
    commands = _tutorial_commands()
    assert commands[0] == "pip install docs/examples/qmczoo_example_plugin"
    for line in commands:
        args = shlex.split(line.replace("runs/", f"{tmp_path}/runs/"))
        if args[:2] == ["pip", "uninstall"]:
            continue
        if args[:2] == ["pip", "install"]:
            args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), *args[2:]]
        elif args[0] == "python":
            args[0] = sys.executable
        elif args[0] == "qmczoo":
            args[0] = str(bin_dir / "qmczoo")
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"$ {line}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        outputs[line] = proc.stdout
    listing = outputs["qmczoo list --layers"]
    assert "mean_field_embedding" in listing and "embedding" in listing
    info = outputs["qmczoo info example_haiku_slater"]
    assert "(a Haiku transform)" in info and "from plug-in: qmczoo_example_plugin:registry" in info
    assert "from plug-in: qmczoo_example_plugin:registry" in outputs["qmczoo info mean_field_embedding"]
    reference = get_system("H2").reference_energy
    for name, ansatz in (("plugin-layer", "ferminet"), ("plugin-flax", "example_slater_jastrow"),
                         ("plugin-haiku", "example_haiku_slater")):
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["ansatz"] == ansatz
        energy, error = summary["energy"], summary["energy_error"]
        assert math.isfinite(energy) and math.isfinite(error)
        assert energy > reference - 5 * error - 1e-3, (name, energy, error)  # the variational bound
        assert energy < -0.5, (name, energy)  # bound below the H atom + proton: it learned something
    evaluation = json.loads((tmp_path / "runs" / "plugin-haiku" / "evaluation.json").read_text())
    assert math.isfinite(evaluation["energy"])


class _ExitingEntryPoint(_EntryPoint):
    """A plug-in whose import calls ``sys.exit(0)``."""

    def load(self):
        raise SystemExit(0)


def test_a_plugin_that_exits_at_import_is_reported_and_left_out(monkeypatch):
    """It made every command exit 0 with no output (issue 29)."""
    _with_plugins(monkeypatch, _ExitingEntryPoint("exits", "exit_pkg:entries", None))
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "ferminet" in result.output
    warnings_ = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1 and "exit_pkg:entries" in warnings_[0] and "SystemExit" in warnings_[0]


@pytest.mark.parametrize("entry, words", [
    ("not a mapping", ["not a mapping"]),
    (dict(factory="qmczoo.models.ferminet:make_ferminet", defaults=[1, 2]), ["defaults must be a mapping"]),
    (dict(factory="qmczoo.models.ferminet:make_ferminet", presets={"tiny": 3}), ["preset 'tiny'"]),
    (dict(factory=3), ["factory"]),
])
def test_info_of_a_malformed_plugin_entry_is_one_error_line(monkeypatch, entry, words):
    _with_plugins(monkeypatch, _EntryPoint("odd", "odd_pkg:entries", {"ansatze": {"odd_net": entry}}))
    result = runner.invoke(app, ["info", "odd_net"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "odd_pkg:entries" in errors[0] and "odd_net" in errors[0], result.output
    for w in words:
        assert w in errors[0], (w, errors[0])
    assert runner.invoke(app, ["info", "ferminet"]).exit_code == 0  # the rest of the registry works
