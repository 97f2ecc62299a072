"""The static frame kind of a run's geometries (the analysis behind :mod:`qmczoo.layers.molecular_frame`).

:func:`frame_kind` looks at every geometry a PES ansatz will serve (numpy, once per run) and
returns one :class:`~qmczoo.layers.molecular_frame.FrameKind`: which axes are degenerate, how
each is signed or resolved, and which nuclei are designated.

One kind serves a whole scan: :func:`frame_kind` takes, over all geometries of the run, the most
degenerate treatment any of them needs, so one static ``K`` and one compiled function serve them
all (a geometry less symmetric than the kind says loses the information the kind drops; nothing
breaks). Limitation -- eigenvalue crossings: axes are ordered by their eigenvalues, so if two
cross inside a scan (a bond angle opening until the in-plane spreads swap) the sorted axes swap
there and the frame jumps; likewise a third moment, or a designated nucleus's projection, that
changes sign flips an axis. :func:`frame_kind` warns (:class:`FrameWarning`) when the degeneracy
or sign pattern differs between the geometries of a set, when a gap it treats as non-degenerate
is small, and when it finds, by aligning consecutive geometries (Kabsch), that two axes swapped
or a moment-signed axis flipped between them. In those cases it *merges* the swapped axes into a
degenerate group (resolved, where possible, by a designated nucleus, whose direction moves
continuously through the crossing) or signs the flipped axis another way, so the kind it returns
is continuous over the set as given -- at the resolution of its samples (pass geometries in
scan order).

The designated nuclei (``designate=True``) are chosen here: for each axis (plane, centre) that
the moments leave open, the nucleus whose smallest distance from it over the set is largest (the
lowest index on ties), kept only if that distance exceeds
:data:`~qmczoo.layers.molecular_frame.NUCLEUS_TOL` in every geometry and its direction does not
turn over between consecutive, aligned geometries.
"""

from __future__ import annotations

import warnings

import numpy as np

from qmczoo.layers.molecular_frame import (
    DEFAULT_TOL,
    NEAR_DEGENERATE,
    NUCLEUS_TOL,
    FrameKind,
    FrameWarning,
)


def _frame_np(R: np.ndarray, Z: np.ndarray):
    """``(origin, eigenvalues (descending), axes rows (moment-signed), |third moments|)`` of one geometry."""
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


class _Designation:
    """Picks designated nuclei over the geometries of a set (see :func:`frame_kind`).

    Every candidate vector (a nucleus's projection on an axis, its component in a plane or its
    position from the centre) must stay longer than :data:`NUCLEUS_TOL` in every geometry and
    must not turn over between consecutive geometries once they are aligned; of the candidates,
    the one whose shortest length is largest wins (the lowest index on ties).
    """

    def __init__(self, X: np.ndarray, axes: np.ndarray, rotations: list):
        self.X, self.axes, self.U = X, axes, rotations  # [G, M, 3], [G, 3 axes, 3], U_g aligns g onto g-1

    def _pick(self, vectors: np.ndarray, exclude=()) -> int | None:
        """``vectors`` ``[G, M, 3]``: the candidate vector of each nucleus in each geometry."""
        length = np.linalg.norm(vectors, axis=-1)  # [G, M]
        best, best_length = None, NUCLEUS_TOL
        for j in range(vectors.shape[1]):
            if j in exclude or np.min(length[:, j]) <= best_length + 1e-8:  # ties (to rounding): the lowest index
                continue
            unit = vectors[:, j] / length[:, j, None]
            if all(unit[g - 1] @ (self.U[g] @ unit[g]) > 0 for g in range(1, len(unit))):
                best, best_length = j, float(np.min(length[:, j]))
        return best

    def on_axis(self, k: int) -> int | None:
        """A nucleus that signs unique axis ``k``: its projection ``(X_J . e_k) e_k``."""
        e = self.axes[:, k]  # [G, 3] (moment-signed or arbitrary: only the projection's direction counts)
        return self._pick(np.einsum("gm,gi->gmi", np.einsum("gmi,gi->gm", self.X, e), e))

    def in_plane(self, normal: int, ref: int | None = None) -> int | None:
        """A nucleus off the axis ``normal``: its component in the perpendicular plane (with
        ``ref``: also perpendicular to ``ref``'s component, for a second axis)."""
        u = self.axes[:, normal]
        q = self.X - np.einsum("gm,gi->gmi", np.einsum("gmi,gi->gm", self.X, u), u)
        return self._perpendicular(q, ref)

    def off_centre(self, ref: int | None = None) -> int | None:
        """A nucleus off the centre (with ``ref``: its component perpendicular to ``ref``'s direction)."""
        return self._perpendicular(self.X, ref)

    def _perpendicular(self, q: np.ndarray, ref: int | None) -> int | None:
        if ref is None:
            return self._pick(q)
        e = q[:, ref] / np.linalg.norm(q[:, ref], axis=-1, keepdims=True)
        return self._pick(q - np.einsum("gm,gi->gmi", np.einsum("gmi,gi->gm", q, e), e), exclude=(ref,))


