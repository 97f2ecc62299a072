"""Atoms from text: xyz files (with or without their header), inline strings and atom lists.

Each parser returns ``[(symbol, (x, y, z)), ...]`` with the coordinates as written (no unit
applied); :func:`qmczoo.chemistry.systems.get_system` scales them to bohr.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from qmczoo.chemistry.elements import _element
from qmczoo.errors import SystemSpecError


def _parse_atom(text: str, where: str) -> tuple[str, tuple[float, float, float]]:
    """Parse ``"Sym x y z"`` (commas allowed between numbers); coordinates unscaled."""
    fields = text.replace(",", " ").split()
    if len(fields) != 4:
        raise SystemSpecError(
            f"cannot parse {where}: {text.strip()!r}; expected 'Symbol x y z' (4 fields), got {len(fields)}"
        )
    symbol = _element(fields[0], f" in {where}")
    xyz = []
    for f in fields[1:]:
        try:
            v = float(f)
        except ValueError:
            raise SystemSpecError(
                f"cannot parse coordinate {f!r} in {where} ({text.strip()!r}); expected a number"
            ) from None
        if not math.isfinite(v):
            raise SystemSpecError(f"non-finite coordinate {f!r} in {where} ({text.strip()!r})")
        xyz.append(v)
    return symbol, (xyz[0], xyz[1], xyz[2])


def _parse_geometry_text(text: str, label: str | None) -> list[tuple[str, tuple[float, float, float]]]:
    """Parse xyz text (with or without the count/comment header) or an inline string.

    ``label`` is the file name for error messages (None for inline strings).
    Atoms are separated by newlines or ';'; blank pieces and lines starting
    with '#' are skipped in the header-less form.
    """

    def where(n_atom: int, n_line: int | None) -> str:
        if label is None:
            return f"atom {n_atom}"
        return f"atom {n_atom} (line {n_line} of {label})"

    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    atoms = []
    if re.fullmatch(r"[+-]?\d+", first):  # standard xyz: count line, comment line, atoms
        count = int(first)
        if count <= 0:
            raise SystemSpecError(f"xyz header declares {count} atoms{'' if label is None else ' in ' + label}; no atoms")
        body = lines[2 : 2 + count]
        if len(body) < count:
            raise SystemSpecError(
                f"xyz header declares {count} atoms but only {len(body)} atom line(s) follow"
                + ("" if label is None else f" in {label}")
            )
        extra = [ln for ln in lines[2 + count :] if ln.strip()]
        if extra:
            raise SystemSpecError(
                f"xyz header declares {count} atoms but more lines follow ({extra[0].strip()!r})"
                + ("" if label is None else f" in {label}")
                + "; multi-frame xyz files are not supported"
            )
        for k, ln in enumerate(body):
            atoms.append(_parse_atom(ln, where(k + 1, k + 3)))
        return atoms

    n_atom = 0
    for n_line, ln in enumerate(lines, start=1):
        for piece in ln.split(";"):
            if not piece.strip() or piece.strip().startswith("#"):
                continue
            n_atom += 1
            atoms.append(_parse_atom(piece, where(n_atom, n_line)))
    if not atoms:
        raise SystemSpecError(
            "empty specification: no atoms" + ("" if label is None else f" in {label}")
        )
    return atoms


def _read_xyz_file(path: Path) -> list[tuple[str, tuple[float, float, float]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemSpecError(f"cannot read xyz file {str(path)!r}: {exc}") from None
    if not text.strip():
        raise SystemSpecError(f"empty specification: xyz file {str(path)!r} has no atoms")
    return _parse_geometry_text(text, repr(str(path)))


def _parse_atom_list(spec: Sequence[Any]) -> list[tuple[str, tuple[float, float, float]]]:
    """Atoms given as ``[(sym, x, y, z), ...]`` or ``[(sym, (x, y, z)), ...]``."""
    atoms = []
    for i, item in enumerate(spec):
        where = f"atom {i + 1}"
        if isinstance(item, str):
            atoms.append(_parse_atom(item, where))
            continue
        try:
            item = list(item)
            if len(item) == 2:
                sym, xyz = item[0], list(item[1])
            else:
                sym, xyz = item[0], item[1:]
        except TypeError:
            raise SystemSpecError(f"cannot parse {where}: {item!r}; expected (symbol, x, y, z)") from None
        if len(xyz) != 3:
            raise SystemSpecError(f"cannot parse {where}: {item!r}; expected (symbol, x, y, z)")
        symbol = _element(sym, f" in {where}")
        coords = []
        for v in xyz:
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise SystemSpecError(f"cannot parse coordinate {v!r} in {where}; expected a number") from None
            if not math.isfinite(fv):
                raise SystemSpecError(f"non-finite coordinate {v!r} in {where}")
            coords.append(fv)
        atoms.append((symbol, (coords[0], coords[1], coords[2])))
    if not atoms:
        raise SystemSpecError("empty specification: the atom list is empty")
    return atoms
