"""Molecular systems: nuclei (symbols, charges, positions in bohr) and electron counts.

The one entry point is :func:`get_system`, which turns any of the accepted
specifications (a molecule name from ``qmczoo/chemistry/data/molecules.yaml``, a bare
element symbol, an xyz file, an inline geometry string, a list of atoms, a
``System.to_dict()`` dictionary or a pyscf ``gto.Mole``) into a frozen
:class:`System`. Every problem with a specification raises
:class:`qmczoo.errors.SystemSpecError` with a one-line message that names the
offending value.

Units: all lengths stored in a :class:`System` are in bohr; energies are in
hartree. ``1 angstrom = 1.8897261246 bohr``. Coordinates a user types (xyz files, inline
strings, atom lists) are read in ångström unless ``unit`` says otherwise (the xyz format's
and pyscf's convention); named molecules are defined in bohr. A nuclear distance that is
implausibly short for a bond in the unit in force gives a :class:`GeometryWarning`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml
from pyscf.data import elements as _elements

from qmczoo.errors import SystemSpecError

__all__ = [
    "BOHR_PER_ANGSTROM",
    "DEFAULT_COORDINATE_UNIT",
    "GeometryWarning",
    "read_system",
    "MIN_NUCLEAR_DISTANCE",
    "System",
    "get_system",
    "molecule_names",
    "unit_to_bohr",
]

BOHR_PER_ANGSTROM = 1.8897261246
"""Bohr per angstrom (1 / 0.529177210903, CODATA 2018)."""

MIN_NUCLEAR_DISTANCE = 0.1
"""Smallest allowed distance between two nuclei, in bohr."""

DEFAULT_COORDINATE_UNIT = "angstrom"
"""Unit of xyz files, inline geometries and atom lists when none is given (as in pyscf)."""

MIN_PLAUSIBLE_BOND = 1.0
"""Bohr: no chemical bond is shorter (H2's is 1.4); shorter distances give a GeometryWarning."""


class GeometryWarning(UserWarning):
    """A geometry that is legal but probably not meant (e.g. read in the wrong unit)."""

_MOLECULES_FILE = Path(__file__).resolve().parent / "data" / "molecules.yaml"

_UNITS = {
    "bohr": 1.0,
    "b": 1.0,
    "angstrom": BOHR_PER_ANGSTROM,
    "angstroms": BOHR_PER_ANGSTROM,
    "ang": BOHR_PER_ANGSTROM,
    "a": BOHR_PER_ANGSTROM,
}

# Element symbols come from pyscf (index 0 is the ghost "X", not an element).
_SYMBOL_BY_UPPER = {s.upper(): s for s in _elements.ELEMENTS[1:]}
_MAX_Z = len(_elements.ELEMENTS) - 1


# --------------------------------------------------------------------------- helpers


def canonical_unit(unit: str) -> str:
    """``"bohr"`` or ``"angstrom"`` for any accepted spelling of a unit."""
    return "bohr" if unit_to_bohr(unit) == 1.0 else "angstrom"


def unit_to_bohr(unit: str) -> float:
    """Return the number of bohr in one ``unit``.

    Args:
        unit: ``"bohr"`` (or ``"b"``) or ``"angstrom"`` (or ``"a"``, ``"ang"``,
            ``"angstroms"``), case-insensitive.

    Returns:
        1.0 for bohr, 1.8897261246 for angstrom.

    Raises:
        SystemSpecError: for any other string.
    """
    key = unit.strip().lower() if isinstance(unit, str) else None
    if key not in _UNITS:
        raise SystemSpecError(
            f"unknown length unit {unit!r}: use 'bohr' (or 'b') or 'angstrom' (or 'a', 'ang')"
        )
    return _UNITS[key]


def _element(token: Any, where: str = "") -> str:
    """Canonical element symbol for ``token`` (symbol in any case, or atomic number)."""
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        z = int(token)
        if 1 <= z <= _MAX_Z:
            return _elements.ELEMENTS[z]
    elif isinstance(token, str):
        text = token.strip()
        if text.isdigit() and 1 <= int(text) <= _MAX_Z:
            return _elements.ELEMENTS[int(text)]
        if text.upper() in _SYMBOL_BY_UPPER:
            return _SYMBOL_BY_UPPER[text.upper()]
    raise SystemSpecError(f"unknown element {token!r}{where}")


def _atomic_number(symbol: str) -> int:
    return _elements.NUC[symbol]


def _hund_unpaired(z: int) -> int:
    """Number of unpaired electrons in the Hund's-rule ground state of neutral atom ``z``.

    Uses pyscf's ground-state configurations (total s, p, d, f occupations):
    the open part of each angular-momentum shell is ``n mod capacity`` and holds
    ``min(r, capacity - r)`` unpaired electrons. For ``z`` outside the table,
    falls back to ``z % 2``.
    """
    if not 1 <= z < len(_elements.CONFIGURATION):
        return z % 2
    unpaired = 0
    for n, capacity in zip(_elements.CONFIGURATION[z], (2, 6, 10, 14)):
        r = n % capacity
        unpaired += min(r, capacity - r)
    return unpaired


def _as_int(value: Any, what: str) -> int:
    """``value`` as an int; integral floats and digit strings are accepted."""
    if isinstance(value, bool):
        raise SystemSpecError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise SystemSpecError(f"{what} must be an integer, got {value!r}")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# --------------------------------------------------------------------------- System


@dataclasses.dataclass(frozen=True)
class System:
    """A molecule: clamped nuclei plus a number of spin-up and spin-down electrons.

    Fields:
        name: label, e.g. ``"LiH"`` for a named molecule or ``"custom"``.
        symbols: element symbol per nucleus (canonical capitalisation), length M.
        charges: nuclear charge Z per nucleus (floats), length M.
        coords: nuclear positions in bohr, M tuples ``(x, y, z)``.
        n_up, n_down: numbers of spin-up and spin-down electrons (>= 0, sum > 0).
        reference_energy: best-known total energy in hartree (from
            ``molecules.yaml``), or None.
        reference_source: where ``reference_energy`` comes from, or None.

    Construction normalises the types (tuples of floats/ints, canonical element
    symbols) and validates everything; a bad value raises
    :class:`~qmczoo.errors.SystemSpecError`. Instances are immutable and hashable.
    """

    name: str
    symbols: tuple[str, ...]
    charges: tuple[float, ...]
    coords: tuple[tuple[float, float, float], ...]
    n_up: int
    n_down: int
    reference_energy: float | None = None
    reference_source: str | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("name", str(self.name))
        if isinstance(self.symbols, str):
            raise SystemSpecError(f"symbols must be a sequence of element symbols, got the string {self.symbols!r}")
        try:
            symbols = tuple(self.symbols)
            charges_in = tuple(self.charges)
            coords_in = tuple(self.coords)
        except TypeError as exc:
            raise SystemSpecError(f"symbols, charges and coords must be sequences ({exc})") from None
        if not symbols:
            raise SystemSpecError("the system has no atoms (empty specification)")
        if not len(symbols) == len(charges_in) == len(coords_in):
            raise SystemSpecError(
                f"symbols ({len(symbols)}), charges ({len(charges_in)}) and coords "
                f"({len(coords_in)}) must have one entry per nucleus"
            )
        symbols = tuple(_element(s, f" in atom {i + 1}") for i, s in enumerate(symbols))

        charges = []
        for i, z in enumerate(charges_in):
            try:
                zf = float(z)
            except (TypeError, ValueError):
                zf = float("nan")
            if not (math.isfinite(zf) and zf > 0):
                raise SystemSpecError(
                    f"nuclear charge of atom {i + 1} ({symbols[i]}) must be a positive finite number, got {z!r}"
                )
            charges.append(zf)

        coords = []
        for i, c in enumerate(coords_in):
            try:
                xyz = tuple(float(v) for v in c)
            except (TypeError, ValueError):
                xyz = ()
            if len(xyz) != 3:
                raise SystemSpecError(
                    f"coordinates of atom {i + 1} ({symbols[i]}) must be three numbers (x, y, z), got {c!r}"
                )
            if not all(math.isfinite(v) for v in xyz):
                raise SystemSpecError(
                    f"non-finite coordinate in atom {i + 1} ({symbols[i]}): {xyz!r}"
                )
            coords.append(xyz)

        n_up = _as_int(self.n_up, "n_up")
        n_down = _as_int(self.n_down, "n_down")
        if n_up < 0 or n_down < 0:
            raise SystemSpecError(
                f"negative electron count: n_up={n_up}, n_down={n_down} (both must be >= 0)"
            )
        if n_up + n_down <= 0:
            raise SystemSpecError("non-positive electron count: the system needs at least one electron")

        _check_distances(symbols, np.asarray(coords, dtype=np.float64))

        ref = self.reference_energy
        if ref is not None:
            try:
                ref = float(ref)
            except (TypeError, ValueError):
                raise SystemSpecError(f"reference_energy must be a number or None, got {ref!r}") from None
        src = None if self.reference_source is None else str(self.reference_source)

        set_("symbols", symbols)
        set_("charges", tuple(charges))
        set_("coords", tuple(coords))
        set_("n_up", n_up)
        set_("n_down", n_down)
        set_("reference_energy", ref)
        set_("reference_source", src)

    # ------------------------------------------------------------------ properties

    @property
    def positions(self) -> np.ndarray:
        """Nuclear positions, a new float64 array of shape [M, 3], in bohr."""
        return np.array(self.coords, dtype=np.float64).reshape(-1, 3)

    @property
    def atomic_charges(self) -> np.ndarray:
        """Nuclear charges Z, a new float64 array of shape [M]."""
        return np.array(self.charges, dtype=np.float64)

    @property
    def n_electrons(self) -> int:
        """Total number of electrons, ``n_up + n_down``."""
        return self.n_up + self.n_down

    @property
    def n_nuclei(self) -> int:
        """Number of nuclei M."""
        return len(self.symbols)

    @property
    def charge(self) -> int:
        """Net molecular charge, ``round(sum Z) - n_electrons``."""
        return int(round(sum(self.charges))) - self.n_electrons

    @property
    def spin(self) -> int:
        """``n_up - n_down`` (pyscf's ``mol.spin``; 2S for the high-spin component)."""
        return self.n_up - self.n_down

    @property
    def nuclear_repulsion(self) -> float:
        """Nuclear repulsion energy ``sum_{I<J} Z_I Z_J / |R_I - R_J|`` in hartree (0 for one atom)."""
        pos = self.positions
        z = self.atomic_charges
        i, j = np.triu_indices(len(z), k=1)
        if len(i) == 0:
            return 0.0
        dist = np.linalg.norm(pos[i] - pos[j], axis=-1)
        return float(np.sum(z[i] * z[j] / dist))

    # ------------------------------------------------------------------ methods

    def atom_electron_counts(self) -> list[tuple[int, int]]:
        """Assign the system's electrons to nuclei, e.g. to place initial MCMC walkers.

        Returns:
            A list of M pairs ``(n_up_on_atom, n_down_on_atom)`` of non-negative
            ints whose sums over atoms are exactly ``(n_up, n_down)``.

        The assignment is deterministic:

        1. Each atom starts neutral with ``round(Z)`` electrons, split as in the
           isolated atom's Hund's-rule ground state (unpaired electrons up;
           e.g. C -> (4, 2), N -> (5, 2), H -> (1, 0)), from pyscf's
           ground-state configurations.
        2. The total is matched to ``n_electrons``: extra electrons (anions) go one
           at a time to the atom with the smallest excess (electrons - Z), ties to
           the heaviest atom, into its minority spin; missing electrons (cations)
           are taken one at a time from the atom with the largest excess, ties to
           the heaviest atom, from its majority spin.
        3. Spins are flipped until the up count is ``n_up``: atoms are visited in
           the order 2nd, 4th, 6th, ..., then the others from the last one
           backwards, and each visited atom's surplus of the spin in excess is
           flipped (as far as needed), so that e.g. H2 becomes (1, 0), (0, 1),
           N2 (5, 2), (2, 5) and an H chain alternates up/down. If that is not
           enough, single electrons are flipped on the atoms with most of the
           excess spin.
        """
        m = self.n_nuclei
        zs = [max(0, int(round(z))) for z in self.charges]
        up, down = [], []
        for z in zs:
            u = _hund_unpaired(z)
            up.append((z + u) // 2)
            down.append((z - u) // 2)

        # 2. match the total number of electrons.
        excess = self.n_electrons - sum(zs)
        while excess > 0:
            i = min(range(m), key=lambda k: (up[k] + down[k] - zs[k], -zs[k], k))
            if up[i] > down[i]:
                down[i] += 1
            else:
                up[i] += 1
            excess -= 1
        while excess < 0:
            candidates = [k for k in range(m) if up[k] + down[k] > 0]
            i = max(candidates, key=lambda k: (up[k] + down[k] - zs[k], zs[k], -k))
            if up[i] >= down[i]:
                up[i] -= 1
            else:
                down[i] -= 1
            excess += 1

        # 3. match the spin by flipping electrons.
        order = list(range(1, m, 2)) + list(range(0, m, 2))[::-1]
        n_flip = sum(up) - self.n_up  # > 0: too many up electrons; < 0: too few
        major, minor = (up, down) if n_flip > 0 else (down, up)
        n_flip = abs(n_flip)
        for i in order:
            if n_flip == 0:
                break
            k = min(max(major[i] - minor[i], 0), n_flip)
            major[i] -= k
            minor[i] += k
            n_flip -= k
        while n_flip > 0:
            i = max((k for k in range(m) if major[k] > 0), key=lambda k: (major[k] - minor[k], -k))
            major[i] -= 1
            minor[i] += 1
            n_flip -= 1

        counts = list(zip(up, down))
        assert sum(u for u, _ in counts) == self.n_up and sum(d for _, d in counts) == self.n_down
        return counts

    def to_pyscf(self, basis: Any = "ccpvdz") -> Any:
        """Build a pyscf ``gto.Mole`` of this system.

        Args:
            basis: any basis pyscf accepts (name or dict), default ``"ccpvdz"``.

        Returns:
            A built ``pyscf.gto.Mole`` with coordinates in bohr (``unit="Bohr"``),
            ``charge = self.charge``, ``spin = n_up - n_down`` and ``verbose=0``.

        Raises:
            SystemSpecError: if pyscf cannot build the molecule (e.g. the basis
                has no functions for an element) or the nuclear charges are not
                the elements' atomic numbers.
        """
        from pyscf import gto

        for i, (s, z) in enumerate(zip(self.symbols, self.charges)):
            if z != _atomic_number(s):
                raise SystemSpecError(
                    f"to_pyscf needs standard nuclear charges, but atom {i + 1} ({s}) has Z={_fmt(z)}"
                )
        atoms = [(s, tuple(c)) for s, c in zip(self.symbols, self.coords)]
        try:
            return gto.M(
                atom=atoms, unit="Bohr", basis=basis, charge=self.charge, spin=self.spin, verbose=0
            )
        except Exception as exc:  # pyscf raises many kinds (RuntimeError, KeyError, ...)
            raise SystemSpecError(
                f"pyscf could not build {self.name} with basis {basis!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def describe(self) -> str:
        """One-line summary, e.g. ``"LiH: 2 nuclei, 4 electrons (2 up, 2 down)"``."""
        nuc = "1 nucleus" if self.n_nuclei == 1 else f"{self.n_nuclei} nuclei"
        ele = "1 electron" if self.n_electrons == 1 else f"{self.n_electrons} electrons"
        text = f"{self.name}: {nuc}, {ele} ({self.n_up} up, {self.n_down} down)"
        if self.charge:
            text += f", charge {self.charge:+d}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (str, int, float, list, None only) for config files.

        Keys: name, symbols (list[str]), charges (list[float]), coords
        (list of [x, y, z] in bohr), n_up, n_down, reference_energy,
        reference_source. Inverse of :meth:`from_dict`.
        """
        return {
            "name": self.name,
            "symbols": list(self.symbols),
            "charges": [float(z) for z in self.charges],
            "coords": [[float(v) for v in c] for c in self.coords],
            "n_up": int(self.n_up),
            "n_down": int(self.n_down),
            "reference_energy": self.reference_energy,
            "reference_source": self.reference_source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "System":
        """Rebuild a System from :meth:`to_dict` output.

        Required keys: symbols, coords (bohr), n_up, n_down. Optional: name
        (default ``"custom"``), charges (default: the elements' atomic numbers),
        reference_energy, reference_source. Unknown keys raise SystemSpecError.
        """
        if not isinstance(d, Mapping):
            raise SystemSpecError(f"a system dictionary must be a mapping, got {type(d).__name__}")
        allowed = {"name", "symbols", "charges", "coords", "n_up", "n_down", "reference_energy", "reference_source"}
        unknown = sorted(set(d) - allowed, key=str)
        if unknown:
            raise SystemSpecError(f"unknown key(s) {unknown} in system dictionary; allowed: {sorted(allowed)}")
        missing = [k for k in ("symbols", "coords", "n_up", "n_down") if k not in d]
        if missing:
            raise SystemSpecError(f"system dictionary is missing key(s) {missing}")
        symbols = d["symbols"]
        if isinstance(symbols, str) or not isinstance(symbols, Sequence):
            raise SystemSpecError(f"'symbols' must be a list of element symbols, got {symbols!r}")
        charges = d.get("charges")
        if charges is None:
            charges = [
                float(_atomic_number(_element(s, f" in atom {i + 1}"))) for i, s in enumerate(symbols)
            ]
        return cls(
            name=d.get("name", "custom"),
            symbols=symbols,
            charges=charges,
            coords=d["coords"],
            n_up=d["n_up"],
            n_down=d["n_down"],
            reference_energy=d.get("reference_energy"),
            reference_source=d.get("reference_source"),
        )


def _check_distances(symbols: Sequence[str], pos: np.ndarray) -> None:
    """Raise SystemSpecError if two nuclei are closer than MIN_NUCLEAR_DISTANCE (bohr)."""
    if len(pos) < 2:
        return
    i, j = np.triu_indices(len(pos), k=1)
    dist = np.linalg.norm(pos[i] - pos[j], axis=-1)
    k = int(np.argmin(dist))
    if dist[k] < MIN_NUCLEAR_DISTANCE:
        a, b = int(i[k]), int(j[k])
        raise SystemSpecError(
            f"atoms {a + 1} ({symbols[a]}) and {b + 1} ({symbols[b]}) are only {_fmt(dist[k])} bohr apart "
            f"(nuclei must be at least {MIN_NUCLEAR_DISTANCE} bohr apart)"
        )


# --------------------------------------------------------------------------- named molecules


@functools.lru_cache(maxsize=1)
def _molecules() -> dict[str, dict[str, Any]]:
    """Entries of molecules.yaml keyed by their exact name (file order)."""
    with open(_MOLECULES_FILE, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {str(entry["name"]): entry for entry in data["molecules"]}


def molecule_names() -> tuple[str, ...]:
    """Names of the molecules in ``qmczoo/chemistry/data/molecules.yaml``, in file order."""
    return tuple(_molecules())


def _lookup_molecule(name: str) -> dict[str, Any] | None:
    mols = _molecules()
    if name in mols:
        return mols[name]
    if name.upper() in _SYMBOL_BY_UPPER and _SYMBOL_BY_UPPER[name.upper()] == name:
        return None  # an exact element symbol ("Co") wins over a case-insensitive name ("CO")
    folded = {k.casefold(): v for k, v in mols.items()}
    return folded.get(name.casefold())


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- builders


def _build(
    name: str,
    atoms: Sequence[tuple[str, tuple[float, float, float]]],
    scale: float,
    charge: Any,
    spin: Any,
    reference_energy: float | None = None,
    reference_source: str | None = None,
    unit: str | None = None,
) -> System:
    """System from (symbol, xyz) atoms; coordinates are multiplied by ``scale`` to get bohr.

    ``unit`` (the name of the unit the user's coordinates were read in) turns on the check
    for implausibly short bonds.
    """
    if not atoms:
        raise SystemSpecError("empty specification: no atoms")
    symbols = [s for s, _ in atoms]
    charges = [float(_atomic_number(s)) for s in symbols]
    coords = [tuple(v * scale for v in xyz) for _, xyz in atoms]
    charge = _as_int(charge, "charge")
    total_z = int(round(sum(charges)))
    n_el = total_z - charge
    if n_el <= 0:
        raise SystemSpecError(
            f"non-positive electron count: total nuclear charge {total_z} with charge {charge} "
            f"leaves {n_el} electrons"
        )
    if charge < -total_z:
        raise SystemSpecError(
            f"charge {charge} would add {-charge} electrons to a molecule whose neutral form has {total_z}: "
            f"a negative ion may carry at most as many extra electrons as the neutral molecule has"
        )
    spin = n_el % 2 if spin is None else _as_int(spin, "spin")
    if abs(spin) > n_el:
        raise SystemSpecError(f"spin {spin} is impossible with {n_el} electrons (need |spin| <= n_electrons)")
    if (n_el - spin) % 2:
        raise SystemSpecError(
            f"spin {spin} has the wrong parity for {n_el} electrons (n_electrons - spin must be even)"
        )
    system = System(
        name=name,
        symbols=tuple(symbols),
        charges=tuple(charges),
        coords=tuple(coords),
        n_up=(n_el + spin) // 2,
        n_down=(n_el - spin) // 2,
        reference_energy=reference_energy,
        reference_source=reference_source,
    )
    if unit is not None:
        _warn_short_bonds(system, unit)
    return system


def _warn_short_bonds(system: System, unit: str) -> None:
    """GeometryWarning if two nuclei are closer than any bond between their elements could be.

    The limit for a pair is ``max(MIN_PLAUSIBLE_BOND, 0.6 * (r_cov(A) + r_cov(B)))`` bohr with
    pyscf's covalent radii (1.0 bohr for H-H, 1.66 bohr for C-C).
    """
    pos = system.positions
    if len(pos) < 2:
        return
    from pyscf.data.radii import COVALENT

    i, j = np.triu_indices(len(pos), k=1)
    dist = np.linalg.norm(pos[i] - pos[j], axis=-1)
    z = [_atomic_number(s) for s in system.symbols]
    rcov = np.array([COVALENT[k] if k < len(COVALENT) else 0.0 for k in z])
    limit = np.maximum(MIN_PLAUSIBLE_BOND, 0.6 * (rcov[i] + rcov[j]))
    short = np.flatnonzero(dist < limit)
    if short.size:
        import warnings

        k = short[np.argmin(dist[short])]
        a, b = int(i[k]), int(j[k])
        hint = ("if the coordinates are in bohr, pass unit='bohr' (--unit bohr)" if unit == "angstrom"
                else "if the coordinates are in angstrom, pass unit='angstrom' (--unit angstrom)")
        warnings.warn(
            f"atoms {a + 1} ({system.symbols[a]}) and {b + 1} ({system.symbols[b]}) are {dist[k]:.4g} bohr apart "
            f"(coordinates read in {unit}): implausibly short for a bond (under {limit[k]:.3g} bohr); {hint}",
            GeometryWarning, stacklevel=4)


def _from_named(entry: Mapping[str, Any], charge: int, spin: int | None) -> System:
    atoms = [(_element(a[0]), (float(a[1]), float(a[2]), float(a[3]))) for a in entry["atoms"]]
    own_charge, own_spin = int(entry.get("charge", 0)), entry.get("spin")
    ref = entry.get("reference") or {}
    new_charge = charge if charge != 0 else own_charge
    if spin is None and new_charge == own_charge:
        spin = own_spin
    system = _build(entry["name"], atoms, 1.0, new_charge, spin)
    if system.charge == own_charge and system.spin == own_spin and ref.get("energy") is not None:
        # Same electronic state as the file's entry: keep its reference energy.
        system = dataclasses.replace(
            system, reference_energy=ref["energy"], reference_source=ref.get("source")
        )
    return system


def _from_mole(mol: Any) -> System:
    try:
        if not getattr(mol, "_built", False):
            mol = mol.copy()
            mol.build()
        if mol.natm == 0:
            raise SystemSpecError("empty specification: the pyscf molecule has no atoms")
        if mol.has_ecp():
            raise SystemSpecError("pyscf molecules with effective core potentials are not supported (all-electron only)")
        symbols = [mol.atom_pure_symbol(i) for i in range(mol.natm)]
        coords = np.asarray(mol.atom_coords(unit="Bohr"), dtype=np.float64)
        n_up, n_down = (int(n) for n in mol.nelec)
    except SystemSpecError:
        raise
    except Exception as exc:
        raise SystemSpecError(f"cannot read pyscf molecule: {type(exc).__name__}: {exc}") from exc
    symbols = [_element(s, f" in atom {i + 1}") for i, s in enumerate(symbols)]
    return System(
        name="custom",
        symbols=tuple(symbols),
        charges=tuple(float(_atomic_number(s)) for s in symbols),
        coords=tuple(tuple(c) for c in coords),
        n_up=n_up,
        n_down=n_down,
    )


def _is_pyscf_mole(obj: Any) -> bool:
    if not type(obj).__module__.startswith("pyscf"):
        return False
    from pyscf import gto

    return isinstance(obj, gto.Mole)


def get_system(spec: Any, *, charge: int = 0, spin: int | None = None, unit: str | None = None) -> System:
    """Build a :class:`System` from a specification.

    Args:
        spec: one of
            * a :class:`System` (returned unchanged; ``charge``/``spin``/``unit`` ignored);
            * a molecule name from ``qmczoo/chemistry/data/molecules.yaml`` (case-insensitive,
              e.g. ``"lih"`` -> LiH; an exact element symbol such as ``"Co"`` wins
              over a case-insensitive name such as ``"CO"``). Its geometry is in
              bohr (``unit`` is ignored), its own charge and spin are used unless
              ``charge != 0`` or ``spin is not None`` is passed; the reference energy
              is kept only when neither is overridden;
            * a bare element symbol (``"Ne"``, ``"na"``): one atom at the origin,
              name = the symbol; with ``spin=None`` and ``charge=0`` its spin is the
              Hund's-rule ground-state value (e.g. 2 for O, 3 for N);
            * a path (str or ``os.PathLike``) to an xyz file: ``count``, comment line,
              then ``Sym x y z`` lines; the two header lines may be omitted. Name =
              the file's stem;
            * an inline geometry string ``"H 0 0 0; H 0 0 1.4"`` (atoms separated by
              ';' or newlines, commas allowed between coordinates). Name = "custom";
            * a list of atoms ``[("H", 0, 0, 0), ("H", (0, 0, 1.4))]``. Name = "custom";
            * a dict from :meth:`System.to_dict`;
            * a pyscf ``gto.Mole`` (coordinates in bohr, electrons from ``mol.nelec``;
              ``charge``/``spin``/``unit`` ignored). Name = "custom".
        charge: net charge, an int (total nuclear charge minus electron count).
        spin: ``n_up - n_down``; None means ``n_electrons % 2`` (lowest multiplicity)
            except as noted for named molecules and bare elements. Negative values
            (more down electrons) are allowed.
        unit: length unit of xyz/inline/list coordinates: ``"bohr"`` (``"b"``) or
            ``"angstrom"`` (``"a"``, ``"ang"``), case-insensitive; None (the default)
            means angstrom, the xyz format's and pyscf's convention. Angstrom values are
            multiplied by 1.8897261246; the returned System is always in bohr. Named
            molecules are defined in bohr whatever ``unit`` says. A distance between two
            nuclei too short for a bond in the unit in force gives a :class:`GeometryWarning`
            (e.g. ``"H 0 0 0; H 0 0 0.74", unit="bohr"``).

    Returns:
        A validated, immutable System (nuclear positions in bohr).

    Raises:
        SystemSpecError: with a one-line message naming the problem and the value,
            for an unknown element or name, an unparsable line or coordinate, an empty
            specification, a non-positive electron count, an impossible spin, nuclei
            closer than 0.1 bohr, a bad unit or a non-finite coordinate.
    """
    return read_system(spec, charge=charge, spin=spin, unit=unit)[0]


def read_system(spec: Any, *, charge: int = 0, spin: int | None = None,
                unit: str | None = None) -> tuple[System, str]:
    """:func:`get_system`, plus the unit the specification was read in (``"bohr"`` or ``"angstrom"``).

    Named molecules, elements, dicts, Systems and pyscf molecules count as read in bohr.
    """
    unit_name = canonical_unit(DEFAULT_COORDINATE_UNIT if unit is None else unit)
    scale = unit_to_bohr(unit_name)
    if isinstance(spec, System):
        return spec, "bohr"
    if _is_pyscf_mole(spec):
        return _from_mole(spec), "bohr"
    if isinstance(spec, Mapping):
        return System.from_dict(spec), "bohr"
    if isinstance(spec, os.PathLike):
        path = Path(spec)
        if not path.is_file():
            raise SystemSpecError(f"xyz file not found: {str(path)!r}")
        return _build(path.stem, _read_xyz_file(path), scale, charge, spin, unit=unit_name), unit_name
    if isinstance(spec, str):
        return _from_string(spec, charge=charge, spin=spin, scale=scale, unit=unit_name)
    if isinstance(spec, Sequence):
        return _build("custom", _parse_atom_list(spec), scale, charge, spin, unit=unit_name), unit_name
    raise SystemSpecError(
        f"cannot build a system from a {type(spec).__name__}; pass a molecule name, an element, "
        "an xyz file path, a geometry string, a list of atoms, a dict or a pyscf Mole"
    )


def _unknown_name_error(spec: str) -> SystemSpecError:
    return SystemSpecError(
        f"unknown system {spec!r}: not a known molecule, an element symbol, an existing xyz file "
        f"or a geometry like 'H 0 0 0; H 0 0 1.4'; known molecules: {', '.join(molecule_names())}"
    )


def _from_string(spec: str, *, charge: Any, spin: Any, scale: float, unit: str) -> tuple[System, str]:
    text = spec.strip()
    if not re.sub(r"[\s;,]", "", text):
        raise SystemSpecError("empty specification: no molecule name or atoms given")
    entry = _lookup_molecule(text)
    if entry is not None:
        return _from_named(entry, _as_int(charge, "charge"), spin), "bohr"
    if text.upper() in _SYMBOL_BY_UPPER:
        symbol = _SYMBOL_BY_UPPER[text.upper()]
        if spin is None and _as_int(charge, "charge") == 0:
            spin = _hund_unpaired(_atomic_number(symbol))
        return _build(symbol, [(symbol, (0.0, 0.0, 0.0))], 1.0, charge, spin), "bohr"
    single_token = not re.search(r"[\s;,]", text)
    if single_token or "\n" not in text:
        path = Path(os.path.expanduser(text))
        try:
            is_file = path.is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            return _build(path.stem, _read_xyz_file(path), scale, charge, spin, unit=unit), unit
        if single_token and (text.lower().endswith(".xyz") or os.sep in text):
            raise SystemSpecError(f"xyz file not found: {text!r}")
    if single_token or not re.search(r"\d", text):
        raise _unknown_name_error(text)
    return _build("custom", _parse_geometry_text(text, None), scale, charge, spin, unit=unit), unit
