"""Scans: geometries along one named coordinate of a molecule (``--scan "bond=0.8:4.0:17"``)."""

from __future__ import annotations

import math
import re

import numpy as np

from qmczoo.chemistry.geometry_set import COORDINATES, MAX_GEOMETRIES, GeometrySet, _make_set
from qmczoo.chemistry.system import System
from qmczoo.chemistry.units import unit_to_bohr
from qmczoo.errors import ConfigError

_SCAN_FORMS = "'NAME=START:STOP:COUNT', 'NAME=VALUE' or 'NAME=V1,V2,...' with NAME one of bond, scale"


def parse_scan(system: System, spec: str, unit: str = "bohr") -> GeometrySet:
    """Geometries along one coordinate of ``system``, from ``"NAME=START:STOP:COUNT"``.

    Args:
        system: the molecule; its atoms, electrons and starting geometry.
        spec: ``NAME=START:STOP:COUNT`` (COUNT >= 2 points including both ends, as
            ``numpy.linspace``; STOP may be below START), ``NAME=VALUE`` (one point) or
            ``NAME=V1,V2,...``. NAME is

            * ``bond``: for a molecule of exactly two nuclei; atom 0 stays where it is and
              atom 1 moves along the existing bond direction to the given distance (in
              ``unit``). For ``get_system("H2")`` this is H at (0,0,0) and (R,0,0).
            * ``scale``: for two or more nuclei; every nuclear position is scaled by the
              (dimensionless) factor about the unweighted centroid of the nuclei.
        unit: length unit of ``bond`` values (``"bohr"`` or ``"angstrom"``, any spelling
            :func:`qmczoo.chemistry.systems.unit_to_bohr` accepts); ignored for ``scale``.

    Returns:
        A GeometrySet with ``coordinate`` = NAME, ``values`` in bohr (bond) or the factors
        (scale), and labels such as ``"bond=1.400"`` (bohr) or ``"scale=1.100"``.

    Raises:
        ConfigError: for an empty spec, a missing ``=``, an unknown NAME (or ``bond`` on a
            molecule without exactly two nuclei, ``scale`` on one atom), a number that does
            not parse or is not finite, COUNT not an integer >= 2, START == STOP with
            COUNT > 1, a value <= 0, a value given twice or more than ``MAX_GEOMETRIES`` points.
        SystemSpecError: for a bad ``unit``, or a value that puts two nuclei closer than
            0.1 bohr (naming the geometry).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty scan specification: expected {_SCAN_FORMS}")
    text = spec.strip()
    if "=" not in text:
        raise ConfigError(f"scan {text!r} has no '=': expected {_SCAN_FORMS}")
    name, rest = (part.strip() for part in text.split("=", 1))
    name = name.lower()
    _check_coordinate(system, name, text)
    user_values = _scan_values(rest, text, name)
    if name == "bond":
        values = user_values * unit_to_bohr(unit)
        positions = np.stack([_bond_geometry(system.positions, r) for r in values])
    else:
        values = user_values
        positions = np.stack([_scaled_geometry(system.positions, s) for s in values])
    return _make_set(system, positions, name, values.tolist(), _scan_labels(name, values))


def _check_coordinate(system: System, name: str, spec: str) -> None:
    """ConfigError unless ``name`` is a scan coordinate that applies to ``system``."""
    if name not in COORDINATES:
        raise ConfigError(
            f"unknown scan coordinate {name!r} in {spec!r}: known coordinates are {', '.join(COORDINATES)}"
        )
    m = system.n_nuclei
    if name == "bond" and m != 2:
        raise ConfigError(
            f"scan coordinate 'bond' needs a molecule with exactly two nuclei, but {system.name} has {m} "
            "(which bond to stretch is ambiguous); use 'scale' or a geometry file"
        )
    if name == "scale" and m < 2:
        raise ConfigError(
            f"scan coordinate 'scale' needs at least two nuclei, but {system.name} has {m}: one atom has no geometry to scan"
        )


def _scan_values(text: str, spec: str, name: str) -> np.ndarray:
    """The values ``[G]`` (in the user's unit) of the part after '=' of scan ``spec`` of coordinate ``name``."""
    what = "bond length" if name == "bond" else "scale factor"
    if not text:
        raise ConfigError(f"scan {spec!r} gives no values after '=': expected {_SCAN_FORMS}")
    if ":" in text:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 3:
            raise ConfigError(
                f"scan range {text!r} in {spec!r} must be START:STOP:COUNT (three fields), got {len(parts)}"
            )
        start, stop = (_scan_number(p, spec) for p in parts[:2])
        count = _scan_count(parts[2], spec)
        if start == stop:
            raise ConfigError(
                f"scan {spec!r}: START and STOP are both {parts[0]} with COUNT {count}; "
                f"give a range of distinct ends, or {name}={parts[0]} for one point"
            )
        # Rounded to 12 decimals: 1.4, not 1.4000000000000001, in configs and labels.
        values = np.round(np.linspace(start, stop, count), 12)
    else:
        values = np.array([_scan_number(p.strip(), spec) for p in text.split(",")], dtype=np.float64)
        if values.size > MAX_GEOMETRIES:
            raise ConfigError(f"scan {spec!r} has {values.size} points; at most {MAX_GEOMETRIES} are allowed")
        seen = set()
        for v in values.tolist():
            if v in seen:
                raise ConfigError(f"scan {spec!r} lists the value {v:g} twice; each geometry must be given once")
            seen.add(v)
    if np.any(values <= 0):
        bad = float(values[values <= 0][0])
        raise ConfigError(f"scan {spec!r}: a {what} must be positive, got {bad:g}")
    return values


def _scan_number(text: str, spec: str) -> float:
    """A finite float from one field of a scan."""
    try:
        x = float(text)
    except ValueError:
        raise ConfigError(f"cannot read {text!r} in scan {spec!r} as a number") from None
    if not math.isfinite(x):
        raise ConfigError(f"scan {spec!r}: {text!r} is not a finite number")
    return x


def _scan_count(text: str, spec: str) -> int:
    """COUNT of a scan range: an integer 2..MAX_GEOMETRIES."""
    if not re.fullmatch(r"\+?\d+", text):
        raise ConfigError(f"scan {spec!r}: COUNT must be an integer >= 2 (points including both ends), got {text!r}")
    count = int(text)
    if count < 2:
        raise ConfigError(
            f"scan {spec!r}: COUNT must be an integer >= 2 (points including both ends), got {count}; "
            "use NAME=VALUE for one point"
        )
    if count > MAX_GEOMETRIES:
        raise ConfigError(f"scan {spec!r} has COUNT {count}; at most {MAX_GEOMETRIES} points are allowed")
    return count


def _bond_geometry(pos: np.ndarray, length: float) -> np.ndarray:
    """A diatomic's positions [2, 3] (bohr) with atom 1 moved along the bond to ``length`` bohr."""
    bond = pos[1] - pos[0]
    direction = bond / np.linalg.norm(bond)
    return np.stack([pos[0], pos[0] + length * direction])


def _scaled_geometry(pos: np.ndarray, factor: float) -> np.ndarray:
    """Positions [M, 3] scaled by ``factor`` about their unweighted centroid."""
    centre = pos.mean(axis=0)
    return centre + factor * (pos - centre)


def _scan_labels(name: str, values: np.ndarray) -> list[str]:
    """``"NAME=1.400"`` per value: 3 decimals, more if needed to tell the values apart."""
    for decimals in range(3, 13):
        labels = [f"{name}={v:.{decimals}f}" for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{name}={v!r}" for v in values.tolist()]
