"""Several geometries of one molecule: the training set of a potential-energy-surface (PES) run.

A :class:`GeometrySet` holds G nuclear geometries of the same atoms and the same electrons.
The one entry point the command line uses is :func:`geometry_set`, which builds a set from

* a scan of one named coordinate, ``"NAME=START:STOP:COUNT"`` (:func:`parse_scan`):
  ``bond`` (the distance of a diatomic; atom 0 stays put, atom 1 moves along the bond) or
  ``scale`` (every nucleus scaled about the centroid of the nuclei);
* a geometry file (:func:`read_geometry_file`): a YAML list of atom lists or a multi-frame
  xyz file;
* nothing: the one given geometry.

Units: positions are in bohr, energies in hartree. Geometries are numbered from 0, as in
:meth:`GeometrySet.system_at` and in error messages.

Reference energies for a whole curve come from the package file ``qmczoo/chemistry/data/pes.yaml``
(:func:`reference_curve`); :func:`reference_energies` picks the tabulated exact energy of
each geometry of an H2 set.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from qmczoo.errors import ConfigError, SystemSpecError
from qmczoo.chemistry.systems import System, _build, _check_distances, _parse_atom, _parse_atom_list, unit_to_bohr

__all__ = [
    "COORDINATES",
    "MAX_GEOMETRIES",
    "GeometrySet",
    "geometry_set",
    "interpolate_reference",
    "parse_scan",
    "read_geometry_file",
    "reference_curve",
    "reference_energies",
]

COORDINATES = ("bond", "scale")
"""Names of the scan coordinates :func:`parse_scan` knows."""

MAX_GEOMETRIES = 1000
"""Most geometries a scan or a geometry file may hold."""

MATCH_TOLERANCE = 1e-6
"""Bohr: a bond length this close to a tabulated one counts as that point."""

_SAME_GEOMETRY = 1e-9
"""Bohr: positions this close count as the same geometry (keeps a System's reference energy)."""

_PES_FILE = Path(__file__).resolve().parent / "data" / "pes.yaml"

_SCAN_FORMS = "'NAME=START:STOP:COUNT', 'NAME=VALUE' or 'NAME=V1,V2,...' with NAME one of bond, scale"


# --------------------------------------------------------------------------- GeometrySet


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


# --------------------------------------------------------------------------- scans


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


# --------------------------------------------------------------------------- geometry files


def read_geometry_file(path: str | Path, system: System | None = None, unit: str | None = None) -> GeometrySet:
    """Geometries from a YAML file or a multi-frame xyz file.

    YAML (``.yaml``/``.yml``/``.json``)::

        units: bohr            # optional; default `unit`, else bohr
        geometries:
          - label: R=1.4       # optional; default "geometry <index>"
            atoms: [[H, 0, 0, 0], [H, 1.4, 0, 0]]
          - atoms: [[H, 0, 0, 0], [H, 2.0, 0, 0]]

    xyz (``.xyz``, or any other file whose first line is an atom count): frames of a count
    line, a comment line (the label; default "geometry <index>") and the atom lines, blank
    lines allowed between frames; in ``unit``, default angstrom.

    Args:
        path: the file.
        system: if given, every geometry must have its element sequence, and the electrons
            (charge, spin), nuclear charges and name come from it. If None: neutral, the
            lowest spin, named after the file's stem.
        unit: length unit of coordinates when the file does not say (a YAML ``units`` key
            wins over it).

    Returns:
        A GeometrySet with ``coordinate`` None and ``values`` 0, 1, 2, ...

    Raises:
        ConfigError: a missing or unreadable file, YAML that does not parse, a wrong layout
            (unknown keys, no geometries, more than ``MAX_GEOMETRIES``), a bad xyz frame header.
        SystemSpecError: a bad atom row, element or unit; elements that differ between
            geometries or from ``system``; overlapping nuclei (each naming file and geometry).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"geometry file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read geometry file {str(path)!r}: {exc}") from None
    name = repr(str(path))
    if _is_xyz(path, text):
        frames = _xyz_frames(text, name)
        scale = _file_unit_scale("angstrom" if unit is None else unit, name)
    else:
        frames, file_unit = _yaml_frames(text, name)
        scale = _file_unit_scale(file_unit or unit or "bohr", name)
    if len(frames) > MAX_GEOMETRIES:
        raise ConfigError(f"geometry file {name} has {len(frames)} geometries; at most {MAX_GEOMETRIES} are allowed")
    labels = [label or f"geometry {g}" for g, (label, _) in enumerate(frames)]
    symbols = _common_symbols([atoms for _, atoms in frames], labels, name, system)
    positions = np.array([[xyz for _, xyz in atoms] for _, atoms in frames], dtype=np.float64) * scale
    _check_geometries(symbols, positions, labels, f" of {name}")
    if system is None:
        system = _build(path.stem, frames[0][1], scale, 0, None)
    return _make_set(system, positions, None, [float(g) for g in range(len(frames))], labels)


def _file_unit_scale(unit: str, name: str) -> float:
    """Bohr per ``unit`` for the coordinates of geometry file ``name``."""
    try:
        return unit_to_bohr(unit)
    except SystemSpecError as exc:
        raise SystemSpecError(f"geometry file {name}: {exc}") from None


def _is_xyz(path: Path, text: str) -> bool:
    """Whether ``text`` is read as xyz: by suffix, else by a first line that is an atom count."""
    suffix = path.suffix.lower()
    if suffix == ".xyz":
        return True
    if suffix in (".yaml", ".yml", ".json"):
        return False
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return bool(re.fullmatch(r"\+?\d+", first))


Frame = tuple[str | None, list[tuple[str, tuple[float, float, float]]]]


def _xyz_frames(text: str, name: str) -> list[Frame]:
    """(comment, atoms) per frame of a multi-frame xyz text; coordinates as written."""
    lines = text.splitlines()
    frames: list[Frame] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        g, head = len(frames), lines[i].strip()
        where = f"geometry {g} of {name} (line {i + 1})"
        if not re.fullmatch(r"\+?\d+", head) or int(head) < 1:
            raise ConfigError(f"{where}: expected an xyz frame's atom count (an integer >= 1), got {head!r}")
        count = int(head)
        body = lines[i + 2 : i + 2 + count]
        if len(body) < count:
            raise ConfigError(f"{where}: the frame declares {count} atoms but only {len(body)} atom line(s) follow")
        comment = lines[i + 1].strip() if i + 1 < len(lines) else ""
        atoms = [_parse_atom(ln, f"atom {k + 1} (line {i + 3 + k}) of geometry {g} in {name}")
                 for k, ln in enumerate(body)]
        frames.append((comment or None, atoms))
        i += 2 + count
    if not frames:
        raise ConfigError(f"geometry file {name} has no geometries")
    return frames


def _yaml_frames(text: str, name: str) -> tuple[list[Frame], str | None]:
    """((label, atoms) per geometry, the file's ``units`` or None) of a YAML geometry file."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"geometry file {name} is not valid YAML: {first}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"geometry file {name} must be a mapping with a 'geometries' list (and optional 'units'), "
            f"got {type(data).__name__}"
        )
    unknown = sorted(set(data) - {"units", "geometries"}, key=str)
    if unknown:
        raise ConfigError(f"geometry file {name}: unknown key(s) {unknown}; allowed: geometries, units")
    entries = data.get("geometries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"geometry file {name} needs a non-empty 'geometries' list, got {entries!r}")
    units = data.get("units")
    if units is not None and not isinstance(units, str):
        raise SystemSpecError(f"geometry file {name}: 'units' must be 'bohr' or 'angstrom', got {units!r}")
    return [_yaml_frame(entry, g, name) for g, entry in enumerate(entries)], units


def _yaml_frame(entry: Any, g: int, name: str) -> Frame:
    """(label, atoms) of one entry of a YAML file's ``geometries`` list."""
    where = f"geometry {g} of {name}"
    if not isinstance(entry, Mapping) or "atoms" not in entry:
        raise ConfigError(f"{where} must be a mapping with 'atoms' (and optional 'label'), got {entry!r}")
    unknown = sorted(set(entry) - {"atoms", "label"}, key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: atoms, label")
    atoms = entry["atoms"]
    if isinstance(atoms, (str, bytes)) or not isinstance(atoms, Sequence):
        raise SystemSpecError(f"{where}: 'atoms' must be a list of [symbol, x, y, z] rows, got {atoms!r}")
    try:
        parsed = _parse_atom_list(atoms)
    except SystemSpecError as exc:
        raise SystemSpecError(f"{where}: {exc}") from None
    label = entry.get("label")
    return (None if label is None else str(label)), parsed


def _common_symbols(frames: Sequence[Sequence[tuple[str, Any]]], labels: Sequence[str], name: str,
                    system: System | None) -> tuple[str, ...]:
    """The element sequence all geometries share (and ``system`` has); SystemSpecError naming the first misfit."""
    expected = tuple(s for s, _ in frames[0]) if system is None else system.symbols
    against = "geometry 0" if system is None else f"the system {system.name}"
    for g, atoms in enumerate(frames):
        symbols = tuple(s for s, _ in atoms)
        if symbols != expected:
            raise SystemSpecError(
                f"{_geometry_name(g, labels[g])} of {name} has the atoms {' '.join(symbols)}, but {against} has "
                f"{' '.join(expected)}: every geometry must list the same elements in the same order"
            )
    return expected


# --------------------------------------------------------------------------- entry point


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
    if scan is not None and geometries is not None:
        raise ConfigError("give either a scan or a geometry file, not both")
    if scan is not None:
        return parse_scan(system, scan, "bohr" if unit is None else unit)
    if geometries is not None:
        return read_geometry_file(geometries, system, unit)
    return GeometrySet(system=system, positions=system.positions[None], coordinate=None,
                       values=(0.0,), labels=("given geometry",))


# --------------------------------------------------------------------------- reference energies


@functools.lru_cache(maxsize=1)
def _pes_curves() -> dict[str, dict[str, Any]]:
    with open(_PES_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)["curves"]


def reference_curve(name: str = "h2_dissociation") -> tuple[np.ndarray, np.ndarray, str]:
    """A tabulated reference curve from ``qmczoo/chemistry/data/pes.yaml``.

    Returns:
        ``(R, E, source)``: bond lengths R in bohr ``[P]`` (increasing), total energies E in
        hartree ``[P]`` and a one-line source text (method and citation).

    Raises:
        ConfigError: for an unknown curve name (listing the known ones).
    """
    curves = _pes_curves()
    if name not in curves:
        raise ConfigError(f"unknown reference curve {name!r}: known curves are {', '.join(curves)}")
    points = np.array(curves[name]["points"], dtype=np.float64)
    return points[:, 0].copy(), points[:, 1].copy(), str(curves[name]["source"])


def _is_h2(system: System) -> bool:
    """Two protons with one spin-up and one spin-down electron."""
    return (system.symbols == ("H", "H") and system.charges == (1.0, 1.0)
            and system.n_up == 1 and system.n_down == 1)


def _h2_table_energy(system: System, pos: np.ndarray) -> tuple[float | None, str | None]:
    """(exact energy, source) of ``system``'s electrons at ``pos`` [M, 3] if H2 at a tabulated R, else (None, None)."""
    if not _is_h2(system):
        return None, None
    r_table, e_table, source = reference_curve("h2_dissociation")
    r = float(np.linalg.norm(pos[1] - pos[0]))
    k = int(np.argmin(np.abs(r_table - r)))
    if abs(r_table[k] - r) <= MATCH_TOLERANCE:
        return float(e_table[k]), source
    return None, None


def reference_energies(gset: GeometrySet) -> list[float | None]:
    """Exact energy (hartree) per geometry of an H2 set, from ``pes.yaml``; None where not tabulated.

    A geometry gets a value if the set is H2 (two H nuclei, one up and one down electron)
    and its bond length is within ``MATCH_TOLERANCE`` (1e-6 bohr) of a tabulated R. For any
    other molecule every entry is None.
    """
    return [_h2_table_energy(gset.system, pos)[0] for pos in gset.positions]


def interpolate_reference(x: Any, ref_x: Any, ref_e: Any) -> np.ndarray:
    """Reference energies at ``x`` [N] from a tabulated curve ``(ref_x [P], ref_e [P])``.

    An ``x`` within ``MATCH_TOLERANCE`` of a tabulated point takes its value; others inside
    ``[min(ref_x), max(ref_x)]`` are interpolated with a cubic spline (linear for fewer than
    three points); outside the range the result is NaN. Returns float64 ``[N]``.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    ref_x, ref_e = (np.asarray(a, dtype=np.float64).ravel() for a in (ref_x, ref_e))
    ok = np.isfinite(ref_x) & np.isfinite(ref_e)
    ref_x, keep = np.unique(ref_x[ok], return_index=True)
    ref_e = ref_e[ok][keep]
    out = np.full(x.shape, np.nan)
    if ref_x.size == 0:
        return out
    inside = np.isfinite(x) & (x >= ref_x[0] - MATCH_TOLERANCE) & (x <= ref_x[-1] + MATCH_TOLERANCE)
    if ref_x.size >= 3:
        from scipy.interpolate import CubicSpline

        out[inside] = CubicSpline(ref_x, ref_e)(np.clip(x[inside], ref_x[0], ref_x[-1]))
    elif ref_x.size == 2:
        out[inside] = np.interp(x[inside], ref_x, ref_e)
    nearest = np.abs(x[:, None] - ref_x[None, :]).argmin(axis=1) if x.size else np.zeros(0, int)
    exact = np.isfinite(x) & (np.abs(x - ref_x[nearest]) <= MATCH_TOLERANCE)
    out[exact] = ref_e[nearest[exact]]
    return out
