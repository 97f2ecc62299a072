"""Whether a system's Hartree–Fock state has the symmetry an ansatz imposes
(:mod:`qmczoo.registry.symmetry`): the UHF determinant before and after each imposed operation
of the system's electrons, and a warning line when it changes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qmczoo.registry.catalogue import entry
from qmczoo.registry.claims import _layer_options
from qmczoo.registry.symmetry import Operation


def _configurations(system, n: int, seed: int) -> np.ndarray:
    """``[n, N, 3]`` float64 electron positions: each electron near the atom it is assigned to
    (``system.electron_sites()``, spin-up electrons first), a unit Gaussian about it."""
    centres = np.asarray(system.positions, dtype=np.float64)[system.electron_sites()]
    return centres[None] + np.random.default_rng(seed).standard_normal((n, len(centres), 3))


def hartree_fock_changes(system, operations: Sequence[Operation], basis: str = "ccpvdz", configurations: int = 16,
                         seed: int = 0, atol: float = 1e-6) -> list[tuple[Operation, float]]:
    """The operations under which ``system``'s UHF determinant changes, with the change.

    The UHF state (:func:`qmczoo.chemistry.hartree_fock.run_hartree_fock`, cached) is evaluated at
    ``configurations`` random configurations (electrons near their atoms) and at the same
    configurations with each operation applied to the electrons; the change is the largest
    ``|delta log|psi||``, or ``inf`` where the sign flips. Returns ``[(operation, change)]`` for
    the changes above ``atol``.
    """
    if not operations:
        return []
    from qmczoo.chemistry.hartree_fock import run_hartree_fock

    hf = run_hartree_fock(system, basis)
    r = _configurations(system, configurations, seed)

    def signed_log(x):
        up, down = hf.orbital_matrices(x)
        s_up, l_up = np.linalg.slogdet(up) if up.shape[-1] else (np.ones(len(x)), np.zeros(len(x)))
        s_dn, l_dn = np.linalg.slogdet(down) if down.shape[-1] else (np.ones(len(x)), np.zeros(len(x)))
        return s_up * s_dn, l_up + l_dn

    sign, log = signed_log(r)
    out = []
    for k, op in enumerate(operations):
        change = 0.0
        for matrix in op.matrices(seed + k):
            s2, l2 = signed_log(op.apply(r, matrix))
            change = max(change, float(np.max(np.abs(l2 - log))))
            if np.any(s2 != sign):
                change = float("inf")
        if change > atol:
            out.append((op, change))
    return out


def ansatz_label(spec) -> str:
    """``ferminet`` or ``ferminet (embedding=e3nn_embedding, embedding.readout=invariant)``: the
    ansatz with the slot fillers, and filler options, that differ from its defaults and preset."""

    slots = spec._entry.get("slots") or {}
    defaults = dict(spec._entry.get("defaults") or {})
    if spec.preset is not None:
        defaults.update((spec._entry.get("presets") or {}).get(spec.preset) or {})
    changed = []
    for opt in slots:
        filler = spec.options[opt]
        if filler != defaults.get(opt):
            changed.append(f"{opt}={filler}")
            base = {} if filler == "none" else dict(entry(filler)[1].get("options") or {})
        else:
            base = _layer_options(defaults, opt)
        changed += [f"{opt}.{k}={v}" for k, v in _layer_options(spec.options, opt).items() if k in base and base[k] != v]
    return spec.name + (f" ({', '.join(changed)})" if changed else "")


def symmetry_warnings(system, spec, basis: str = "ccpvdz") -> list[str]:
    """A line (in a list) when ``spec`` imposes on ``system`` a symmetry that the system's UHF
    state lacks: psi cannot be a state of that symmetry (e.g. an L = 0 ansatz on boron). Empty
    when there is no conflict, and when the ansatz imposes nothing there (no Hartree–Fock is run
    then). ``basis``: the UHF basis (the pretraining basis shares its cached SCF)."""
    broken = hartree_fock_changes(system, spec.imposes(system).on(system), basis=basis)
    if not broken:
        return []
    imposed = " and ".join(f"{op.name} ({op.meaning})" for op, _ in broken)
    lacks = ", ".join(op.excluded for op, _ in broken)
    return [f"{ansatz_label(spec)} can only represent states invariant under {imposed}, but the Hartree–Fock "
            f"(UHF/{basis}) state of {system.name} changes under them (it has {lacks}): the ansatz cannot reach "
            f"this state and its energy will stay above it. An embedding that hands on direction lifts this "
            f"(ferminet_embedding, or e3nn_embedding with readout=components); see qmczoo info {spec.name}"]


__all__ = ["ansatz_label", "hartree_fock_changes", "symmetry_warnings"]
