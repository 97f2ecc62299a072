"""Reference potential-energy curves (``chemistry/data/pes.yaml``): the exact H2 curve and its lookups."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from qmczoo.chemistry.system import System
from qmczoo.errors import ConfigError

if TYPE_CHECKING:
    from qmczoo.chemistry.geometry_set import GeometrySet


MATCH_TOLERANCE = 1e-6
"""Bohr: a bond length this close to a tabulated one counts as that point."""
_PES_FILE = Path(__file__).resolve().parent / "data" / "pes.yaml"


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
