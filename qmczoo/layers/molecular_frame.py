"""Electron coordinates in a frame that moves with the molecule (PESNet's equivariant frame).

One network over many nuclear geometries (PESNet, Gao & Günnemann, ICLR 2022) needs electron
features that do not change when the whole molecule (nuclei and electrons together) is rotated
or translated. Distances have that property but lose direction; this module keeps direction by
expressing displacements in axes built from the nuclei alone:

* origin ``c = sum_I Z_I R_I / sum_I Z_I`` (the centre of nuclear charge);
* ``C = sum_I Z_I (R_I - c)(R_I - c)^T`` (a charge-weighted second moment, bohr² units), its
  eigenvectors sorted by eigenvalue, largest first: the rows of ``axes``;
* the sign of a unique axis ``e`` is fixed by the charge-weighted third moment
  ``sum_I Z_I ((R_I - c) . e)^3``: ``e`` is turned so that it is positive.

Both are rotation-covariant, so a displacement ``d`` expressed in these axes is invariant --
*where the axes are defined*. Symmetric molecules make parts of the frame arbitrary, and the
frame must then hand on only what does not depend on the arbitrary choice. A static
:class:`FrameKind` (from :func:`frame_kind`, once per run) records which case each axis is in,
and :func:`frame_coordinates` returns ``K`` smooth components, one per group of axes:

========================  ====================================  =====================================
group of axes             component                             what it costs
========================  ====================================  =====================================
unique axis, sign fixed   ``d . e``                             nothing
by the third moment
unique axis, sign fixed   ``d . e`` with ``e = e_a x e_b``      nothing (a proper, right-handed frame:
by handedness                                                   invariant under rotations, not under
                                                                reflections -- mirror images are told
                                                                apart)
unique axis, sign         ``(d . e)^2``                         cannot tell ``+e`` from ``-e``
ambiguous
degenerate pair ``a, b``  ``(d . e_a)^2 + (d . e_b)^2``         only the distance from the unique axis
                          ``= |d|^2 - (d . e_u)^2``             remains (no angle around it)
all three degenerate      ``|d|^2``                             only the distance from ``c``
========================  ====================================  =====================================

Degeneracy: two eigenvalues are degenerate when ``|lambda_a - lambda_b| <= tol * max(lambda_max,
1)`` (``tol = 1e-4``; bohr²). A sign is ambiguous when ``|third moment| <= tol * max(lambda_max,
1)^(3/2)``. The kinds, by the grouping of the sorted axes:

* **asymmetric** (three unique axes; any molecule without a threefold or higher axis). If two of
  the axes have a sign fixed by their third moments and the third does not (a planar molecule
  of symmetry Cs: the out-of-plane moment vanishes), the third is ``e_a x e_b`` (*handedness*),
  so nothing is lost. H2O (C2v) has one signed axis (the C2 axis) and two squared ones: its
  ground state is symmetric under the C2 rotation that flips both, but the squares also drop
  the product ``(d . e_1)(d . e_2)``, which the C2 rotation keeps.
* **prolate** (the largest axis unique, a degenerate pair below it): every linear molecule
  (H2, LiH, CO2) and prolate symmetric tops. LiH: the bond axis is signed (Li and H differ),
  nothing is lost besides the angle around the bond, which a Sigma ground state does not
  depend on. H2 (homonuclear): the bond axis is squared, so ``+z`` and ``-z`` look alike; the
  ground state is gerade, nothing is lost for it, but an ungerade state cannot come from these
  features alone (distances to the nuclei still tell the two ends apart, and a network sees
  those too).
* **oblate** (a degenerate pair, the smallest axis unique): planar symmetric molecules (BF3,
  benzene; unique axis squared, since the plane is a mirror) and oblate symmetric tops (NH3:
  the C3 axis is signed).
* **spherical** (all three degenerate): one atom, tetrahedral (CH4) and octahedral (SF6)
  molecules; only ``|d|^2`` is left.

One kind serves a whole scan: :func:`frame_kind` takes, over all geometries of the run, the most
degenerate and most ambiguous treatment that any of them needs, so one static ``K`` and one
compiled function serve them all (a geometry less symmetric than the kind says loses the
information the kind drops; nothing breaks).

Limitation -- eigenvalue crossings. Axes are ordered by their eigenvalues. If two eigenvalues
cross inside a scan (a bond angle opening until the in-plane spreads swap), the sorted axes swap
there and the frame jumps: a discontinuity of the wavefunction in ``R``. Likewise a third moment
that changes sign flips an axis. :func:`frame_kind` warns (``warnings.warn``, a
:class:`FrameWarning`) when the degeneracy or sign pattern differs between the geometries of a
set, when a gap it treats as non-degenerate is small (the axes then turn quickly with ``R``),
and when it finds, by aligning consecutive geometries (Kabsch), that two axes swapped or a
signed axis flipped between them. In the last two cases it also *merges* the swapped axes into
a degenerate group (whose component is continuous through the crossing) or drops the flipped
sign, so the kind it returns is continuous over the set as given -- at the resolution of its
samples (a crossing between two geometries that are far apart can be missed; pass geometries
in scan order).

No gradient with respect to ``R`` is needed (the trainer does not differentiate by ``R``);
``eigh``'s derivative is undefined at degenerate eigenvalues, so do not ask for one there.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np

DEFAULT_TOL = 1e-4
"""Relative tolerance for degenerate eigenvalues and vanishing third moments (see the module docstring)."""

NEAR_DEGENERATE = 1e-2
"""A non-degenerate relative gap below this gets a warning: the axes turn quickly with ``R``."""

SIGNS = ("moment", "handedness", "none")
"""How a unique axis's sign is fixed: its third moment, the cross product of the other two, not at all."""


