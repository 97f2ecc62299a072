"""What an ansatz imposes on psi by symmetry, and whether a system's Hartree–Fock state has it.

An ansatz whose psi does not change when electrons and nuclei are rotated (or inverted)
*together* is invariant under every such operation that leaves the nuclei where they are, applied
to the electrons alone. On an atom that is every rotation about the nucleus (so psi can only be an
``L = 0`` state) and the inversion through it (only even parity); on a linear molecule the
rotations about its axis (``Lambda = 0``, Sigma states) and, with inversion, the reflections
through planes containing it (``Sigma+``); on a planar molecule, with both, the reflection through
its plane. B (2P°), C (3P), O (3P), F (2P°), N (4S°, odd) and O2 (3Sigma_g-) are then out of reach.

**Derived from the slot fillers.** Each registered layer declares (``registry.yaml`` claims):

* ``invariant: [rotation, inversion]``: its output does not change under the joint operation
  (SchNet's embedding, the isotropic envelope, the cusp Jastrows), checked by ``check_layer``;
* ``preserves: [rotation, inversion]``: it adds no direction of its own, so its output is
  invariant whenever what it reads from other slots is (FermiNet's embedding reads only the
  stream inputs of the features; the linear orbital head reads only the embedding and the
  envelope; a determinant reads only the orbitals), checked by ``check_layer`` with invariant
  inputs;
* neither: it hands on a direction (FermiNet's features, raw displacement vectors; the
  Hartree–Fock baseline's p orbitals; ``e3nn_embedding`` with ``readout=components``).

A filler of slot kind K that ``preserves`` an operation is invariant when every filler of the
kinds in :data:`UPSTREAM` ``[K]`` is; psi is invariant when its terminal fillers (the
antisymmetrizer and any Jastrow) are. What cannot be derived is declared on the ansatz entry
(PESNet's molecular frame: ``invariant: [rotation]``, and on an atom ``claims_when: system=atom``
adds inversion). :meth:`qmczoo.registry.AnsatzSpec.imposes` combines both into :class:`Imposed`.

**The check against the system** (:mod:`qmczoo.registry.state_check`): :func:`symmetry_warnings` finds the operations of a system
that the ansatz imposes (:func:`system_operations`), evaluates the UHF determinant of the system
at random configurations before and after each is applied to the electrons, and returns one
line per operation under which the UHF state changes (``log|psi|`` or its sign): the ansatz
cannot represent a state of that symmetry (an atom with a partly filled p shell, N's odd
``4S°``). ``qmczoo train`` and ``qmczoo bench`` print them as ``warning:`` lines. Operations that
permute identical nuclei (the inversion of H2, g/u) are not considered; for molecules that are
neither linear nor planar no operation is checked.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qmczoo.layers.filler import NONE
from qmczoo.registry.claims import _layer_options, layer_claims

OPERATIONS = ("rotation", "inversion")
"""The joint operations (electrons and nuclei together) a claim can name."""

UPSTREAM: dict[str, tuple[str, ...]] = {
    "features": (),
    "envelope": (),
    "geometry_encoder": (),
    "embedding": ("features",),
    "baseline": ("features",),
    "orbitals": ("embedding", "envelope"),
    "backflow": ("embedding", "baseline"),
    "antisymmetrizer": ("orbitals", "baseline", "backflow"),
    "jastrow": ("embedding",),
}
"""For a filler of each slot kind that ``preserves`` an operation: the slot kinds whose outputs it
reads (it is invariant when all of their fillers are). A kind with none reads positions directly,
so only an ``invariant`` claim makes it invariant."""

TERMINAL = ("antisymmetrizer", "jastrow")
"""Slot kinds whose outputs make up log|psi|."""


# ----------------------------------------------------------------------------- derivation


def filler_invariance(spec) -> dict[str, tuple[str, ...]]:
    """``{slot option: operations its filler's output is invariant under}`` for an
    :class:`~qmczoo.registry.AnsatzSpec` (empty slots left out), derived as the module says."""
    kinds = spec._entry.get("slots") or {}
    fillers = {opt: spec.options[opt] for opt in kinds if spec.options.get(opt, NONE) != NONE}
    claims = {opt: layer_claims(name, _layer_options(spec.options, opt)) for opt, name in fillers.items()}
    memo: dict[tuple[str, str], bool] = {}

    def invariant(opt: str, op: str, seen: frozenset = frozenset()) -> bool:
        if (opt, op) in memo:
            return memo[(opt, op)]
        c = claims[opt]
        result = op in (c.get("invariant") or [])
        upstream = UPSTREAM.get(kinds[opt], ())
        if not result and op in (c.get("preserves") or []) and upstream and opt not in seen:
            inputs = [o for o in fillers if kinds[o] in upstream]
            result = all(invariant(o, op, seen | {opt}) for o in inputs)
        memo[(opt, op)] = result
        return result

    return {opt: tuple(op for op in OPERATIONS if invariant(opt, op)) for opt in fillers}


def derived_invariance(spec) -> tuple[str, ...]:
    """The joint operations (of :data:`OPERATIONS`) psi is invariant under by its fillers alone:
    those under which every terminal filler (antisymmetrizer, Jastrows) is invariant. Empty for
    an ansatz without slots."""
    kinds = spec._entry.get("slots") or {}
    per_filler = filler_invariance(spec)
    terminal = [opt for opt in per_filler if kinds[opt] in TERMINAL]
    if not any(kinds[opt] == "antisymmetrizer" for opt in terminal):
        return ()
    return tuple(op for op in OPERATIONS if all(op in per_filler[opt] for opt in terminal))


# ----------------------------------------------------------------------------- systems


def system_kind(system, tol: float = 1e-6) -> str:
    """``"atom"`` (one nucleus), ``"linear"`` (nuclei on a line), ``"planar"`` (in a plane) or
    ``"general"``, from the nuclear positions (bohr, tolerance ``tol``)."""
    R = np.asarray(system.positions, dtype=np.float64)
    if len(R) == 1:
        return "atom"
    s = np.linalg.svd(R - R.mean(axis=0), compute_uv=False)
    if s[1] <= tol * max(1.0, s[0]):
        return "linear"
    if s[2] <= tol * max(1.0, s[0]):
        return "planar"
    return "general"


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _axial_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _reflection(normal: np.ndarray) -> np.ndarray:
    n = normal / np.linalg.norm(normal)
    return np.eye(3) - 2 * np.outer(n, n)


def _perpendicular(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    v = v - v @ axis * axis
    return v / np.linalg.norm(v)


@dataclasses.dataclass(frozen=True)
class Operation:
    """An operation on the electrons alone that leaves every nucleus in place.

    Attributes:
      name: e.g. ``"rotation about the nucleus"``.
      needs: the joint operations (``rotation``, ``inversion``) whose invariance makes psi
        invariant under it.
      meaning: what psi's invariance under it allows (``"L = 0"``).
      excluded: the states it then excludes, for warnings (``"L > 0"``).
      kind: ``rotation``, ``inversion``, ``axial_rotation``, ``axial_reflection`` or
        ``plane_reflection``.
      centre: a fixed point ``[3]`` (bohr); axis: the molecular axis or plane normal ``[3]``.
    """

    name: str
    needs: frozenset
    meaning: str
    excluded: str
    kind: str
    centre: tuple
    axis: tuple | None = None

    def matrices(self, seed: int = 0, count: int = 2) -> list[np.ndarray]:
        """``count`` orthogonal ``[3, 3]`` matrices of this operation (random angles, axes or
        planes where the operation has them; the inversion has one)."""
        rng = np.random.default_rng(seed)
        axis = None if self.axis is None else np.asarray(self.axis, dtype=np.float64)
        if self.kind == "inversion":
            return [-np.eye(3)]
        if self.kind == "rotation":
            return [_random_rotation(rng) for _ in range(count)]
        if self.kind == "axial_rotation":
            return [_axial_rotation(axis, rng.uniform(0.3, 2 * np.pi - 0.3)) for _ in range(count)]
        if self.kind == "axial_reflection":
            return [_reflection(_perpendicular(axis, rng)) for _ in range(count)]
        if self.kind == "plane_reflection":
            return [_reflection(axis)]
        raise ValueError(f"unknown operation kind {self.kind!r}")

    def apply(self, r, matrix):
        """Electron positions ``r`` ``[..., N, 3]`` moved by ``matrix`` about :attr:`centre`."""
        c = np.asarray(self.centre, dtype=np.float64)
        return (r - c) @ np.asarray(matrix).T + c


def system_operations(system) -> list[Operation]:
    """The operations of ``system``'s electrons that fix every nucleus and that joint
    invariances can impose (see the module docstring); none for a ``general`` molecule."""
    R = np.asarray(system.positions, dtype=np.float64)
    kind = system_kind(system)
    both = frozenset(OPERATIONS)
    if kind == "atom":
        c = tuple(R[0])
        return [Operation("rotations of the electrons about the nucleus", frozenset({"rotation"}),
                          "L = 0", "L > 0", "rotation", c),
                Operation("inversion of the electrons through the nucleus", frozenset({"inversion"}),
                          "even parity", "odd parity", "inversion", c)]
    if kind == "linear":
        axis = R[-1] - R[0]
        axis = tuple(axis / np.linalg.norm(axis))
        c = tuple(R[0])
        return [Operation("rotations of the electrons about the molecular axis", frozenset({"rotation"}),
                          "Λ = 0, Σ", "Λ > 0: Π, Δ", "axial_rotation", c, axis),
                Operation("reflections of the electrons through planes containing the axis", both,
                          "Σ⁺", "Σ⁻ symmetry", "axial_reflection", c, axis)]
    if kind == "planar":
        centred = R - R.mean(axis=0)
        normal = tuple(np.linalg.svd(centred)[2][2])
        return [Operation("reflection of the electrons through the molecular plane", both,
                          "symmetric under the plane, A′", "antisymmetric under the plane, A″",
                          "plane_reflection", tuple(R.mean(axis=0)), normal)]
    return []


@dataclasses.dataclass(frozen=True)
class Imposed:
    """What an ansatz imposes on psi: the joint operations (of :data:`OPERATIONS`) it is
    invariant under (``()``: nothing, psi can transform as any state)."""

    invariant: tuple[str, ...] = ()

    @classmethod
    def from_claims(cls, claims: dict) -> "Imposed":
        have = claims.get("invariant") or []
        return cls(tuple(op for op in OPERATIONS if op in have))

    def __bool__(self) -> bool:
        return bool(self.invariant)

    def on(self, system) -> list[Operation]:
        """The operations of ``system`` (:func:`system_operations`) psi is invariant under."""
        return [op for op in system_operations(system) if op.needs <= set(self.invariant)]

    def consequences(self, kind: str) -> list[str]:
        """What psi is restricted to on a system of ``kind`` (:func:`system_kind`): e.g.
        ``["L = 0", "even parity"]`` on an atom; ``[]`` where nothing is imposed."""
        ops = set(self.invariant)
        if kind == "atom":
            return [m for need, m in (("rotation", "L = 0"), ("inversion", "even parity")) if need in ops]
        both = ops >= set(OPERATIONS)
        if kind == "linear":
            return (["Λ = 0 (Σ)"] if "rotation" in ops else []) + (["Σ⁺"] if both else [])
        if kind == "planar":
            return ["symmetric under the molecular plane (A′)"] if both else []
        return []

    def describe(self) -> str:
        """One line: what is imposed, and what it means for atoms and molecules."""
        if not self.invariant:
            return "nothing (psi is not invariant under rotations or inversion: it can transform as any state)"
        what = " and ".join({"rotation": "rotations", "inversion": "inversion"}[op] for op in self.invariant)
        where = [f"on {label} only {', '.join(self.consequences(kind))} states"
                 for kind, label in (("atom", "an atom"), ("linear", "a linear molecule"), ("planar", "a planar molecule"))
                 if self.consequences(kind)]
        return f"invariance under {what} of electrons and nuclei together: {'; '.join(where)}"

    def to_list(self) -> list[str]:
        """``["rotation_invariant", "inversion_even"]``-style names (for JSON and tests)."""
        names = {"rotation": "rotation_invariant", "inversion": "inversion_even"}
        return [names[op] for op in self.invariant]


__all__ = ["OPERATIONS", "UPSTREAM", "TERMINAL", "Imposed", "Operation", "derived_invariance", "filler_invariance",
           "system_kind", "system_operations"]
