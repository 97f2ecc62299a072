"""``config.yaml``: what a run is (system, ansatz, settings, geometries), written once and read back."""

from __future__ import annotations

from pathlib import Path

import yaml

from qmczoo.chemistry.system import System
from qmczoo.chemistry.systems import check_electrons
from qmczoo.engine.config import TrainConfig
from qmczoo.errors import ConfigError, QmczooError
from qmczoo.registry import AnsatzSpec, get_ansatz
from qmczoo.runs.folder import write_file

#: the top-level keys of a config.yaml (save_config writes them; anything else is refused on reading)
CONFIG_KEYS = ("qmczoo_version", "input_unit", "length_unit", "system", "ansatz", "train", "geometries")


def save_config(out_dir: Path, system: System, spec: AnsatzSpec, config: TrainConfig, input_unit: str = "bohr",
                 geometries=None):
    from qmczoo import __version__

    data = {"qmczoo_version": __version__, "input_unit": input_unit, "length_unit": "bohr",
            "system": system.to_dict(), "ansatz": spec.to_dict(), "train": config.to_dict()}
    if geometries is not None:
        data["geometries"] = geometries.to_dict()
    text = ("# input_unit: the unit the geometry was read in; system.coords are in bohr (length_unit)\n"
            + yaml.safe_dump(data, sort_keys=False))
    write_file(out_dir / "config.yaml", text)


def config_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.name.endswith((".yaml", ".yml")) and not path.is_dir() else path / "config.yaml"


def read_config_file(path: str | Path) -> dict:
    """The raw mapping of a run's ``config.yaml`` (``path``: the file or its run folder), checked for shape."""
    path = config_path(path)
    if not path.is_file():
        raise ConfigError(f"{path.parent} is not a qmczoo run folder (no config.yaml)"
                          if path.name == "config.yaml" else f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path} is not readable YAML ({first})") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a qmczoo run config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a qmczoo run config: expected a mapping with system, ansatz "
                          f"and train, got {type(data).__name__}")
    unknown = sorted((str(k) for k in set(data) - set(CONFIG_KEYS)))
    if unknown:
        raise ConfigError(f"{path} is not a qmczoo run config: unknown key(s) {', '.join(unknown)}; "
                          f"a run config holds {', '.join(CONFIG_KEYS)}")
    missing = [k for k in ("system", "ansatz", "train") if not isinstance(data.get(k), dict)]
    if missing:
        raise ConfigError(f"{path} is not a qmczoo run config: missing or malformed {', '.join(missing)}")
    if not isinstance(data["ansatz"].get("name"), str):
        raise ConfigError(f"{path}: ansatz.name is missing")
    return data


def load_run_config(out_dir: str | Path) -> tuple[System, AnsatzSpec, TrainConfig]:
    """The system, ansatz and settings stored in a run folder's ``config.yaml`` (or that file itself).

    Raises:
      ConfigError: a missing, unreadable or malformed file, naming it.
    """
    data = read_config_file(out_dir)
    a = data["ansatz"]
    path = config_path(out_dir)
    options = a.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: ansatz.options must be a mapping")
    try:
        spec = get_ansatz(a["name"], a.get("preset"), **options)
        system = System.from_dict(data["system"])
        check_electrons(system)  # what the command line refuses as --charge is refused here too
        return system, spec, TrainConfig.from_dict(data["train"])
    except QmczooError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is malformed: {exc}") from None


def load_run_geometries(out_dir: str | Path):
    """The :class:`~qmczoo.chemistry.geometry_set.GeometrySet` a run trained on (``geometries`` in its
    config.yaml), or None for a one-geometry run."""
    from qmczoo.chemistry.geometry_set import GeometrySet

    data = read_config_file(out_dir).get("geometries")
    if data is None:
        return None
    try:
        return GeometrySet.from_dict(data)
    except QmczooError as exc:
        raise ConfigError(f"{config_path(out_dir)}: geometries: {exc}") from None
