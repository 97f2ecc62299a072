"""Invariance checks for any :class:`~qmczoo.wavefunction.Wavefunction`.

These are library utilities, meant for plug-in authors as much as for qmczoo's own test
suite: a new ansatz is checked with one call,

    >>> from qmczoo.testing import run_contract_checks
    >>> run_contract_checks(my_wavefunction, get_system("LiH"))   # raises AssertionError

Every ``check_*`` function takes ``(wf, params, r, R, ..., atol=...)`` for ONE
configuration (``r`` ``[N, 3]`` electrons, spin-up first; ``R`` ``[M, 3]`` nuclei), returns
``None`` and raises :class:`AssertionError` with a message that says what broke. The default
tolerances assume float64 (see :func:`run_contract_checks`, which switches it on).
"""

from __future__ import annotations

import collections
import itertools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_antisymmetry",
    "check_finite",
    "check_inversion_invariance",
    "check_kfac_curvature",
    "kfac_block_types",
    "check_orbital_shapes",
    "check_rotation_invariance",
    "check_spec",
    "random_rotation",
    "check_translation_invariance",
    "random_configuration",
    "run_contract_checks",
    "same_spin_pairs",
    "to_float64",
]

DEFAULT_ATOL = 1e-8
"""Absolute tolerance on ``log|psi|`` (float64 arithmetic)."""


_JITTED: collections.OrderedDict = collections.OrderedDict()
_JITTED_MAX = 16


def _jitted_value_and_grads(signed_log_psi):
    """A jitted ``(params, r, R) -> (sign, log|psi|, (d/dparams, d/dr))``, cached per function.

    Cached by identity (plug-in callables need not be hashable), for the last few functions.
    """
    hit = _JITTED.get(id(signed_log_psi))
    if hit is not None and hit[0] is signed_log_psi:
        _JITTED.move_to_end(id(signed_log_psi))
        return hit[1]

    def value_and_grads(params, r, R):
        def f(p, x):
            sign, logabs = signed_log_psi(p, x, R)
            return logabs, sign

        (logabs, sign), grads = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, r)
        return sign, logabs, grads

    fn = jax.jit(value_and_grads)
    _JITTED[id(signed_log_psi)] = (signed_log_psi, fn)
    while len(_JITTED) > _JITTED_MAX:
        _JITTED.popitem(last=False)
    return fn


def _evaluate_with_grads(wf, params, r, R, check_shapes: bool = True):
    """``(sign, log|psi|, (d/dparams, d/dr))`` of one configuration, compiled once per shape.

    Values and gradients share one compilation: an ansatz must be differentiable with respect
    to its parameters (training) and to ``r`` (local energy) anyway.
    """
    r, R = jnp.asarray(r), jnp.asarray(R)
    if check_shapes:
        out = jax.eval_shape(wf.signed_log_psi, params, r, R)
        shapes = [getattr(o, "shape", None) for o in out] if isinstance(out, (tuple, list)) else [out]
        if len(shapes) != 2 or any(s != () for s in shapes):
            raise AssertionError(
                f"{wf.name}: signed_log_psi must return (sign, log|psi|), two scalars, for one "
                f"configuration r [N,3]; got {shapes}"
            )
    return _jitted_value_and_grads(wf.signed_log_psi)(params, r, R)


def _evaluate(wf, params, r, R, check_shapes: bool = True) -> tuple[float, float]:
    """``(sign, log|psi|)`` of one configuration as Python floats."""
    sign, logabs, _ = _evaluate_with_grads(wf, params, r, R, check_shapes)
    return float(sign), float(logabs)


def _assert_valid(name: str, what: str, sign: float, logabs: float) -> None:
    if sign not in (-1.0, 1.0):
        raise AssertionError(f"{name}: sign of psi {what} is {sign}, expected +1 or -1")
    if not np.isfinite(logabs):
        raise AssertionError(f"{name}: log|psi| {what} is {logabs}, expected a finite number")


def _check_shapes(wf, r, R) -> None:
    n = wf.n_up + wf.n_down
    if np.shape(r) != (n, 3):
        raise AssertionError(f"{wf.name}: r must be [N, 3] = [{n}, 3], got {np.shape(r)}")
    if np.ndim(R) != 2 or np.shape(R)[1] != 3:
        raise AssertionError(f"{wf.name}: R must be [M, 3], got {np.shape(R)}")


