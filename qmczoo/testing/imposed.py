"""The check of what an ansatz imposes: psi is unchanged under an operation exactly when it says so.

:func:`check_imposed_symmetry` builds an ansatz for a system, and for every operation of the
system's electrons that fixes the nuclei (:func:`qmczoo.registry.symmetry.system_operations`: on an atom
the rotations about the nucleus and the inversion through it; on a linear molecule the rotations
about the axis and the reflections through planes containing it; on a planar molecule the
reflection through the plane) applies it to the electrons alone, nuclei fixed, and compares
``(sign, log|psi|)``:

* an operation the ansatz imposes (``spec.imposes(system).on(system)``) must leave both
  unchanged, at every configuration and matrix tried;
* any other must change them somewhere (by more than ``min_change`` in ``log|psi|``, or a sign),
  for random parameters (the initial ones plus noise): an ansatz that says it imposes nothing
  must be able to break the symmetry. Run this direction
  on a system whose states need it (B: its p electron) -- an ansatz built from Hartree–Fock
  orbitals of a closed-shell atom is invariant there without imposing anything in general.

    >>> from qmczoo.testing.imposed import check_imposed_symmetry
    >>> check_imposed_symmetry(get_ansatz("ferminet", "tiny", embedding="schnet_embedding"), get_system("B"))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_imposed_symmetry", "symmetry_changes"]


def symmetry_changes(spec, system, seed: int = 0, configurations: int = 3, perturb: float = 0.05) -> dict[str, float]:
    """``{operation name: largest change of log|psi|}`` (``inf`` where the sign flips) for every
    operation of ``system`` (:func:`~qmczoo.registry.symmetry.system_operations`), applied to the
    electrons alone at ``configurations`` random configurations, float64.

    The parameters are ``wf.init``'s plus Gaussian noise of standard deviation ``perturb`` on
    every floating leaf: an initialisation can be more symmetric than the ansatz (the full
    envelope starts isotropic), while what the ansatz imposes holds for any parameters."""
    from qmczoo.registry.symmetry import system_operations
    from qmczoo.testing.contract import random_configuration, to_float64

    operations = system_operations(system)
    if not operations:
        return {}
    wf = spec.build(system)
    with jax.enable_x64(True):
        R = jnp.asarray(system.positions, jnp.float64)
        keys = jax.random.split(jax.random.PRNGKey(seed), configurations + 1)
        r = jnp.stack([random_configuration(k, system, jnp.float64) for k in keys[1:]])
        params = jax.jit(lambda key, x, y: to_float64(wf.init(key, x, y)))(keys[0], r[0], R)
        leaves, tree = jax.tree_util.tree_flatten(params)
        noise = jax.random.split(jax.random.fold_in(keys[0], 1), len(leaves))
        params = jax.tree_util.tree_unflatten(tree, [
            x + perturb * jax.random.normal(k, x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
            for x, k in zip(leaves, noise)])
        batch = jax.jit(jax.vmap(wf.signed_log_psi, in_axes=(None, 0, None)))
        sign, log = (np.asarray(x) for x in batch(params, r, R))
        out = {}
        for k, op in enumerate(operations):
            change = 0.0
            for matrix in op.matrices(seed + k):
                moved = jnp.asarray(op.apply(np.asarray(r), matrix))
                s2, l2 = (np.asarray(x) for x in batch(params, moved, R))
                if not (np.all(np.isfinite(l2)) and np.all(np.isfinite(log))):
                    raise AssertionError(f"{spec.name}: log|psi| is not finite under {op.name}")
                change = max(change, float(np.max(np.abs(l2 - log))))
                if np.any(s2 != sign):
                    change = float("inf")
            out[op.name] = change
    return out


def check_imposed_symmetry(spec, system, seed: int = 0, atol: float = 1e-8, min_change: float = 1e-6,
                           perturb: float = 0.05) -> dict[str, float]:
    """AssertionError unless psi of ``spec`` on ``system`` is unchanged under exactly the
    operations the ansatz imposes there (see the module docstring); returns the changes.

    Args:
      spec: an :class:`~qmczoo.registry.AnsatzSpec`.
      system: a :class:`~qmczoo.systems.System` (an atom, a linear or a planar molecule; nothing
        is checked for other molecules).
      seed: seeds the configurations, parameters and matrices.
      atol: largest change of log|psi| allowed under an imposed operation.
      min_change: smallest change of log|psi| that counts as breaking a symmetry.
      perturb: noise added to the initial parameters (see :func:`symmetry_changes`).
    """
    imposed = {op.name for op in spec.imposes(system).on(system)}
    changes = symmetry_changes(spec, system, seed, perturb=perturb)
    for name, change in changes.items():
        if name in imposed and not change <= atol:
            raise AssertionError(f"{spec.name}: imposes invariance under {name} (spec.imposes), but log|psi| or "
                                 f"its sign changed under them on {system.name} (by {change:.3g}, atol {atol:g})")
        if name not in imposed and not change > min_change:
            raise AssertionError(f"{spec.name}: does not claim to impose invariance under {name}, but psi did not "
                                 f"change under them on {system.name} (largest change {change:.3g}): it imposes a "
                                 "symmetry that its fillers do not declare (add it to the claims)")
    return changes
