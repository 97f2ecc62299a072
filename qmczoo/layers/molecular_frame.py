"""Electron coordinates in a frame that moves with the molecule (PESNet's equivariant frame).

One network over many nuclear geometries (PESNet, Gao & Günnemann, ICLR 2022) needs electron
features that do not change when the whole molecule (nuclei and electrons together) is rotated
or translated. Distances have that property but lose direction; this module keeps direction by
expressing displacements in axes built from the nuclei alone:

* origin ``c = sum_I Z_I R_I / sum_I Z_I`` (the centre of nuclear charge);
* ``C = sum_I Z_I (R_I - c)(R_I - c)^T`` (a charge-weighted second moment, bohr² units), its
  eigenvectors sorted by eigenvalue, largest first: the rows of ``axes``.

Every rule below is a function of the (labelled) nuclear positions that turns with them, so the
axes are *covariant*: rotating the nuclei by ``Q`` turns every axis by ``Q``, and a displacement
expressed in the axes is exactly invariant under rotating the whole system, for every molecule
(symmetric ones included). The frame is *signed* wherever the nuclei allow: ψ can then tell
mirror images of the electrons apart and depend on every angle the molecule does not make
arbitrary.

Signing and resolving the axes
------------------------------

A static :class:`FrameKind` (from :func:`~qmczoo.layers.frame_kind.frame_kind`, once per run)
records, per group of axes, the rule that fixes it:

=====================  ==========================================================  ==============================
group                  rule (first that applies)                                   components
=====================  ==========================================================  ==============================
unique axis ``e``      ``moment``: the charge-weighted third moment                ``d . e``
                       ``sum_I Z_I ((R_I - c) . e)^3`` is made positive
                       ``handedness``: ``e = e_a x e_b`` from the two others       ``d . e``
                       (when both are signed by their moments; when one is and
                       a designated nucleus signs the other; when a resolved
                       pair fixes the plane's orientation)
                       ``nucleus``: a designated nucleus ``J`` is put on the       ``d . e``
                       positive side, ``(R_J - c) . e > 0``
                       ``none``: nothing fixes it (fallback)                       ``(d . e)^2``
degenerate pair        ``nucleus``: ``e_a`` points to the projection of a          ``d . e_a``, ``d . e_b``
``a, b`` (unique       designated nucleus ``J`` onto the plane, ``e_b = u x e_a``
axis ``u``)            (``u`` signed), or, with ``u`` unsigned, ``e_b`` from a
                       second nucleus ``K`` (Gram-Schmidt) and ``u = e_a x e_b``
                       ``none``: no nucleus off the axis (every linear molecule)   ``|d|^2 - (d . u)^2``
all three degenerate   ``nucleus``: ``e_0`` towards a designated nucleus ``J``,    ``d . e_0``, ``d . e_1``,
                       ``e_1`` from a second ``K`` (Gram-Schmidt),                 ``d . e_2``
                       ``e_2 = e_0 x e_1``
                       ``none``: one atom (no nucleus off the centre)              ``|d|^2``
=====================  ==========================================================  ==============================

A designated nucleus is the one whose smallest distance from the axis (plane, centre) over the
run's geometries is largest (the lowest index on ties), and must stay more than
:data:`NUCLEUS_TOL` away from it in every geometry. Degeneracy: two eigenvalues are degenerate
when ``|lambda_a - lambda_b| <= tol * max(lambda_max, 1)`` (``tol = 1e-4``; bohr²); a third
moment fixes a sign when ``|moment| > tol * max(lambda_max, 1)^(3/2)``.

**Linear molecules.** No nucleus lies off the axis, so nothing the nuclei offer can pick a
direction in the perpendicular plane that turns with the molecule (a rotation about the axis
leaves every nucleus in place but would have to turn that direction). The pair stays unresolved
(the radial component ``rho^2``), and the frame hands on, for every pair of electrons, the
pseudoscalar ``t_ij = u . ((r_i - c) x (r_j - c))`` (:func:`frame_chirality`; ``u`` signed) as an
extra pair input. Together with ``rho_i``, ``rho_j`` and ``|rho_i - rho_j|`` it fixes the angle
between the two electrons about the axis *with its sense*: ψ depends on the electrons' relative
angles about the axis and changes under a reflection through a plane containing the axis, so
Σ⁻ states (O2's ³Σg⁻ ground state) are within reach. It cannot depend on the absolute angle:
an exactly rotation-invariant ψ of a linear molecule is invariant under rotating the electrons
about the axis (Λ = 0: Σ states only; Π and Δ states are out of reach). PESNet's reference
(n-gao/pesnet, ``find_axes``) instead takes whatever pair of perpendicular axes ``eigh``
returns, which allows any Λ but does not turn with the molecule.

**Atoms.** One nucleus has no frame: only ``|d|^2`` is left, and ψ is invariant under every
rotation *and inversion* of the electrons about the nucleus (an even ``L = 0`` state, ``S^e``).

What it costs: symmetric molecules
----------------------------------

Where the moments leave a sign or a pair open (H2, H2O, NH3, BF3, CH4 ...), the frame designates
a nucleus, which tells identical nuclei apart. Rotating the whole system is still an exact
invariance, but *relabelling* identical nuclei that the designation tells apart is not: for a
symmetric geometry, swapping them gives the same nuclei turned by a symmetry rotation ``g`` of
the molecule, and ``psi(r; P R) = psi(g^-1 r; R)``, which differs from ``psi(r; R)`` unless the
network learns the symmetry. That is the price of a covariant, signed frame; it cannot be
avoided (a frame invariant under the relabelling makes ψ invariant under every proper symmetry
rotation of the molecule: for a homonuclear diatomic, even under the perpendicular C2, which
excludes Σg⁻ and Σu⁺). PESNet's reference has the same property. ``designate=False`` (the
``pesnet`` option ``frame: symmetric``) keeps the old behaviour instead: no designated nuclei,
exact invariance under permuting identical nuclei, and ψ restricted to states invariant under
the molecule's proper symmetry rotations. With ``designate=True`` the invariance under
permuting identical nuclei still holds exactly for every frame kind that designates no nucleus
(:attr:`FrameKind.designated` empty), e.g. for every geometry whose moments fix two axes; a
nucleus is designated only where the moments leave an axis open, which, but for accidents,
happens only for symmetric geometries.

Scans
-----

One kind serves a whole scan: :func:`qmczoo.layers.frame_kind.frame_kind` takes, over all
geometries of the run, the most degenerate treatment any of them needs and the designated nuclei
that stay valid in all of them, so one static ``K`` and one compiled function serve them all
(that module says how it handles eigenvalue crossings and flips).

No gradient with respect to ``R`` is needed (the trainer does not differentiate by ``R``);
``eigh``'s derivative is undefined at degenerate eigenvalues, so do not ask for one there.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

DEFAULT_TOL = 1e-4
"""Relative tolerance for degenerate eigenvalues and vanishing third moments (see the module docstring)."""

NEAR_DEGENERATE = 1e-2
"""A non-degenerate relative gap below this gets a warning: the axes turn quickly with ``R``."""

NUCLEUS_TOL = 1e-3
"""Bohr: a designated nucleus stays at least this far from its axis, plane or centre in every geometry."""

SIGNS = ("moment", "handedness", "nucleus", "none")
"""How a group is fixed: third moment, cross product of the other two axes, designated nuclei, not at all."""


class FrameWarning(UserWarning):
    """The frame of a set of geometries is more degenerate than some of them, or may jump."""


@dataclasses.dataclass(frozen=True)
class FrameKind:
    """What the frame of a run's geometries can hand on (static, hashable).

    Attributes:
      groups: the sorted axes (0 = largest eigenvalue) grouped into unique axes ``(k,)``,
        degenerate pairs ``(a, a + 1)`` and the spherical group ``(0, 1, 2)``; contiguous and in
        order, covering ``0, 1, 2``.
      signs: per group, the rule that fixes it (one of :data:`SIGNS`; see the module docstring).
        A degenerate group is ``"nucleus"`` (resolved into signed axes) or ``"none"``.
      nuclei: per group, the designated nuclei of a ``"nucleus"`` rule: ``(J,)`` for a unique
        axis, ``(J,)`` or ``(J, K)`` for a pair (``(J, K)`` when its unique axis is signed by
        handedness), ``(J, K)`` for the spherical group; ``()`` otherwise. Default: no nuclei.

    ``K = n_components``: 3 for a fully signed frame, fewer for unresolved groups.
    """

    groups: tuple[tuple[int, ...], ...]
    signs: tuple[str, ...]
    nuclei: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self):
        if self.nuclei is None:
            object.__setattr__(self, "nuclei", tuple(() for _ in self.groups))
        object.__setattr__(self, "nuclei", tuple(tuple(int(j) for j in n) for n in self.nuclei))
        flat = tuple(k for g in self.groups for k in g)
        if flat != (0, 1, 2) or any(tuple(range(g[0], g[0] + len(g))) != g for g in self.groups):
            raise ValueError(f"groups must split (0, 1, 2) into contiguous runs, got {self.groups}")
        if len(self.signs) != len(self.groups) or any(s not in SIGNS for s in self.signs):
            raise ValueError(f"signs must give one of {SIGNS} per group, got {self.signs}")
        if len(self.nuclei) != len(self.groups):
            raise ValueError(f"nuclei must give a tuple per group, got {self.nuclei}")
        for g, s, n in zip(self.groups, self.signs, self.nuclei):
            if len(g) > 1 and s not in ("nucleus", "none"):
                raise ValueError("a degenerate group is resolved by nuclei ('nucleus') or not at all ('none')")
            wanted = {1: (1,), 2: (1, 2), 3: (2,)}[len(g)] if s == "nucleus" else (0,)
            if len(n) not in wanted or len(set(n)) != len(n):
                raise ValueError(f"group {g} with rule {s!r} takes {' or '.join(map(str, wanted))} distinct "
                                 f"nuclei, got {n}")
        by_axis = {g[0]: s for g, s in zip(self.groups, self.signs) if len(g) == 1}
        for g, s, n in zip(self.groups, self.signs, self.nuclei):
            if len(g) == 2 and s == "nucleus":
                u = by_axis[3 - sum(g)]
                if (len(n) == 1) != (u in ("moment", "nucleus")):
                    raise ValueError("a pair resolved by one nucleus needs its unique axis signed by a moment or a "
                                     "nucleus; by two nuclei, its unique axis signed by handedness")
        pair_by_two = any(len(g) == 2 and s == "nucleus" and len(n) == 2
                          for g, s, n in zip(self.groups, self.signs, self.nuclei))
        for k, s in by_axis.items():
            others = [by_axis.get(j) for j in range(3) if j != k]
            if s == "handedness" and not (pair_by_two or all(o in ("moment", "nucleus") for o in others)):
                raise ValueError("a handedness sign needs the two other axes signed by moments or nuclei, or a "
                                 "pair resolved by two nuclei")

    @property
    def name(self) -> str:
        """``"asymmetric"``, ``"prolate"``, ``"oblate"`` or ``"spherical"``."""
        sizes = tuple(len(g) for g in self.groups)
        return {(1, 1, 1): "asymmetric", (1, 2): "prolate", (2, 1): "oblate", (3,): "spherical"}[sizes]

    @property
    def components(self) -> tuple[str, ...]:
        """What each component is, e.g. ``("d.e0", "(d.e1)^2+(d.e2)^2")``."""
        out = []
        for g, s in zip(self.groups, self.signs):
            if s == "nucleus" or (len(g) == 1 and s != "none"):
                out += [f"d.e{k}" for k in g]
            elif len(g) == 3:
                out.append("|d|^2")
            elif len(g) == 2:
                out.append(f"(d.e{g[0]})^2+(d.e{g[1]})^2")
            else:
                out.append(f"(d.e{g[0]})^2")
        return tuple(out)

    @property
    def n_components(self) -> int:
        """``K``, the number of components :func:`frame_coordinates` returns."""
        return len(self.components)

    @property
    def chiral_axis(self) -> int | None:
        """The signed unique axis of an unresolved pair (a linear molecule's axis), whose
        pseudoscalar :func:`frame_chirality` hands on; ``None`` when there is none."""
        by_axis = {g[0]: s for g, s in zip(self.groups, self.signs) if len(g) == 1}
        for g, s in zip(self.groups, self.signs):
            if len(g) == 2 and s == "none" and by_axis[3 - sum(g)] != "none":
                return 3 - sum(g)
        return None

    @property
    def n_chirality(self) -> int:
        """Number of pair components of :func:`frame_chirality` (0 or 1)."""
        return int(self.chiral_axis is not None)

    @property
    def designated(self) -> tuple[int, ...]:
        """The designated nuclei (sorted): relabelling one of them may change ψ (module docstring)."""
        return tuple(sorted({j for n in self.nuclei for j in n}))


# ----------------------------------------------------------------------------- the frame (numpy or jax)


def _unit(v, xp):
    return v / xp.sqrt(xp.sum(v * v))


def _frame(R, charges, kind: FrameKind, xp):
    """``(origin [3], axes [3, 3])`` of one geometry under ``kind``, with ``xp`` numpy or jax.numpy."""
    Z = xp.asarray(charges, dtype=R.dtype)
    origin = Z @ R / xp.sum(Z)
    X = R - origin
    _, V = xp.linalg.eigh((X.T * Z) @ X)
    rows = [V[:, 2 - k] for k in range(3)]  # largest eigenvalue first

    def flip(v, s):
        return v * xp.where(s >= 0, 1.0, -1.0).astype(R.dtype)

    for g, s, n in zip(kind.groups, kind.signs, kind.nuclei):
        if len(g) == 1 and s == "moment":
            rows[g[0]] = flip(rows[g[0]], xp.sum(Z * (X @ rows[g[0]]) ** 3))
        elif len(g) == 1 and s == "nucleus":
            rows[g[0]] = flip(rows[g[0]], X[n[0]] @ rows[g[0]])
    for g, s, n in zip(kind.groups, kind.signs, kind.nuclei):
        if s != "nucleus" or len(g) == 1:
            continue
        if len(g) == 2:  # e_a towards nucleus J's projection on the plane; e_b = u x e_a, or from nucleus K
            a, b = g
            u = rows[3 - a - b]
            e_a = _unit(X[n[0]] - (X[n[0]] @ u) * u, xp)
            if len(n) == 1:
                e_b = xp.cross(u, e_a)  # (u, a, b) is cyclic: a right-handed frame
            else:
                w = X[n[1]] - (X[n[1]] @ u) * u
                e_b = _unit(w - (w @ e_a) * e_a, xp)
            rows[a], rows[b] = e_a, e_b
        else:  # e_0 towards nucleus J, e_1 from nucleus K, e_2 = e_0 x e_1
            e0 = _unit(X[n[0]], xp)
            w = X[n[1]] - (X[n[1]] @ e0) * e0
            rows[0], rows[1] = e0, _unit(w, xp)
            rows[2] = xp.cross(rows[0], rows[1])
    for g, s in zip(kind.groups, kind.signs):
        if len(g) == 1 and s == "handedness":  # e_k = e_{k+1} x e_{k+2} (cyclic): a right-handed frame
            k = g[0]
            rows[k] = xp.cross(rows[(k + 1) % 3], rows[(k + 2) % 3])
    return origin, xp.stack(rows)


def molecular_frame(R: jnp.ndarray, charges, kind: FrameKind) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The frame of one geometry: ``(origin [3], axes [3, 3])`` (rows = axes), jittable.

    Args:
      R: nuclear positions ``[M, 3]``.
      charges: nuclear charges ``[M]`` (a tuple, or an array, also a traced one).
      kind: from :func:`~qmczoo.layers.frame_kind.frame_kind` for the run's geometries.

    Returns:
      The centre of nuclear charge and the axes: the eigenvectors of the charge-weighted second
      moment, largest eigenvalue first, each signed or resolved as ``kind`` says (module
      docstring). An unsigned axis is left as ``eigh`` returns it, and the axes of an unresolved
      degenerate group are an arbitrary orthonormal basis of it; :func:`frame_coordinates` does
      not depend on either choice.
    """
    return _frame(jnp.asarray(R), charges, kind, jnp)


def frame_coordinates(d: jnp.ndarray, axes: jnp.ndarray, kind: FrameKind) -> jnp.ndarray:
    """Displacements ``d`` ``[..., 3]`` in the frame, invariant to exactly what ``kind`` leaves open.

    Returns ``[..., K]`` (``K = kind.n_components``), per group of ``kind.groups``: ``d . e`` for
    each signed or resolved axis, ``(d . e)^2`` for a sign-ambiguous unique axis, ``(d . e_a)^2 +
    (d . e_b)^2`` for an unresolved pair (computed as ``|d|^2 - (d . e_u)^2``, which needs only
    the well-defined unique axis), ``|d|^2`` for an unresolved spherical group. All are
    polynomials in ``d``, smooth everywhere.
    """
    proj = jnp.einsum("...i,ki->...k", d, axes)
    norm2 = jnp.sum(jnp.square(d), axis=-1)
    out = []
    for grp, sign in zip(kind.groups, kind.signs):
        if sign == "nucleus" or (len(grp) == 1 and sign != "none"):
            out += [proj[..., k] for k in grp]
        elif len(grp) == 3:
            out.append(norm2)
        elif len(grp) == 2:
            out.append(norm2 - jnp.square(proj[..., 3 - sum(grp)]))
        else:
            out.append(jnp.square(proj[..., grp[0]]))
    return jnp.stack(out, axis=-1)


def frame_chirality(x: jnp.ndarray, axes: jnp.ndarray, kind: FrameKind) -> jnp.ndarray:
    """The pair pseudoscalar of an unresolved pair: ``[N, N, P]``, ``P = kind.n_chirality``.

    ``t_ij = u . (x_i x x_j)`` with ``x`` ``[N, 3]`` the electron positions relative to the
    frame's origin (or any point on the axis; only the components perpendicular to ``u`` enter)
    and ``u`` the signed unique axis of the unresolved pair (``kind.chiral_axis``). Invariant
    under rotations of the whole system (and of the electrons about ``u``), antisymmetric in
    ``i, j``; it changes sign under a reflection of the electrons through a plane containing
    ``u``. ``P = 0`` (an empty last axis) when ``kind`` has no such pair.
    """
    k = kind.chiral_axis
    if k is None:
        return jnp.zeros((x.shape[0], x.shape[0], 0), x.dtype)
    w = jnp.cross(x, axes[k])  # x_j x u
    return (x @ w.T)[..., None]  # x_i . (x_j x u) = u . (x_i x x_j)