def same_spin_pairs(n_up: int, n_down: int) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of electrons with the same spin (rows of ``r``)."""
    up = itertools.combinations(range(n_up), 2)
    down = itertools.combinations(range(n_up, n_up + n_down), 2)
    return list(up) + list(down)


def check_finite(wf, params, r, R, grad: bool = True) -> None:
    """``log|psi|`` is finite, the sign is +-1 and (with ``grad``) d log|psi| / d(params, r) is finite.

    Args:
      wf: the wavefunction.
      params: its parameters.
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      grad: also check the gradients with respect to the parameters and to ``r``.
    """
    _check_shapes(wf, r, R)
    sign, logabs, (g_params, g_r) = _evaluate_with_grads(wf, params, r, R)
    _assert_valid(wf.name, "at the given configuration", float(sign), float(logabs))
    if grad:
        if not np.all(np.isfinite(np.asarray(g_r))):
            raise AssertionError(f"{wf.name}: d log|psi| / dr is not finite: {np.asarray(g_r)}")
        for path, leaf in jax.tree_util.tree_leaves_with_path(g_params):
            if not np.all(np.isfinite(np.asarray(leaf))):
                raise AssertionError(
                    f"{wf.name}: d log|psi| / d params is not finite at {jax.tree_util.keystr(path)}"
                )


def check_antisymmetry(wf, params, r, R, atol: float = DEFAULT_ATOL) -> None:
    """Swapping two same-spin electrons flips the sign of psi and keeps ``log|psi|``.

    Every pair of spin-up electrons (rows ``[:n_up]`` of ``r``) and every pair of spin-down
    electrons (rows ``[n_up:]``) is tried. Swapping an up with a down electron is not a
    symmetry of a spin-assigned wavefunction and is not checked.

    Args:
      wf, params: the wavefunction and its parameters.
      r: electron positions ``[N, 3]`` (no two electrons at the same point).
      R: nuclear positions ``[M, 3]``.
      atol: tolerance on ``log|psi|``.
    """
    _check_shapes(wf, r, R)
    r = jnp.asarray(r)
    sign, logabs = _evaluate(wf, params, r, R)
    _assert_valid(wf.name, "at the reference configuration", sign, logabs)
    for i, j in same_spin_pairs(wf.n_up, wf.n_down):
        spin = "up" if j < wf.n_up else "down"
        perm = np.arange(r.shape[0])
        perm[[i, j]] = perm[[j, i]]
        s2, l2 = _evaluate(wf, params, r[perm], R, check_shapes=False)
        _assert_valid(wf.name, f"after swapping electrons {i} and {j}", s2, l2)
        if s2 != -sign:
            raise AssertionError(
                f"{wf.name}: swapping {spin}-spin electrons {i} and {j} should flip the sign of psi "
                f"(antisymmetry), but the sign went from {sign:+.0f} to {s2:+.0f}"
            )
        if abs(l2 - logabs) > atol:
            raise AssertionError(
                f"{wf.name}: swapping {spin}-spin electrons {i} and {j} changed log|psi| from "
                f"{logabs!r} to {l2!r} (difference {l2 - logabs:.3g} > atol {atol:g})"
            )


def check_translation_invariance(wf, params, r, R, shift, atol: float = DEFAULT_ATOL) -> None:
    """``log|psi|`` and the sign are unchanged when electrons and nuclei move by ``shift``.

    Args:
      wf, params: the wavefunction and its parameters.
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      shift: a displacement ``[3]`` applied to every electron and every nucleus.
      atol: tolerance on ``log|psi|``.
    """
    _check_shapes(wf, r, R)
    shift = jnp.asarray(shift, dtype=jnp.asarray(r).dtype)
    if shift.shape != (3,):
        raise ValueError(f"shift must be a vector [3], got shape {shift.shape}")
    sign, logabs = _evaluate(wf, params, r, R)
    _assert_valid(wf.name, "at the reference configuration", sign, logabs)
    s2, l2 = _evaluate(wf, params, jnp.asarray(r) + shift, jnp.asarray(R) + shift, check_shapes=False)
    _assert_valid(wf.name, "after the translation", s2, l2)
    if s2 != sign or abs(l2 - logabs) > atol:
        raise AssertionError(
            f"{wf.name}: not translation invariant: shifting electrons and nuclei by "
            f"{np.asarray(shift).tolist()} changed (sign, log|psi|) from ({sign:+.0f}, {logabs!r}) "
            f"to ({s2:+.0f}, {l2!r}) (atol {atol:g})"
        )


def check_rotation_invariance(wf, params, r, R, rotation, atol: float = DEFAULT_ATOL) -> None:
    """``log|psi|`` and the sign are unchanged when electrons and nuclei rotate together.

    Only meaningful for ansätze built to be rotation invariant (e.g. functions of distances
    only). FermiNet is NOT: its first layer sees raw displacement vectors.

    Args:
      wf, params: the wavefunction and its parameters.
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      rotation: an orthogonal matrix ``[3, 3]``; positions ``x`` become ``rotation @ x``.
      atol: tolerance on ``log|psi|``.
    """
    _check_shapes(wf, r, R)
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-10):
        raise ValueError(f"rotation must be an orthogonal [3, 3] matrix, got {rot.tolist()}")
    rot = jnp.asarray(rot, dtype=jnp.asarray(r).dtype)
    sign, logabs = _evaluate(wf, params, r, R)
    _assert_valid(wf.name, "at the reference configuration", sign, logabs)
    s2, l2 = _evaluate(wf, params, jnp.asarray(r) @ rot.T, jnp.asarray(R) @ rot.T, check_shapes=False)
    _assert_valid(wf.name, "after the rotation", s2, l2)
    if s2 != sign or abs(l2 - logabs) > atol:
        raise AssertionError(
            f"{wf.name}: not rotation invariant: rotating electrons and nuclei changed "
            f"(sign, log|psi|) from ({sign:+.0f}, {logabs!r}) to ({s2:+.0f}, {l2!r}) (atol {atol:g})"
        )


def check_inversion_invariance(wf, params, r, R, atol: float = DEFAULT_ATOL) -> None:
    """``log|psi|`` and the sign are unchanged when electrons and nuclei are inverted together
    (``x -> -x``): what an ansatz that is invariant under O(3), not only under rotations, does.

    Args:
      wf, params: the wavefunction and its parameters.
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      atol: tolerance on ``log|psi|``.
    """
    _check_shapes(wf, r, R)
    sign, logabs = _evaluate(wf, params, r, R)
    _assert_valid(wf.name, "at the reference configuration", sign, logabs)
    s2, l2 = _evaluate(wf, params, -jnp.asarray(r), -jnp.asarray(R), check_shapes=False)
    _assert_valid(wf.name, "after the inversion", s2, l2)
    if s2 != sign or abs(l2 - logabs) > atol:
        raise AssertionError(
            f"{wf.name}: not inversion invariant: inverting electrons and nuclei changed "
            f"(sign, log|psi|) from ({sign:+.0f}, {logabs!r}) to ({s2:+.0f}, {l2!r}) (atol {atol:g})"
        )


def identical_nuclei_swaps(charges) -> list[tuple[int, int]]:
    """Pairs ``(I, J)``, ``I < J``, of nuclei with the same charge."""
    z = np.asarray(charges, dtype=float)
    return [(i, j) for i in range(len(z)) for j in range(i + 1, len(z)) if z[i] == z[j]]


def check_nuclear_permutation_invariance(wf, params, r, R, charges, atol: float = DEFAULT_ATOL) -> None:
    """Swapping two identical nuclei (the order in which ``R`` lists them) leaves log|psi| and the
    sign unchanged, for every such pair; AssertionError otherwise. Nothing to check when all
    charges differ."""
    sign, logabs = _evaluate(wf, params, r, R)
    for i, j in identical_nuclei_swaps(charges):
        order = np.arange(R.shape[0])
        order[[i, j]] = order[[j, i]]
        s2, l2 = _evaluate(wf, params, r, R[order], check_shapes=False)
        if s2 != sign or abs(l2 - logabs) > atol:
            raise AssertionError(f"{wf.name}: swapping identical nuclei {i} and {j} changed (sign, log|psi|) "
                                 f"from ({sign:+.0f}, {logabs:.10f}) to ({s2:+.0f}, {l2:.10f})")


def check_orbital_shapes(wf, params, r, R) -> None:
    """``wf.orbitals`` (if any) returns square blocks ``[K, n_b, n_b]`` covering all electrons.

    Accepted layouts: one dense block ``[K, N, N]``, or one block per non-empty spin
    channel, ``[K, n_up, n_up]`` then ``[K, n_down, n_down]``. Every block has the same ``K``.
    Only shapes are checked (nothing is compiled). Does nothing for a wavefunction without
    orbitals.
    """
    if wf.orbitals is None:
        return
    _check_shapes(wf, r, R)
    blocks = jax.eval_shape(wf.orbitals, params, jnp.asarray(r), jnp.asarray(R))
    if not isinstance(blocks, (list, tuple)):
        raise AssertionError(f"{wf.name}: orbitals must return a list of [K, n, n] blocks, got {blocks}")
    shapes = [tuple(getattr(b, "shape", ())) for b in blocks]
    n = wf.n_up + wf.n_down
    if not shapes or any(len(s) != 3 or s[1] != s[2] for s in shapes):
        raise AssertionError(f"{wf.name}: orbitals must be a list of [K, n, n] blocks, got shapes {shapes}")
    if len({s[0] for s in shapes}) != 1:
        raise AssertionError(f"{wf.name}: orbital blocks disagree on the number of determinants: {shapes}")
    sizes = [s[1] for s in shapes]
    spin_sizes = [k for k in (wf.n_up, wf.n_down) if k > 0]
    if sizes != [n] and sizes != spin_sizes:
        raise AssertionError(
            f"{wf.name}: orbital blocks of sizes {sizes} match neither one dense block [{n}] nor "
            f"the spin blocks {spin_sizes}"
        )


def random_configuration(key, system, dtype=jnp.float64) -> jnp.ndarray:
    """One configuration ``r`` ``[N, 3]`` with each electron near its atom (spin-up first).

    Uses :func:`qmczoo.engine.sampler.initial_positions` with a batch of one.
    """
    from qmczoo.engine.sampler import initial_positions

    return initial_positions(key, system, 1, dtype=dtype)[0]


def to_float64(params):
    """``params`` with every floating leaf cast to float64 (other leaves unchanged)."""

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, params)


def kfac_block_types(wf, system, params=None, batch_size: int = 4, seed: int = 0) -> dict[str, str]:
    """The kfac-jax curvature block that each parameter of ``wf`` lands in.

    Builds a kfac-jax optimizer on the VMC curvature (``log|psi|`` registered as a normal
    predictive distribution, as the trainer does) for a few walkers, and returns
    ``{parameter path: block class name}``, e.g. ``"RepeatedDenseKroneckerFactored"``.
    ``"NaiveDiagonal"`` marks a parameter kfac-jax did not recognise (see
    :mod:`qmczoo.layers.curvature`).
    """
    import kfac_jax

    key_r, key_p = jax.random.split(jax.random.PRNGKey(seed))
    R = jnp.asarray(system.positions)
    r = jnp.stack([random_configuration(k, system, R.dtype) for k in jax.random.split(key_r, batch_size)])
    if params is None:
        params = jax.jit(wf.init)(key_p, r[0], R)
    params = jax.tree.map(lambda x: x.astype(R.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)

    def loss(p, batch):
        log_psi = wf.gradient_log_psi(p, batch, R)  # as the trainer differentiates it
        kfac_jax.register_normal_predictive_distribution(log_psi[:, None])
        return jnp.mean(log_psi)

    opt = kfac_jax.Optimizer(value_and_grad_func=jax.value_and_grad(loss), l2_reg=0.0,
                             use_adaptive_learning_rate=False, use_adaptive_damping=False,
                             use_adaptive_momentum=False, learning_rate_schedule=lambda t: 1e-3,
                             estimation_mode="fisher_exact", multi_device=False)
    opt.init(params, jax.random.PRNGKey(0), r)
    est = opt._estimator  # kfac-jax exposes the blocks only on its estimator
    index = est.params_block_index
    return {jax.tree_util.keystr(path): type(est.blocks[i]).__name__
            for path, i in jax.tree_util.tree_leaves_with_path(index)}


def check_kfac_curvature(wf, system, params=None) -> None:
    """Raise AssertionError if a parameter of ``wf`` falls into kfac-jax's ``NaiveDiagonal``.

    Such a block estimates the curvature from the square of the batch-summed gradient, not
    from per-walker derivatives; the fix is in :mod:`qmczoo.layers.curvature`.
    """
    naive = [path for path, block in kfac_block_types(wf, system, params).items() if block == "NaiveDiagonal"]
    if naive:
        raise AssertionError(
            f"{wf.name}: parameters without proper KFAC curvature (NaiveDiagonal): {', '.join(naive)}; "
            "register them with qmczoo.layers.curvature (Dense, scale, tracked_parameter)"
        )


def run_contract_checks(wf, system, seed: int = 0, atol: float = DEFAULT_ATOL,
                        kfac: bool = True, claims: dict | None = None) -> None:
    """All contract checks for ``wf`` on ``system``, in float64; raises AssertionError.

    Builds parameters with ``wf.init`` at a random configuration near the nuclei (floating
    parameters cast to float64), then checks: electron counts match the system, finiteness
    (value and gradients), antisymmetry under every same-spin swap, translation invariance
    and, for ansätze with orbitals, the orbital block shapes; with ``kfac``, that every
    parameter gets a proper KFAC curvature block (:func:`check_kfac_curvature`).

    Args:
      wf: a :class:`~qmczoo.wavefunction.Wavefunction`.
      system: a :class:`~qmczoo.chemistry.systems.System` with ``n_up``/``n_down`` as ``wf``.
      seed: seeds the configuration and the parameters.
      atol: tolerance on ``log|psi|``.
      kfac: also check the KFAC curvature blocks.
      claims: what the ansatz claims beyond the contract (``AnsatzSpec.claims``):
        ``{"invariant": ["rotation"]}`` adds :func:`check_rotation_invariance` (three random
        rotations), ``"inversion"`` :func:`check_inversion_invariance`, ``"nuclear_permutation"`` :func:`check_nuclear_permutation_invariance`, ``{"cusp": ["electron_nuclear", "electron_electron"]}`` the numerical Kato
        cusp checks of :mod:`qmczoo.testing.cusps` on the whole ansatz. For a system with an
        effective core potential the electron–nuclear claim means Kato's ``-Z`` at every
        all-electron nucleus and no cusp (a smooth psi) at every pseudo-nucleus.
    """
    claims = claims or {}
    if (wf.n_up, wf.n_down) != (system.n_up, system.n_down):
        raise AssertionError(
            f"{wf.name}: built for (n_up, n_down) = ({wf.n_up}, {wf.n_down}) but the system "
            f"{system.name} has ({system.n_up}, {system.n_down})"
        )
    with jax.enable_x64(True):
        key_r, key_p = jax.random.split(jax.random.PRNGKey(seed))
        r = random_configuration(key_r, system, jnp.float64)
        R = jnp.asarray(system.positions, dtype=jnp.float64)
        params = jax.jit(lambda key, r, R: to_float64(wf.init(key, r, R)))(key_p, r, R)
        check_finite(wf, params, r, R)
        check_antisymmetry(wf, params, r, R, atol=atol)
        check_translation_invariance(wf, params, r, R, shift=jnp.array([0.7, -1.3, 2.1]), atol=atol)
        check_orbital_shapes(wf, params, r, R)
        if "rotation" in (claims.get("invariant") or []):
            for k in range(3):
                check_rotation_invariance(wf, params, r, R, random_rotation(seed + k), atol=atol)
        if "inversion" in (claims.get("invariant") or []):
            check_inversion_invariance(wf, params, r, R, atol=atol)
        if "nuclear_permutation" in (claims.get("invariant") or []):
            check_nuclear_permutation_invariance(wf, params, r, R, np.asarray(system.charges), atol=atol)
        cusps = claims.get("cusp") or []
        if cusps:
            from qmczoo.testing import cusps as cusp_checks

            if "electron_nuclear" in cusps:
                # Kato's -Z at every all-electron nucleus; none at a pseudo-nucleus (System.cusp_charges: 0)
                cusp_checks.check_electron_nuclear_cusp(wf, params, r, R, _cusp_charges(system))
            if "electron_electron" in cusps and wf.n_up + wf.n_down > 1:
                cusp_checks.check_electron_electron_cusp(wf, params, r, R)
        if kfac:
            check_kfac_curvature(wf, system, params)


def _cusp_charges(system) -> np.ndarray:
    """Kato's electron–nuclear cusp per nucleus: ``system.cusp_charges`` (0 at a pseudo-nucleus of an
    effective core potential, whose potential is finite), the charges for a system without them."""
    return np.asarray(getattr(system, "cusp_charges", system.charges), dtype=float)


def check_spec(spec, system, seed: int = 0, atol: float = DEFAULT_ATOL, kfac: bool = True) -> None:
    """:func:`run_contract_checks` on the ansatz ``spec`` (an ``AnsatzSpec``) built for ``system``,
    including the checks its claims for that system call for (``spec.claims_for(system)``: the
    declared claims and the invariances derived from its fillers)."""
    run_contract_checks(spec.build(system), system, seed=seed, atol=atol, kfac=kfac, claims=spec.claims_for(system))


def random_rotation(seed: int) -> np.ndarray:
    """A random proper rotation matrix ``[3, 3]`` (QR of a Gaussian matrix, det +1)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q
