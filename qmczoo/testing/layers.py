"""Checks of ONE registered layer against what its registry entry claims.

:func:`check_layer` builds the layer in a small harness that feeds it what its slot receives in
a real ansatz (features of a configuration of BH: 3 up and 3 down electrons around two nuclei,
a tiny FermiNet embedding where the slot takes an embedding), then runs the checks that its
``claims`` call for:

==============================  ===================================================================
claim                           check
==============================  ===================================================================
``equivariant: [permutation]``  permuting same-spin electrons permutes the output's electron rows
``equivariant: [pair_permutation]``  ... permutes rows and columns of each block (pair matrices)
``invariant: [permutation]``    permuting same-spin electrons leaves the output unchanged
``invariant: [translation]``    moving electrons and nuclei together leaves the output unchanged
``invariant: [rotation]``       rotating electrons and nuclei together leaves the output unchanged
                                (all but its ``irreps`` part, for an equivariant embedding)
``invariant: [inversion]``      inverting electrons and nuclei together (``x -> -x``) likewise
``preserves: [rotation, ...]``  the layer adds no direction of its own: fed inputs that are
                                invariant where it may rely on them (``qmczoo.registry.symmetry.UPSTREAM``:
                                stream features of distances only for an embedding, an embedding
                                of them for a head or Jastrow, with an ``irreps`` part that rotates;
                                an isotropic envelope; baseline-like functions of distances), its
                                output (but ``irreps``) is unchanged under the joint rotation /
                                inversion
``equivariant: [nuclear_permutation]``  (geometry encoders) permuting identical nuclei permutes
                                the rows of ``nuclei`` and leaves ``global_`` unchanged
``equivariant: [rotation]``     ... rotates the output's ``irreps`` by their Wigner-D matrices
``equivariant: [inversion]``    ... multiplies them by their parities under the inversion
``antisymmetric: [same_spin]``  swapping same-spin electrons flips the sign, keeps log|psi|
``decays: [far]``               the output vanishes 60 bohr from the nuclei
``smooth: [electron_electron, electron_nuclear]``  no kink at coalescence: the spherically
                                averaged radial slope of the output there is zero
``cusp: [...]``                 (Jastrows) Kato's cusps of exp(J); (baselines) of the Slater
                                determinant of their orbitals; see :mod:`qmczoo.testing.cusps`
==============================  ===================================================================

and, for a layer with parameters, that each lands in a proper KFAC block. Everything runs in
float64. Claims that hold only for some option values (``claims_when`` in the registry) are
checked with those options: ``check_layer(name, options={"readout": "invariant"})``, and
:func:`qmczoo.registry.claim_variants` lists the option sets to run. A geometry encoder is fed the nuclear positions of its own harness molecule,
:data:`GEOMETRY_ENCODER_HARNESS` (an asymmetric H2O: two identical nuclei, so that permuting
them means something). An antisymmetrizer is fed block-diagonal orbital matrices, or the blocks of the
orbitals filler its entry names in ``fed_by`` (the pair product takes pair matrices). A plug-in author calls ``check_layer("my_layer")`` after registering the layer.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.filler import Layer
from qmczoo.testing.harness import layer_harness


def _leaves(out) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(out)]


def _permute_rows(out, perm: np.ndarray, slot: str, n_up: int, pair: bool = False):
    """The output expected after electrons are permuted by ``perm`` (same-spin permutations)."""
    up, down = perm[:n_up], perm[n_up:] - n_up
    if slot == "features":
        return out.replace(one=out.one[perm], two=out.two[perm][:, perm], en_disp=out.en_disp[perm],
                           en_dist=out.en_dist[perm], ee_disp=out.ee_disp[perm][:, perm],
                           ee_dist=out.ee_dist[perm][:, perm])
    if slot == "embedding":
        return out.replace(h=out.h[perm], pair=None if out.pair is None else out.pair[perm],
                           irreps=None if out.irreps is None else out.irreps[perm])
    if slot == "envelope":
        return out[perm]
    if slot == "baseline":
        return out[0][up], out[1][down]
    if slot == "backflow":
        return out[:, up]
    if slot == "orbitals":
        blocks = []
        for b in out:
            p = perm if b.shape[1] == len(perm) else (up if b is out[0] else down)
            b = b[:, p]
            blocks.append(b[:, :, p] if pair else b)
        return blocks
    raise ValueError(f"no permutation rule for the output of slot {slot!r}")


def _assert_close(a, b, what: str, name: str, atol: float):
    la, lb = _leaves(a), _leaves(b)
    if len(la) != len(lb) or any(x.shape != y.shape for x, y in zip(la, lb)):
        raise AssertionError(f"{name}: {what}: output structure changed")
    worst = max((float(np.max(np.abs(x - y))) if x.size else 0.0) for x, y in zip(la, lb))
    if not worst <= atol:
        raise AssertionError(f"{name}: {what}: output changed by {worst:.3g} (atol {atol:g})")


def _identical_nuclei_permutations(charges) -> list[np.ndarray]:
    """For each element with two or more nuclei: a swap of two of them and, with three or more,
    a cycle of all of them."""
    charges = [float(z) for z in charges]
    perms = []
    for z in sorted(set(charges)):
        idx = [i for i, c in enumerate(charges) if c == z]
        if len(idx) < 2:
            continue
        p = np.arange(len(charges))
        p[idx[:2]] = idx[1::-1]
        perms.append(p)
        if len(idx) > 2:
            p = np.arange(len(charges))
            p[idx] = np.roll(idx, 1)
            perms.append(p)
    return perms


def _same_spin_permutations(n_up: int, n_down: int) -> list[np.ndarray]:
    n = n_up + n_down
    perms = []
    if n_up > 1:  # a cycle of all up electrons (even for three) and a swap (odd)
        p = np.arange(n)
        p[:n_up] = np.roll(np.arange(n_up), 1)
        perms.append(p)
        p = np.arange(n)
        p[[0, 1]] = [1, 0]
        perms.append(p)
    if n_down > 1:
        p = np.arange(n)
        p[[n_up, n_up + 1]] = [n_up + 1, n_up]
        perms.append(p)
    return perms


def _parity(perm: np.ndarray) -> int:
    """+1 for an even permutation, -1 for an odd one."""
    perm, sign = list(perm), 1
    for i in range(len(perm)):
        while perm[i] != i:
            j = perm[i]
            perm[i], perm[j] = perm[j], perm[i]
            sign = -sign
    return sign


def _scalar(out) -> jnp.ndarray:
    """A fixed scalar function of a layer output (for smoothness and KFAC checks)."""
    leaves = [x for x in jax.tree.leaves(out) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    total = 0.0
    for i, x in enumerate(leaves):
        w = jnp.cos(jnp.arange(x.size, dtype=x.dtype) * 0.7 + i).reshape(x.shape)
        total = total + jnp.sum(jnp.tanh(x) * w)
    return total


def _antipodal_directions(count: int = 24) -> np.ndarray:
    """``2 count`` unit vectors in antipodal pairs (a Fibonacci half-sphere and its mirror)."""
    k = np.arange(count) + 0.5
    z = k / count
    phi = np.pi * (1 + 5**0.5) * k
    v = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], axis=-1)
    return np.concatenate([v, -v])


def _radial_slope(f, r, centre_fn, electron: int, delta: float = 1e-4) -> float:
    """Spherically averaged slope d<f>/d|x| at coalescence (0 for a smooth f, c for a kink c|x|).

    Electron ``electron`` is put at ``centre_fn(r) + d n`` for antipodal directions ``n``
    (the linear term of a smooth f cancels between them); the averages at d = delta, 2 delta
    and 4 delta give the slope with the quadratic term removed (Richardson extrapolation).
    """
    dirs = jnp.asarray(_antipodal_directions(), r.dtype)

    @jax.jit
    def means(ds):
        def one(d, n):
            return f(r.at[electron].set(centre_fn(r) + d * n))

        per_direction = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(ds, dirs)
        return jnp.mean(per_direction, axis=1)

    g1, g2, g4 = (float(g) for g in means(jnp.asarray([delta, 2 * delta, 4 * delta], r.dtype)))
    s1, s2 = (g2 - g1) / delta, (g4 - g2) / (2 * delta)
    return 2 * s1 - s2


def check_layer(name: str, seed: int = 0, atol: float = 1e-9, options: dict | None = None) -> None:
    """Run on the registered layer ``name`` every check its claims call for; AssertionError if one fails.

    The layer is built with its registry defaults updated by ``options``, and its claims are
    those that hold for these options (``claims_when``; see the module docstring for the harness
    and the claims). Runs in float64.
    """
    from qmczoo.registry import entry, get_layer, layer_claims
    from qmczoo.testing.contract import kfac_block_types, random_configuration, random_rotation, to_float64
    from qmczoo.wavefunction import Wavefunction

    kind, e = entry(name)
    if kind != "layers":
        raise ValueError(f"{name!r} is an ansatz, not a layer: use qmczoo.testing.check_spec")
    layer = get_layer(name, e["slot"], options)
    fed_by = None
    if e.get("fed_by"):
        fed_by = get_layer(e["fed_by"], "orbitals")
    claims = {k: list(v or []) for k, v in layer_claims(name, options).items()}
    with jax.enable_x64(True):
        init, apply, system = layer_harness(layer, fed_by)
        R = jnp.asarray(system.positions, jnp.float64)
        r = random_configuration(jax.random.PRNGKey(seed), system, jnp.float64)
        params = to_float64(jax.jit(init)(jax.random.PRNGKey(seed + 1), r, R))
        f = jax.jit(apply)
        out = f(params, r, R)
        for leaf in _leaves(out):
            if not np.all(np.isfinite(leaf)):
                raise AssertionError(f"{name}: output is not finite at a random configuration")
        n_up = system.n_up
        slot = layer.slot
        equivariant = claims.get("equivariant", [])
        invariant = claims.get("invariant", [])
        for perm in _same_spin_permutations(system.n_up, system.n_down):
            moved = f(params, r[perm], R)
            if "permutation" in equivariant or "pair_permutation" in equivariant:
                expected = _permute_rows(out, perm, slot, n_up, pair="pair_permutation" in equivariant)
                _assert_close(moved, expected, f"not permutation-equivariant under {perm.tolist()}", name, atol)
            if "permutation" in invariant:
                _assert_close(moved, out, f"not permutation-invariant under {perm.tolist()}", name, atol)
            if "same_spin" in claims.get("antisymmetric", []):
                if float(moved[0]) != _parity(perm) * float(out[0]):
                    raise AssertionError(f"{name}: the same-spin permutation {perm.tolist()} (parity "
                                         f"{_parity(perm):+d}) did not multiply the sign by its parity")
                _assert_close(moved[1], out[1], f"log|psi| changed under {perm.tolist()}", name, atol)
        if "nuclear_permutation" in equivariant:
            if slot != "geometry_encoder":
                raise AssertionError(f"{name}: check_layer checks nuclear_permutation only for geometry encoders")
            perms = _identical_nuclei_permutations(system.charges)
            if not perms:
                raise AssertionError(f"{name}: the harness molecule has no identical nuclei to permute")
            for perm in perms:
                moved = f(params, r, R[perm])
                expected = out.replace(nuclei=out.nuclei[perm])
                _assert_close(moved, expected, f"not equivariant under the nuclear permutation {perm.tolist()}",
                              name, atol)
        if "translation" in invariant:
            shift = jnp.asarray([0.7, -1.3, 2.1])
            _assert_close(f(params, r + shift, R + shift), out, "not translation-invariant", name, atol)
        if "rotation" in invariant or "rotation" in equivariant:
            rot = jnp.asarray(random_rotation(seed))
            turned = f(params, r @ rot.T, R @ rot.T)
            if "rotation" in invariant:  # the invariant part of the output (all of it, or all but irreps)
                _assert_close(_without_irreps(turned), _without_irreps(out), "not rotation-invariant", name, atol)
            if "rotation" in equivariant:
                if getattr(out, "irreps", None) is None:
                    raise AssertionError(f"{name}: claims rotation equivariance but hands on no irreps")
                expected = out.irreps.transform_by_matrix(rot)  # Wigner-D matrices of rot
                _assert_close(turned.irreps.array, expected.array, "irreps not rotation-equivariant (Wigner D)",
                              name, atol)
        if "inversion" in invariant or "inversion" in equivariant:
            inverted = f(params, -r, -R)
            if "inversion" in invariant:
                _assert_close(_without_irreps(inverted), _without_irreps(out), "not inversion-invariant", name, atol)
            if "inversion" in equivariant:
                if getattr(out, "irreps", None) is None:
                    raise AssertionError(f"{name}: claims inversion equivariance but hands on no irreps")
                expected = out.irreps.transform_by_matrix(-jnp.eye(3, dtype=r.dtype))  # the parities
                _assert_close(inverted.irreps.array, expected.array, "irreps not inversion-equivariant (parity)",
                              name, atol)
        preserves = [op for op in claims.get("preserves", []) if op not in invariant]
        if preserves:
            _check_preserves(name, layer, fed_by, preserves, r, R, seed, atol)
        if "far" in claims.get("decays", []):
            far = r + 60.0
            near, gone = _leaves(out), _leaves(f(params, far, R))
            if any(np.max(np.abs(g)) > 1e-10 * max(1.0, np.max(np.abs(x))) for g, x in zip(gone, near)):
                raise AssertionError(f"{name}: does not decay: output 60 bohr away is not ~0")
        smooth = claims.get("smooth", [])
        scalar = lambda x: _scalar(apply(params, x, R))  # noqa: E731
        if "electron_nuclear" in smooth:
            slope = _radial_slope(scalar, r, lambda x: R[0], electron=0)
            if abs(slope) > 1e-3:
                raise AssertionError(f"{name}: not smooth at an electron–nuclear coalescence (radial slope {slope:.3g})")
        if "electron_electron" in smooth:
            slope = _radial_slope(scalar, r, lambda x: x[n_up], electron=0)
            if abs(slope) > 1e-3:
                raise AssertionError(f"{name}: not smooth at an electron–electron coalescence (radial slope {slope:.3g})")
        as_wf = Wavefunction(init=init, signed_log_psi=lambda p, x, y: (jnp.ones((), x.dtype), _log_of(apply(p, x, y))),
                             n_up=system.n_up, n_down=system.n_down, name=name)
        if claims.get("cusp"):
            from qmczoo.testing import cusps

            if "electron_nuclear" in claims["cusp"]:
                cusps.check_electron_nuclear_cusp(as_wf, params, r, R, np.asarray(system.cusp_charges))  # 0 at a pseudo-nucleus
            if "electron_electron" in claims["cusp"]:
                cusps.check_electron_electron_cusp(as_wf, params, r, R)
        own = [p for p in jax.tree_util.tree_leaves_with_path(params)
               if "harness_" not in jax.tree_util.keystr(p[0])]
        if own:
            naive = [path for path, block in kfac_block_types(as_wf, system, params).items()
                     if block == "NaiveDiagonal" and "harness_" not in path]
            if naive:
                raise AssertionError(f"{name}: parameters without proper KFAC curvature (NaiveDiagonal): "
                                     f"{', '.join(naive)}; register them with qmczoo.layers.curvature")


def _check_preserves(name: str, layer: Layer, fed_by, operations, r, R, seed: int, atol: float) -> None:
    """The ``preserves`` claim: with invariant inputs (:func:`layer_harness` ``invariant_inputs``)
    the output, but ``irreps``, is unchanged by each joint operation (rotation, inversion)."""
    from qmczoo.testing.contract import random_rotation, to_float64

    unknown = [op for op in operations if op not in ("rotation", "inversion")]
    if unknown:
        raise AssertionError(f"{name}: check_layer knows no preserves claim {unknown} (rotation, inversion)")
    init, apply, _ = layer_harness(layer, fed_by, invariant_inputs=True)
    params = to_float64(jax.jit(init)(jax.random.PRNGKey(seed + 2), r, R))
    f = jax.jit(apply)
    out = _without_irreps(f(params, r, R))
    matrices = {"rotation": jnp.asarray(random_rotation(seed + 3)), "inversion": -jnp.eye(3, dtype=r.dtype)}
    for op in operations:
        m = matrices[op]
        moved = _without_irreps(f(params, r @ m.T, R @ m.T))
        _assert_close(moved, out, f"claims to preserve {op} invariance, but with invariant inputs its output "
                      f"changed under the {op} (it reads a direction of its own)", name, atol)


def _without_irreps(out):
    """``out`` without its equivariant (rotating) part, if it hands one on."""
    return out.replace(irreps=None) if getattr(out, "irreps", None) is not None else out


def _log_of(out):
    """A layer output as the log|psi| of a test wavefunction: log|psi| of an antisymmetrizer,
    the value of a Jastrow, the Slater determinant of a baseline's orbitals, a fixed scalar
    function of anything else."""
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], jax.Array) and out[1].ndim == 0:
        return out[1]
    if isinstance(out, jax.Array) and out.ndim == 0:
        return out
    if isinstance(out, tuple) and len(out) == 2 and all(isinstance(x, jax.Array) and x.ndim == 2 for x in out):
        # a baseline's orbitals (up [n_up, P], down [n_down, P]): the Slater determinant of the
        # first n_s orbitals of each spin (so that its cusp claims can be checked)
        return sum(jnp.linalg.slogdet(x[:, : x.shape[0]])[1] for x in out if x.shape[0] > 0)
    return _scalar(out)