def frame_kind(geometries, charges, tol: float = DEFAULT_TOL, designate: bool = True) -> FrameKind:
    """The static frame kind that serves every geometry of a run (see the module docstring).

    Args:
      geometries: nuclear positions ``[G, M, 3]`` (or one geometry ``[M, 3]``), bohr; for a scan,
        in scan order (consecutive geometries are compared to catch eigenvalue crossings).
      charges: nuclear charges ``[M]``.
      tol: relative tolerance for degenerate eigenvalues and vanishing third moments.
      designate: sign and resolve what the moments leave open with designated nuclei (the
        default). ``False``: no designated nuclei; the frame is then invariant under permuting
        identical nuclei, and leaves those axes squared or unresolved.

    Returns:
      The most degenerate :class:`FrameKind` any geometry needs, signed as far as the moments
      (and, with ``designate``, designated nuclei) allow over the whole set, with axes that swap
      between consecutive geometries merged. Warns (:class:`FrameWarning`) when the pattern
      differs between geometries, when a gap treated as non-degenerate is small, and when it
      merged axes or dropped a moment sign because of a crossing or a flip.
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
                      "treatment, and the less symmetric ones lose what it drops", FrameWarning, stacklevel=2)
    if near:
        g, k = near[0]
        warnings.warn(f"eigenvalues {k} and {k + 1} of the nuclear second moment are nearly degenerate (relative "
                      f"gap below {NEAR_DEGENERATE:g}) in {len(near)} case(s), first in geometry {g}: the frame axes "
                      "turn quickly with R there and may swap nearby", FrameWarning, stacklevel=2)

    # consecutive geometries, aligned: axes that swapped (an eigenvalue crossing) are merged into
    # one degenerate group, moment-signed axes that flipped (a third moment changing sign) lose
    # the moment as their sign
    flipped = np.zeros(3, bool)
    crossed = []
    rotations = [np.eye(3)]
    for g in range(1, len(geoms)):
        (c0, _, a0, _), (c1, _, a1, _) = frames[g - 1], frames[g]
        U = _kabsch(geoms[g - 1] - c0, geoms[g] - c1, Z)
        rotations.append(U)
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
                      "it no longer signs that axis", FrameWarning, stacklevel=2)
    sign_ok = sign_ok & ~flipped

    groups = _groups_from_gaps(*merge)
    X = np.stack([R - f[0] for R, f in zip(geoms, frames)])
    pick = _Designation(X, np.stack([f[2] for f in frames]), rotations) if designate else None
    signs, nuclei = _assign(groups, sign_ok, pick)
    return FrameKind(groups=groups, signs=tuple(signs), nuclei=tuple(nuclei))


def _assign(groups, sign_ok, pick: _Designation | None):
    """Per group, the rule and designated nuclei (the table of the module docstring)."""
    signs = ["none"] * len(groups)
    nuclei: list[tuple[int, ...]] = [()] * len(groups)
    unique = {g[0]: i for i, g in enumerate(groups) if len(g) == 1}
    for k, i in unique.items():
        if sign_ok[k]:
            signs[i] = "moment"
    if len(groups) == 3:  # asymmetric: two signed axes sign the third by handedness
        if signs.count("moment") < 2 and pick is not None:
            for k, i in unique.items():
                if signs[i] == "none" and signs.count("none") >= 2:
                    j = pick.on_axis(k)
                    if j is not None:
                        signs[i], nuclei[i] = "nucleus", (j,)
        if signs.count("none") == 1:
            signs[signs.index("none")] = "handedness"
    elif len(groups) == 2 and pick is not None:  # prolate / oblate: a unique axis u and a pair
        ip = next(i for i, g in enumerate(groups) if len(g) == 2)
        u = 3 - sum(groups[ip])
        iu = unique[u]
        if signs[iu] == "none":
            j = pick.on_axis(u)
            if j is not None:
                signs[iu], nuclei[iu] = "nucleus", (j,)
        j = pick.in_plane(u)
        if j is not None:
            if signs[iu] != "none":
                signs[ip], nuclei[ip] = "nucleus", (j,)
            else:
                k = pick.in_plane(u, ref=j)
                if k is not None:
                    signs[ip], nuclei[ip], signs[iu] = "nucleus", (j, k), "handedness"
    elif len(groups) == 1 and pick is not None:  # spherical
        j = pick.off_centre()
        k = None if j is None else pick.off_centre(ref=j)
        if k is not None:
            signs[0], nuclei[0] = "nucleus", (j, k)
    return signs, nuclei


def _describe(pattern) -> str:
    """``"asymmetric, signed by moments: e0, e1"`` for a (groups, moment-signed unique axes) pattern."""
    groups, signed = pattern
    name = FrameKind(groups=groups, signs=tuple("none" for _ in groups)).name
    axes = [f"e{g[0]}" for g, s in zip((g for g in groups if len(g) == 1), signed) if s]
    return f"{name}, signed by moments: {', '.join(axes) or 'none'}"