class FrameWarning(UserWarning):
    """The frame of a set of geometries is more degenerate than some of them, or may jump."""


@dataclasses.dataclass(frozen=True)
class FrameKind:
    """What the frame of a run's geometries can hand on (static, hashable).

    Attributes:
      groups: the sorted axes (0 = largest eigenvalue) grouped into unique axes ``(k,)``,
        degenerate pairs ``(a, a + 1)`` and the spherical group ``(0, 1, 2)``; contiguous and in
        order, covering ``0, 1, 2``.
      signs: per group, how a unique axis's sign is fixed (one of :data:`SIGNS`); ``"none"`` for
        pairs and the spherical group.

    ``K = n_components = len(groups)``: asymmetric 3, prolate 2, oblate 2, spherical 1.
    """

    groups: tuple[tuple[int, ...], ...]
    signs: tuple[str, ...]

    def __post_init__(self):
        flat = tuple(k for g in self.groups for k in g)
        if flat != (0, 1, 2) or any(tuple(range(g[0], g[0] + len(g))) != g for g in self.groups):
            raise ValueError(f"groups must split (0, 1, 2) into contiguous runs, got {self.groups}")
        if len(self.signs) != len(self.groups) or any(s not in SIGNS for s in self.signs):
            raise ValueError(f"signs must give one of {SIGNS} per group, got {self.signs}")
        if any(len(g) > 1 and s != "none" for g, s in zip(self.groups, self.signs)):
            raise ValueError("a degenerate group has no sign")
        if "handedness" in self.signs and self.signs.count("moment") != 2:
            raise ValueError("a handedness sign needs the two other axes signed by their moments")

    @property
    def name(self) -> str:
        """``"asymmetric"``, ``"prolate"``, ``"oblate"`` or ``"spherical"``."""
        sizes = tuple(len(g) for g in self.groups)
        return {(1, 1, 1): "asymmetric", (1, 2): "prolate", (2, 1): "oblate", (3,): "spherical"}[sizes]

    @property
    def n_components(self) -> int:
        """``K``, the number of components :func:`frame_coordinates` returns."""
        return len(self.groups)

    @property
    def components(self) -> tuple[str, ...]:
        """What each component is, e.g. ``("d.e0", "(d.e1)^2", "(d.e1)^2+(d.e2)^2", "|d|^2")``."""
        out = []
        for g, s in zip(self.groups, self.signs):
            if len(g) == 3:
                out.append("|d|^2")
            elif len(g) == 2:
                out.append(f"(d.e{g[0]})^2+(d.e{g[1]})^2")
            else:
                out.append(f"d.e{g[0]}" if s != "none" else f"(d.e{g[0]})^2")
        return tuple(out)


# ----------------------------------------------------------------------------- numpy analysis


def _frame_np(R: np.ndarray, Z: np.ndarray):
    """``(origin, eigenvalues (descending), axes rows, third moments)`` of one geometry."""
    c = Z @ R / Z.sum()
    X = R - c
    lam, V = np.linalg.eigh((X.T * Z) @ X)
    lam, axes = lam[::-1], V[:, ::-1].T
    moments = np.einsum("i,ik->k", Z, (X @ axes.T) ** 3)
    axes = axes * np.where(moments >= 0, 1.0, -1.0)[:, None]
    return c, lam, axes, np.abs(moments)


