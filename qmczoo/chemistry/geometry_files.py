"""Geometry files of a PES run: a YAML list of atom lists, or a multi-frame xyz file (``--geometries``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from qmczoo.chemistry.geometry_set import MAX_GEOMETRIES, GeometrySet, _check_geometries, _geometry_name, _make_set
from qmczoo.chemistry.parsing import _parse_atom, _parse_atom_list
from qmczoo.chemistry.system import System
from qmczoo.chemistry.systems import _build
from qmczoo.chemistry.units import unit_to_bohr
from qmczoo.errors import ConfigError, SystemSpecError


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
        return _read_yaml_frames(text, name)
    except RecursionError:  # a structure nested thousands deep (reading or printing it recurses)
        raise ConfigError(f"geometry file {name} is nested too deeply to read: a geometry file is a mapping with a "
                          "'geometries' list of atom lists") from None


def _read_yaml_frames(text: str, name: str) -> tuple[list[Frame], str | None]:
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
