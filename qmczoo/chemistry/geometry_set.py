"""Several geometries of one molecule: the training set of a potential-energy-surface (PES) run.

A :class:`GeometrySet` holds G nuclear geometries of the same atoms and the same electrons.
The one entry point the command line uses is :func:`geometry_set`, which builds a set from

* a scan of one named coordinate, ``"NAME=START:STOP:COUNT"``
  (:func:`qmczoo.chemistry.scans.parse_scan`): ``bond`` (the distance of a diatomic; atom 0
  stays put, atom 1 moves along the bond) or ``scale`` (every nucleus scaled about the
  centroid of the nuclei);
* a geometry file (:func:`qmczoo.chemistry.geometry_files.read_geometry_file`): a YAML list of
  atom lists or a multi-frame xyz file;
* nothing: the one given geometry.

Units: positions are in bohr, energies in hartree. Geometries are numbered from 0, as in
:meth:`GeometrySet.system_at` and in error messages. Reference energies of a geometry come
from :mod:`qmczoo.chemistry.reference_curves`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from qmczoo.chemistry.reference_curves import _h2_table_energy
from qmczoo.chemistry.system import System, _check_distances
from qmczoo.errors import ConfigError, SystemSpecError

COORDINATES = ("bond", "scale")
"""Names of the scan coordinates :func:`parse_scan` knows."""
MAX_GEOMETRIES = 1000
"""Most geometries a scan or a geometry file may hold."""
_SAME_GEOMETRY = 1e-9
"""Bohr: positions this close count as the same geometry (keeps a System's reference energy)."""


@dataclasses.dataclass(frozen=True, eq=False)
class GeometrySet:
    """Several geometries of one molecule (same atoms, same electrons): what a PES run trains on.

    Fields:
        system: the first geometry; symbols, charges, n_up and n_down of every geometry
            come from it. Its positions must equal ``positions[0]``.
        positions: nuclear positions, float64 ``[G, M, 3]`` in bohr (a read-only copy).
        coordinate: ``"bond"``, ``"scale"`` or None (a geometry file or one given geometry).
        values: the coordinate's value per geometry, length G (bond: bohr; scale: the
            factor; otherwise the index 0, 1, 2, ...).
        labels: a text per geometry, length G (``"bond=1.400"`` for scans, a file's
            label or comment line otherwise).

    Equality compares all fields (positions exactly); instances are hashable.

    Raises:
        SystemSpecError: on a bad shape, a non-finite position, lengths of ``values`` and
            ``labels`` that differ from G, or nuclei closer than 0.1 bohr in any geometry
            (the message names the geometry).
        ConfigError: on an unknown ``coordinate``.
    """

    system: System
    positions: np.ndarray
    coordinate: str | None
    values: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        if not isinstance(self.system, System):
            raise SystemSpecError(f"GeometrySet.system must be a System, got {type(self.system).__name__}")
        if self.coordinate is not None and self.coordinate not in COORDINATES:
            raise ConfigError(
                f"unknown scan coordinate {self.coordinate!r}: known ones are {', '.join(COORDINATES)} (or None)"
            )
        positions = _as_positions(self.positions, self.system.n_nuclei)
        values = tuple(_finite_float(v, "values") for v in self.values)
        labels = tuple(str(s) for s in self.labels)
        g = positions.shape[0]
        if not len(values) == len(labels) == g:
            raise SystemSpecError(
                f"a geometry set needs one value and one label per geometry: {g} geometries, "
                f"{len(values)} values, {len(labels)} labels"
            )
        _check_geometries(self.system.symbols, positions, labels)
        if not np.allclose(positions[0], self.system.positions, rtol=0.0, atol=_SAME_GEOMETRY):
            raise SystemSpecError("GeometrySet.system must be the first geometry (its positions differ from positions[0])")
        set_("positions", positions)
        set_("values", values)
        set_("labels", labels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GeometrySet):
            return NotImplemented
        return (self.system == other.system and self.coordinate == other.coordinate
                and self.values == other.values and self.labels == other.labels
                and np.array_equal(self.positions, other.positions))

    def __hash__(self) -> int:
        return hash((self.system, self.coordinate, self.values, self.labels, self.positions.tobytes()))

    @property
    def n_geometries(self) -> int:
        """Number of geometries G."""
        return int(self.positions.shape[0])

    def system_at(self, g: int) -> System:
        """The ``g``-th geometry as a System (same name, nuclei and electrons as :attr:`system`).

        Its ``reference_energy`` is :attr:`system`'s if the geometry is the first one (and
        that has one), else the tabulated exact energy for an H2 bond length in ``pes.yaml``,
        else None.
        """
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)):
            raise TypeError(f"geometry index must be an int, got {type(g).__name__}")
        if not -self.n_geometries <= g < self.n_geometries:
            raise IndexError(f"geometry {g} out of range: the set has {self.n_geometries} geometries")
        return _system_with_positions(self.system, self.positions[g])

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (str, float, int, list, None only) for config files.

        Keys: ``system`` (:meth:`System.to_dict`), ``positions`` (G x M x 3 nested lists,
        bohr), ``coordinate``, ``values`` (list of G floats), ``labels`` (list of G str).
        Inverse of :meth:`from_dict`.
        """
        return {
            "system": self.system.to_dict(),
            "positions": [[[float(v) for v in atom] for atom in geom] for geom in self.positions],
            "coordinate": self.coordinate,
            "values": [float(v) for v in self.values],
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GeometrySet":
        """Rebuild a set from :meth:`to_dict` output; unknown or missing keys raise ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a geometry set dictionary must be a mapping, got {type(d).__name__}")
        keys = {"system", "positions", "coordinate", "values", "labels"}
        unknown = sorted(set(d) - keys, key=str)
        missing = sorted(keys - set(d))
        if unknown or missing:
            raise ConfigError(
                f"geometry set dictionary: unknown key(s) {unknown}, missing key(s) {missing}; "
                f"expected exactly {sorted(keys)}"
            )
        for key in ("values", "labels"):
            if isinstance(d[key], (str, bytes)) or not isinstance(d[key], Sequence):
                raise ConfigError(f"geometry set dictionary: {key!r} must be a list, got {d[key]!r}")
        return cls(
            system=System.from_dict(d["system"]),
            positions=d["positions"],
            coordinate=d["coordinate"],
            values=tuple(d["values"]),
            labels=tuple(d["labels"]),
        )