def _kabsch(P: np.ndarray, Q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The proper rotation ``U`` minimising ``sum_I w_I |U q_I - p_I|^2`` (``P``, ``Q`` centred)."""
    H = (Q.T * w) @ P
    u, _, vt = np.linalg.svd(H)
    dfix = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, dfix]) @ u.T


def _groups_from_gaps(deg01: bool, deg12: bool) -> tuple[tuple[int, ...], ...]:
    if deg01 and deg12:
        return ((0, 1, 2),)
    if deg01:
        return ((0, 1), (2,))
    if deg12:
        return ((0,), (1, 2))
    return ((0,), (1,), (2,))


def frame_kind(geometries, charges, tol: float = DEFAULT_TOL) -> FrameKind:
    """The static frame kind that serves every geometry of a run (see the module docstring).

    Args:
      geometries: nuclear positions ``[G, M, 3]`` (or one geometry ``[M, 3]``), bohr; for a scan,
        in scan order (consecutive geometries are compared to catch eigenvalue crossings).
      charges: nuclear charges ``[M]``.
      tol: relative tolerance for degenerate eigenvalues and vanishing third moments.

    Returns:
      The most degenerate and most sign-ambiguous :class:`FrameKind` any geometry needs, with
      axes that swap or flip between consecutive geometries merged or left unsigned. Warns
      (:class:`FrameWarning`) when the pattern differs between geometries, when a gap treated
      as non-degenerate is small, and when it merged or unsigned axes because of a crossing.
    """
    geoms = np.asarray(geometries, dtype=np.float64)
    if geoms.ndim == 2:
        geoms = geoms[None]
    Z = np.asarray(charges, dtype=np.float64).reshape(-1)
    if geoms.ndim != 3 or geoms.shape[-1] != 3 or geoms.shape[1] != Z.size or geoms.shape[0] == 0:
        raise ValueError(f"geometries must be [G, M, 3] with M = {Z.size} charges, got shape {geoms.shape}")
    if np.any(Z <= 0):
        raise ValueError(f"charges must be positive, got {Z.tolist()}")

    frames = [_frame_np(R, Z) for R in geoms]
    deg01, deg12, signed, patterns = np.zeros(len(geoms), bool), np.zeros(len(geoms), bool), [], []
    near = []
    for g, (_, lam, _, moments) in enumerate(frames):
        scale = max(lam[0], 1.0)
        gaps = np.array([lam[0] - lam[1], lam[1] - lam[2]]) / scale
        deg01[g], deg12[g] = gaps <= tol
        groups = _groups_from_gaps(deg01[g], deg12[g])
        s = moments > tol * scale**1.5
        signed.append(s)
        patterns.append((groups, tuple(bool(s[grp[0]]) for grp in groups if len(grp) == 1)))
        near += [(g, k) for k in range(2) if tol < gaps[k] < NEAR_DEGENERATE]
    merge = [bool(deg01.any()), bool(deg12.any())]
    sign_ok = np.all(np.stack(signed), axis=0)  # per sorted axis: a definite moment in every geometry

    if len(set(patterns)) > 1:
        kinds = sorted({_describe(p) for p in patterns})
        warnings.warn(f"the geometries' frames differ in symmetry ({'; '.join(kinds)}): all get the most degenerate "
                      "and sign-ambiguous treatment, and the less symmetric ones lose what it drops", FrameWarning,
                      stacklevel=2)
    if near:
        g, k = near[0]
        warnings.warn(f"eigenvalues {k} and {k + 1} of the nuclear second moment are nearly degenerate (relative "
                      f"gap below {NEAR_DEGENERATE:g}) in {len(near)} case(s), first in geometry {g}: the frame axes "
                      "turn quickly with R there and may swap nearby", FrameWarning, stacklevel=2)

    # consecutive geometries, aligned: axes that swapped (an eigenvalue crossing) are merged into
    # one degenerate group, signed axes that flipped (a third moment changing sign) lose the sign
    flipped = np.zeros(3, bool)
    crossed = []
    for g in range(1, len(geoms)):
        (c0, _, a0, _), (c1, _, a1, _) = frames[g - 1], frames[g]
        U = _kabsch(geoms[g - 1] - c0, geoms[g] - c1, Z)
        overlap = a0 @ (a1 @ U.T).T  # [k, j] = e_k(g-1) . U e_j(g)
        while True:
            groups = _groups_from_gaps(*merge)
            changed = False
            for i, grp in enumerate(groups):
                weight = np.zeros(len(groups))
                for j, other in enumerate(groups):
                    weight[j] = np.sum(overlap[np.ix_(grp, other)] ** 2) / len(grp)
                best = int(np.argmax(weight))
                if best != i and weight[best] > weight[i]:
                    lo, hi = sorted((min(grp + groups[best]), max(grp + groups[best])))
                    for gap in range(lo, hi):
                        if not merge[gap]:
                            merge[gap] = changed = True
                    crossed.append(g)
            if not changed:
                break
        for grp in groups:
            if len(grp) == 1 and overlap[grp[0], grp[0]] < 0:
                flipped[grp[0]] = True
    if crossed:
        warnings.warn(f"the ordering of the frame axes changes between geometries {crossed[0] - 1} and {crossed[0]} "
                      "(an eigenvalue crossing: the frame would jump there); the swapped axes are treated as one "
                      "degenerate group", FrameWarning, stacklevel=2)
    if np.any(flipped & sign_ok):
        k = int(np.argmax(flipped & sign_ok))
        warnings.warn(f"the third moment along frame axis {k} changes sign within the set (the axis would flip): "
                      "its sign is treated as ambiguous", FrameWarning, stacklevel=2)
    sign_ok = sign_ok & ~flipped

    groups = _groups_from_gaps(*merge)
    signs = [("moment" if sign_ok[grp[0]] else "none") if len(grp) == 1 else "none" for grp in groups]
    if len(groups) == 3 and signs.count("moment") == 2:
        signs[signs.index("none")] = "handedness"
    return FrameKind(groups=groups, signs=tuple(signs))


def _describe(pattern) -> str:
    """``"asymmetric, signed: e0, e1"`` for a (groups, signed unique axes) pattern."""
    groups, signed = pattern
    name = FrameKind(groups=groups, signs=tuple("none" for _ in groups)).name
    axes = [f"e{g[0]}" for g, s in zip((g for g in groups if len(g) == 1), signed) if s]
    return f"{name}, signed: {', '.join(axes) or 'none'}"


# ----------------------------------------------------------------------------- jax frame


def molecular_frame(R: jnp.ndarray, charges, kind: FrameKind) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The frame of one geometry: ``(origin [3], axes [3, 3])`` (rows = axes), jittable.

    Args:
      R: nuclear positions ``[M, 3]``.
      charges: nuclear charges ``[M]`` (a tuple, or an array, also a traced one).
      kind: from :func:`frame_kind` for the run's geometries.

    Returns:
      The centre of nuclear charge and the eigenvectors of the charge-weighted second moment,
      largest eigenvalue first, each unique axis turned as ``kind`` says (third moment positive,
      or ``e_a x e_b`` for a handedness axis; left as ``eigh`` returns it for an ambiguous sign);
      the axes within a degenerate group are an arbitrary orthonormal basis of it, which
      :func:`frame_coordinates` does not depend on.
    """
    Z = jnp.asarray(charges, dtype=R.dtype)
    origin = Z @ R / jnp.sum(Z)
    X = R - origin
    _, V = jnp.linalg.eigh((X.T * Z) @ X)
    axes = V[:, ::-1].T
    for grp, sign in zip(kind.groups, kind.signs):
        if sign == "moment":
            k = grp[0]
            moment = jnp.sum(Z * (X @ axes[k]) ** 3)
            axes = axes.at[k].multiply(jnp.where(moment >= 0, 1.0, -1.0).astype(R.dtype))
    for grp, sign in zip(kind.groups, kind.signs):
        if sign == "handedness":  # e_k = e_{k+1} x e_{k+2} (cyclic): a right-handed frame
            k = grp[0]
            axes = axes.at[k].set(jnp.cross(axes[(k + 1) % 3], axes[(k + 2) % 3]))
    return origin, axes


def frame_coordinates(d: jnp.ndarray, axes: jnp.ndarray, kind: FrameKind) -> jnp.ndarray:
    """Displacements ``d`` ``[..., 3]`` in the frame, invariant to exactly what ``kind`` leaves open.

    Returns ``[..., K]`` (``K = kind.n_components``), one component per group of
    ``kind.groups``: ``d . e`` for a signed unique axis, ``(d . e)^2`` for a sign-ambiguous one,
    ``(d . e_a)^2 + (d . e_b)^2`` for a degenerate pair (computed as ``|d|^2 - (d . e_u)^2``,
    which needs only the well-defined unique axis), ``|d|^2`` for the spherical group. All are
    polynomials in ``d``, smooth everywhere.
    """
    proj = jnp.einsum("...i,ki->...k", d, axes)
    norm2 = jnp.sum(jnp.square(d), axis=-1)
    out = []
    for grp, sign in zip(kind.groups, kind.signs):
        if len(grp) == 3:
            out.append(norm2)
        elif len(grp) == 2:
            (u,) = (k for k in range(3) if k not in grp)
            out.append(norm2 - jnp.square(proj[..., u]))
        else:
            x = proj[..., grp[0]]
            out.append(x if sign != "none" else jnp.square(x))
    return jnp.stack(out, axis=-1)
