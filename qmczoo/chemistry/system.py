"""The :class:`System`: clamped nuclei (symbols, charges, positions in bohr) and electron counts.

Built and validated by :func:`qmczoo.chemistry.systems.get_system` from whatever a user types;
this module holds the immutable value itself, its derived quantities, the placement of electrons
on atoms (for initial walkers) and its pyscf ``Mole``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from qmczoo.chemistry.elements import _atomic_number, _element, _hund_unpaired
from qmczoo.errors import SystemSpecError

if TYPE_CHECKING:
    from qmczoo.chemistry.ecp import EffectiveCorePotential

MIN_NUCLEAR_DISTANCE = 0.1
"""Smallest allowed distance between two nuclei, in bohr."""


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
        ecp: an :class:`~qmczoo.chemistry.ecp.EffectiveCorePotential` that replaces the core
            electrons of some elements, or None (all-electron). With one, ``charges`` stay the
            atomic numbers Z (what a network uses to tell elements apart), ``n_up``/``n_down``
            count valence electrons only, and the Hamiltonian uses ``effective_charges``
            (Z - n_core) plus the ECP's own terms.

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
    ecp: "EffectiveCorePotential | None" = None

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
        if self.ecp is not None:
            _ecp_module().check_system(self)

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
    def pseudo_nuclei(self) -> tuple[bool, ...]:
        """Per nucleus: whether an ECP replaces its core (a pseudo-nucleus), length M."""
        if self.ecp is None:
            return (False,) * len(self.symbols)
        return tuple(self.ecp.for_symbol(s) is not None for s in self.symbols)

    @property
    def core_electrons(self) -> tuple[int, ...]:
        """Core electrons the ECP removes at each nucleus (0 where none), length M."""
        if self.ecp is None:
            return (0,) * len(self.symbols)
        return tuple(0 if self.ecp.for_symbol(s) is None else self.ecp.for_symbol(s).n_core for s in self.symbols)

    @property
    def effective_charges(self) -> np.ndarray:
        """Charges the valence electrons see, ``Z - n_core`` per nucleus, a new float64 array [M]
        (equal to :attr:`atomic_charges` without an ECP)."""
        return self.atomic_charges - np.asarray(self.core_electrons, dtype=np.float64)

    @property
    def cusp_charges(self) -> np.ndarray:
        """Kato's electron–nuclear cusp of each nucleus, float64 [M]: ``Z`` at an all-electron
        nucleus, 0 at a pseudo-nucleus (an ECP's potential is finite there: no cusp)."""
        return np.where(self.pseudo_nuclei, 0.0, self.atomic_charges)

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
        """Net molecular charge, ``round(sum Z_eff) - n_electrons`` (``Z_eff = Z`` without an ECP)."""
        return int(round(sum(self.charges))) - sum(self.core_electrons) - self.n_electrons

    @property
    def spin(self) -> int:
        """``n_up - n_down`` (pyscf's ``mol.spin``; 2S for the high-spin component)."""
        return self.n_up - self.n_down

    @property
    def nuclear_repulsion(self) -> float:
        """Nuclear repulsion energy ``sum_{I<J} Z_I Z_J / |R_I - R_J|`` in hartree (0 for one atom),
        with the effective charges of pseudo-nuclei."""
        pos = self.positions
        z = self.effective_charges
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

        With an ECP, an atom starts with its valence electrons ``Z - n_core``, with the unpaired
        electrons of the neutral atom (its core is closed).
        """
        m = self.n_nuclei
        zs = [max(0, int(round(z)) - core) for z, core in zip(self.charges, self.core_electrons)]
        up, down = [], []
        for z, z_atom in zip(zs, self.charges):
            u = min(_hund_unpaired(max(0, int(round(z_atom)))), z)
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

    def electron_sites(self) -> np.ndarray:
        """``[N]`` ints: the nucleus each electron is assigned to by :meth:`atom_electron_counts`,
        spin-up electrons first (the order of the ansatz contract)."""
        counts = self.atom_electron_counts()
        return np.array([a for spin in (0, 1) for a, c in enumerate(counts) for _ in range(c[spin])], dtype=int)

    def to_pyscf(self, basis: Any = "ccpvdz") -> Any:
        """Build a pyscf ``gto.Mole`` of this system.

        Args:
            basis: any basis pyscf accepts (name or dict), default ``"ccpvdz"``. With an ECP, a
                basis name is replaced on the pseudo-atoms by the basis made for the ECP where
                pyscf has one (``ccpvdz`` -> ``ccecp-cc-pVDZ``, :func:`~qmczoo.chemistry.ecp.basis_for`).

        Returns:
            A built ``pyscf.gto.Mole`` with coordinates in bohr (``unit="Bohr"``),
            ``charge = self.charge``, ``spin = n_up - n_down``, ``verbose=0`` and the ECP, if any.

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
        extra = {}
        if self.ecp is not None:
            from qmczoo.chemistry.ecp import basis_for

            basis = basis_for(self, basis)
            extra["ecp"] = self.ecp.to_pyscf()
        try:
            return gto.M(
                atom=atoms, unit="Bohr", basis=basis, charge=self.charge, spin=self.spin, verbose=0, **extra
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
        if self.ecp is not None:
            core = sum(self.core_electrons)
            text += f", ECP {self.ecp.name} on {', '.join(self.ecp.symbols)} ({core} core electrons removed)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (str, int, float, list, None only) for config files.

        Keys: name, symbols (list[str]), charges (list[float]), coords
        (list of [x, y, z] in bohr), n_up, n_down, reference_energy,
        reference_source, and ``ecp`` (the potential's data) only for a system with an
        ECP. Inverse of :meth:`from_dict`.
        """
        out = {
            "name": self.name,
            "symbols": list(self.symbols),
            "charges": [float(z) for z in self.charges],
            "coords": [[float(v) for v in c] for c in self.coords],
            "n_up": int(self.n_up),
            "n_down": int(self.n_down),
            "reference_energy": self.reference_energy,
            "reference_source": self.reference_source,
        }
        if self.ecp is not None:
            out["ecp"] = self.ecp.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "System":
        """Rebuild a System from :meth:`to_dict` output.

        Required keys: symbols, coords (bohr), n_up, n_down. Optional: name
        (default ``"custom"``), charges (default: the elements' atomic numbers),
        reference_energy, reference_source, ecp. Unknown keys raise SystemSpecError.
        """
        if not isinstance(d, Mapping):
            raise SystemSpecError(f"a system dictionary must be a mapping, got {type(d).__name__}")
        allowed = {"name", "symbols", "charges", "coords", "n_up", "n_down", "reference_energy", "reference_source",
                   "ecp"}
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
            ecp=None if d.get("ecp") is None else _ecp_module().EffectiveCorePotential.from_dict(d["ecp"]),
        )


def _ecp_module():
    from qmczoo.chemistry import ecp

    return ecp


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