def _as_positions(positions: Any, n_nuclei: int) -> np.ndarray:
    """``positions`` as a read-only float64 copy of shape [G, n_nuclei, 3] (G >= 1), all finite."""
    try:
        pos = np.array(positions, dtype=np.float64)
    except (TypeError, ValueError):
        raise SystemSpecError("geometry set positions must be numbers of shape [G, M, 3]") from None
    if pos.ndim != 3 or pos.shape[0] < 1 or pos.shape[1:] != (n_nuclei, 3):
        raise SystemSpecError(
            f"geometry set positions must have shape [G, {n_nuclei}, 3] with G >= 1 "
            f"(the system has {n_nuclei} nuclei), got {list(pos.shape)}"
        )
    if not np.all(np.isfinite(pos)):
        g = int(np.flatnonzero(~np.isfinite(pos).all(axis=(1, 2)))[0])
        raise SystemSpecError(f"geometry {g} has a non-finite nuclear position")
    pos.setflags(write=False)
    return pos


def _finite_float(value: Any, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SystemSpecError(f"{what} must be numbers, got {value!r}") from None
    if not math.isfinite(x):
        raise SystemSpecError(f"{what} must be finite numbers, got {value!r}")
    return x


def _check_geometries(symbols: Sequence[str], positions: np.ndarray, labels: Sequence[str],
                      source: str = "") -> None:
    """The overlapping-nuclei check of :class:`System` for each of ``positions`` [G, M, 3] (bohr).

    ``source`` (e.g. ``" of 'scan.xyz'"``) is added to the message after the geometry's name.
    """
    for g, pos in enumerate(positions):
        try:
            _check_distances(symbols, pos)
        except SystemSpecError as exc:
            raise SystemSpecError(f"{_geometry_name(g, labels[g])}{source}: {exc}") from None


def _geometry_name(g: int, label: str) -> str:
    """``"geometry 3 (bond=1.400)"``, or ``"geometry 3"`` when that is its label."""
    default = f"geometry {g}"
    return default if label == default else f"{default} ({label})"


def _system_with_positions(base: System, pos: np.ndarray) -> System:
    """``base`` with its nuclei at ``pos`` [M, 3] (bohr).

    The reference energy is ``base``'s if ``pos`` is ``base``'s geometry and ``base`` has one,
    else the tabulated H2 energy where one exists (:func:`reference_energies`), else None.
    """
    pos = np.asarray(pos, dtype=np.float64)
    same = np.allclose(pos, base.positions, rtol=0.0, atol=_SAME_GEOMETRY)
    if same and base.reference_energy is not None:
        return base
    energy, source = _h2_table_energy(base, pos)
    if same:
        return base if energy is None else dataclasses.replace(base, reference_energy=energy, reference_source=source)
    return dataclasses.replace(base, coords=tuple(tuple(float(v) for v in atom) for atom in pos),
                               reference_energy=energy, reference_source=source)


def _make_set(base: System, positions: np.ndarray, coordinate: str | None,
              values: Sequence[float], labels: Sequence[str]) -> GeometrySet:
    """A GeometrySet of ``base``'s atoms and electrons at ``positions`` [G, M, 3] (bohr)."""
    positions = np.asarray(positions, dtype=np.float64)
    _check_geometries(base.symbols, positions, labels)  # before the first System is built: names the geometry
    return GeometrySet(system=_system_with_positions(base, positions[0]), positions=positions,
                       coordinate=coordinate, values=tuple(values), labels=tuple(labels))


def geometry_set(system: System, scan: str | None = None, geometries: str | Path | None = None,
                 unit: str | None = None) -> GeometrySet:
    """The geometries a run trains on: a scan, a geometry file, or ``system``'s own geometry.

    Args:
        system: the molecule (atoms, electrons and, for a scan, the starting geometry).
        scan: a :func:`parse_scan` spec, e.g. ``"bond=0.8:4.0:17"``; bond values in ``unit``
            (default bohr).
        geometries: a :func:`read_geometry_file` path (YAML default bohr, xyz default angstrom,
            unless ``unit`` says otherwise).
        unit: length unit of the scan values or of the file's coordinates.

    Returns:
        The GeometrySet; with neither ``scan`` nor ``geometries`` a one-geometry set of
        ``system`` (coordinate None, value 0, label ``"given geometry"``).

    Raises:
        ConfigError: if both ``scan`` and ``geometries`` are given, or as the two readers do.
        SystemSpecError: as the two readers do.
    """
    from qmczoo.chemistry.geometry_files import (
        read_geometry_file,  # these two build on this module
    )
    from qmczoo.chemistry.scans import parse_scan

    if scan is not None and geometries is not None:
        raise ConfigError("give either a scan or a geometry file, not both")
    if scan is not None:
        return parse_scan(system, scan, "bohr" if unit is None else unit)
    if geometries is not None:
        return read_geometry_file(geometries, system, unit)
    return GeometrySet(system=system, positions=system.positions[None], coordinate=None,
                       values=(0.0,), labels=("given geometry",))
