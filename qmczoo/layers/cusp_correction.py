"""Nuclear cusp correction of Gaussian molecular orbitals (Ma, Towler, Drummond & Needs 2005).

Gaussian orbitals have zero slope at a nucleus, so a Slater determinant of them misses Kato's
electron–nuclear cusp and its local energy diverges there like ``-Z / r``. Following Ma et
al. (J. Chem. Phys. 122, 224322, 2005), as PauliNet does, each molecular orbital ``phi_mu``
is split, around every nucleus ``I``, into its *s part* ``s(r)`` (the s-type basis functions
centred on ``I``, a function of ``r = |r - R_I|`` only) and the rest. Inside a sphere of radius
``r_c`` the s part is replaced by

    s~(r) = C + sign * exp(p(r)),   p(r) = a0 + a1 r + a2 r^2 + a3 r^3 + a4 r^4,

whose five coefficients make ``s~`` agree with ``s`` in value, slope and curvature at ``r_c``
(so the orbital and its local energy stay continuous), take ``s``'s value at the nucleus, and
give the whole orbital Kato's slope there: ``d phi~/dr (0) = -Z phi(R_I)``. The constant ``C``
keeps ``s - C`` of one sign on ``[0, r_c]`` so that its logarithm exists (Ma et al.'s choice:
``C = 2 s(0) - s(r_c)`` when ``s`` grows in magnitude towards ``r_c`` without changing sign,
else ``C = 2 s(r_c) - s(0)``). An orbital with no s part on ``I`` (``|s(0)| <= eps``: a p or d
orbital there) is left alone. ``r_c = scale / Z_I`` (deepqmc's rule, ``scale = 1``), reduced
where two spheres would overlap.

Everything here is pure ``jnp``: the fit is computed from the nuclear positions ``R`` at each
call (it depends on ``R`` only, so under ``vmap`` over walkers it is computed once), and
``jax.grad``, ``jax.hessian`` and folx's forward Laplacian go through the corrected orbitals.
The inner branch is evaluated at ``min(r, r_c)`` so that nothing overflows outside the sphere.

**The value at the nucleus.** The five conditions leave one number free: the corrected s part's
value at the nucleus, ``s(0) (1 + Delta)``. Left at the Gaussians' value (``Delta = 0``,
deepqmc's starting point, where it is a trainable parameter), the effective one-electron local
energy ``-1/2 lap(phi)/phi - Z/r`` of a 1s-like orbital dips by about ``0.4 Z^2`` Ha between
``r_c`` and the nucleus (Li: 3.9 Ha, N: 18.6 Ha). Ma et al. choose ``Delta`` so that this curve
follows an ideal one; :func:`flattest_value_shifts` does the same with a flat ideal curve (the
value at ``r_c``), which a shift of two or three per cent of ``s(0)`` achieves to within 0.6 Ha
(Li) and 3.2 Ha (N). The shifts are computed once, on the host in float64, at the reference's
own geometry (they are relative to ``s(0)``, so they move with the molecule) and stay fixed.
PauliNet leaves them at zero by default (``baseline.flatten``: measured at initialisation, Li
30 mHa lower with them, LiH 10 mHa higher, within 1.5 error bars; ``docs/paulinet.md``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.gaussian_orbitals import GaussianBasis, eval_atomic_orbitals

EPS = 1e-6
"""An orbital whose s part at a nucleus is at most this (absolute) has no s part to correct there."""


@dataclasses.dataclass(frozen=True, eq=False)
class SParts:
    """Which AOs are s functions on which nucleus, and their radial data (numpy, static).

    Attributes:
      mask: ``[M, n_ao]`` 1 where AO ``a`` is an s function centred on nucleus ``I``.
      harmonic: the constant real solid harmonic of an s function (pyscf's ``cart2sph(0)``).
    """

    mask: np.ndarray
    harmonic: float

    @classmethod
    def of(cls, basis: GaussianBasis) -> SParts:
        s_index = basis.ao_angular % basis.cart2sph.shape[1] == 0  # harmonic 0 of an atom is its s
        mask = np.zeros((basis.n_atoms, basis.n_ao))
        mask[basis.ao_atom[s_index], np.nonzero(s_index)[0]] = 1.0
        return cls(mask=mask, harmonic=float(basis.cart2sph[0, 0]))


def cusp_radii(charges, R: jnp.ndarray, scale: float = 1.0) -> jnp.ndarray:
    """``r_c [M]``: ``scale / Z_I``, each shrunk by ``min_J d_IJ / (r_c,I + r_c,J)`` where below 1
    (two spheres never overlap). ``R`` ``[M, 3]``."""
    z = jnp.asarray(charges, R.dtype)
    rc = scale / z
    m = R.shape[0]
    if m == 1:
        return rc
    eye = jnp.eye(m, dtype=R.dtype)
    d = jnp.linalg.norm(R[:, None] - R[None] + eye[..., None], axis=-1)  # eye: no zero vector on the diagonal
    ratio = jnp.where(eye > 0, jnp.inf, d / (rc[:, None] + rc[None]))
    return rc * jnp.minimum(1.0, jnp.min(ratio, axis=1))


def _radial_derivatives(basis: GaussianBasis, d: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Every radial function, its first and second derivative at distance ``d[I]`` from nucleus ``I``.

    Returns three ``[M, n_radial]`` arrays (only the functions on ``I`` are used for row ``I``).
    """
    alpha = jnp.asarray(basis.primitive_exponent, d.dtype)[None]  # [1, P]
    d = d[:, None]  # [M, 1]
    g = jnp.exp(-alpha * d**2)
    c = jnp.asarray(basis.contraction, d.dtype)  # [P, K]
    return g @ c, (-2.0 * alpha * d * g) @ c, ((4.0 * alpha**2 * d**2 - 2.0 * alpha) * g) @ c


@dataclasses.dataclass(frozen=True)
class CuspFit:
    """The corrected s parts, ``[M, P]`` each (nucleus ``I``, orbital ``mu``).

    Attributes:
      shift: ``C``; sign: ``sign(s(0))``; poly: ``[5, M, P]`` coefficients ``a0 .. a4``;
      corrected: 1 where the orbital has an s part on that nucleus; rc: ``[M]`` radii.
    """

    shift: jnp.ndarray
    sign: jnp.ndarray
    poly: jnp.ndarray
    corrected: jnp.ndarray
    rc: jnp.ndarray


def fit_cusp(basis: GaussianBasis, coeff, charges, R: jnp.ndarray, scale: float = 1.0, eps: float = EPS,
             value_shift=0.0) -> CuspFit:
    """The cusp-corrected s part of every orbital (columns of ``coeff [n_ao, P]``) at every nucleus.

    Args:
      basis: the AO basis; ``coeff``: orbital coefficients ``[n_ao, P]``.
      charges: ``Z_I`` ``[M]``; ``R``: nuclear positions ``[M, 3]``.
      scale: ``r_c = scale / Z`` (before the overlap reduction); ``eps``: see :data:`EPS`.
      value_shift: ``Delta`` (scalar or ``[M, P]``): the corrected s part takes the value
        ``s(0) (1 + Delta)`` at the nucleus (Ma et al.'s free parameter; deepqmc's ``shifts``).
    """
    dtype = R.dtype
    parts = SParts.of(basis)
    coeff = jnp.asarray(coeff, dtype)
    z = jnp.asarray(charges, dtype)[:, None]  # [M, 1]
    rc = cusp_radii(charges, R, scale)
    s_coeff = jnp.asarray(parts.mask, dtype)[:, :, None] * coeff[None]  # [M, n_ao, P]: s part of each orbital on I

    def s_part(radial):  # radial [M, n_radial] at each nucleus's own distance -> [M, P]
        ao = radial[:, basis.ao_radial] * parts.harmonic  # [M, n_ao] (as s functions)
        return jnp.einsum("ma,map->mp", ao, s_coeff)

    s0 = s_part(_radial_derivatives(basis, jnp.zeros_like(rc))[0])
    value, slope, curvature = (s_part(x) for x in _radial_derivatives(basis, rc))
    phi_at_nuclei = eval_atomic_orbitals(basis, R[:, None] - R[None]) @ coeff  # [M, P]: whole orbital at R_I
    corrected = jnp.abs(s0) > eps
    value_shift = jnp.asarray(value_shift, dtype)
    phi_at_nuclei = phi_at_nuclei + s0 * value_shift  # the orbital at R_I moves with its s part
    s0 = s0 * (1.0 + value_shift)
    # placeholders where nothing is corrected, so that no NaN enters even an unused branch
    s0 = jnp.where(corrected, s0, 1.0)
    value = jnp.where(corrected, value, 0.5)
    slope = jnp.where(corrected, slope, 0.0)
    curvature = jnp.where(corrected, curvature, 0.0)
    phi_at_nuclei = jnp.where(corrected, phi_at_nuclei, 1.0)
    grows = (jnp.sign(s0) == jnp.sign(value)) & (jnp.abs(s0) < jnp.abs(value))
    shift = jnp.where(grows, 2.0 * s0 - value, 2.0 * value - s0)
    sign = jnp.sign(s0)
    # p(0), p'(0) from the nucleus; p(rc), p'(rc), p''(rc) from matching exp(p) to |s - C| at rc
    a0 = jnp.log(jnp.abs(s0 - shift))
    a1 = -z * phi_at_nuclei / (s0 - shift)
    p_rc = jnp.log(jnp.abs(value - shift))
    dp_rc = slope / (value - shift)
    d2p_rc = curvature / (value - shift) - dp_rc**2
    # a2 r^2 + a3 r^3 + a4 r^4 (u, v, w in units of rc) matches what a0 + a1 r leaves at rc
    r = rc[:, None]
    left = p_rc - a0 - a1 * r  # u + v + w
    slope_left = (dp_rc - a1) * r  # 2u + 3v + 4w
    curve_left = d2p_rc * r**2  # 2u + 6v + 12w
    w = (curve_left - 4.0 * slope_left + 6.0 * left) / 2.0
    v = 5.0 * slope_left - 8.0 * left - curve_left
    u = left - v - w
    poly = jnp.stack([a0, a1, u / r**2, v / r**3, w / r**4])
    return CuspFit(shift=shift, sign=sign, poly=poly, corrected=corrected, rc=rc)


def corrected_orbitals(basis: GaussianBasis, coeff, fit: CuspFit, ao: jnp.ndarray, en_dist: jnp.ndarray) -> jnp.ndarray:
    """Orbitals with the cusp correction, at the electrons.

    Args:
      basis: the AO basis; ``coeff``: orbital coefficients ``[n_ao, P]``; ``fit``: from :func:`fit_cusp`.
      ao: the AOs at the electrons ``[N, n_ao]`` (:func:`~qmczoo.layers.gaussian_orbitals.eval_atomic_orbitals`).
      en_dist: electron–nuclear distances ``[N, M]``.

    Returns:
      ``[N, P]``: orbital ``mu`` at electron ``i``, its s part on a nucleus replaced inside ``r_c``.
    """
    dtype = ao.dtype
    parts = SParts.of(basis)
    coeff = jnp.asarray(coeff, dtype)
    phi = ao @ coeff  # [N, P]
    s_now = jnp.einsum("na,ma,ap->nmp", ao, jnp.asarray(parts.mask, dtype), coeff)  # [N, M, P] s part on I
    inside = en_dist < fit.rc[None]  # [N, M]
    r = jnp.minimum(en_dist, fit.rc[None])[..., None]  # [N, M, 1]: the polynomial never runs past rc
    a = fit.poly[:, None]  # [5, 1, M, P]
    p = a[0] + r * (a[1] + r * (a[2] + r * (a[3] + r * a[4])))
    replaced = fit.shift[None] + fit.sign[None] * jnp.exp(p)
    use = inside[..., None] & fit.corrected[None]
    return phi + jnp.sum(jnp.where(use, replaced - s_now, 0.0), axis=1)


def _effective_local_energy(basis: GaussianBasis, coeff, charges, R, scale, nucleus: int, value_shift, radii, dirs):
    """``[radii, P]``: ``-1/2 lap<phi~>/<phi~> - Z/r`` of every corrected orbital at distances
    ``radii`` from ``nucleus``, ``<phi~>(r)`` the orbital's mean over the directions ``dirs``
    (antipodal pairs: the parts odd about the nucleus drop out). The Laplacian of a spherical
    mean is ``f'' + 2 f'/r``, taken with two forward derivatives in ``r``."""
    fit = fit_cusp(basis, coeff, charges, R, scale, value_shift=value_shift)

    def mean(r):  # scalar -> [P]
        disp = R[nucleus][None] + r * dirs  # [d, 3] points
        disp = disp[:, None, :] - R[None]
        phi = corrected_orbitals(basis, coeff, fit, eval_atomic_orbitals(basis, disp), jnp.linalg.norm(disp, axis=-1))
        return phi.mean(0)

    def derivatives(r):
        def slope(x):
            return jax.jvp(mean, (x,), (jnp.ones_like(x),))[1]

        f, df = jax.jvp(mean, (r,), (jnp.ones_like(r),))
        return f, df, jax.jvp(slope, (r,), (jnp.ones_like(r),))[1]

    f, df, d2f = jax.vmap(derivatives)(radii)
    return -0.5 * (d2f + 2.0 * df / radii[:, None]) / f - charges[nucleus] / radii[:, None]


_SHIFTS: dict[tuple, tuple] = {}


def flattest_value_shifts(basis: GaussianBasis, coeff, charges, R, scale: float = 1.0, eps: float = EPS,
                          span: float = 0.25) -> np.ndarray:
    """``Delta [M, P]`` that flattens each corrected orbital's effective local energy inside ``r_c``.

    For every nucleus ``I`` and orbital ``mu`` of that atom (its s part is at least half its value
    at ``R_I``, and that value at least a fifth of its largest value at any nucleus), ``Delta`` in ``[-span, span]``
    minimises ``max_r |E(r) - E(r_c)|`` over 16 radii in ``(0, r_c]``, ``E`` the effective local
    energy of the orbital's spherical mean about ``R_I`` (a grid of 21 values, then 11 finer
    ones around the best), kept where it at least halves the deviation of ``Delta = 0`` and lies
    inside the range; elsewhere ``Delta = 0``. Host-side, float64, cached by the identity
    of ``coeff``; ``R`` ``[M, 3]`` is the geometry the orbitals were computed at (numpy).
    """
    key = (id(coeff), id(basis), float(scale), float(span))
    hit = _SHIFTS.get(key)
    if hit is not None and hit[0] is coeff and hit[1] is basis:
        return hit[2]
    # concrete numbers even when called while a model is traced (under jit, vmap or folx)
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        R64 = jnp.asarray(np.asarray(R, dtype=np.float64))
        charges64 = jnp.asarray(np.asarray(charges, dtype=np.float64))
        coeff64 = jnp.asarray(np.asarray(coeff, dtype=np.float64))
        rc = np.asarray(cusp_radii(charges64, R64, scale))
        parts = SParts.of(basis)
        ao_at_nuclei = np.asarray(eval_atomic_orbitals(basis, R64[:, None] - R64[None]))  # [M, n_ao]
        s0 = np.einsum("ma,ma,ap->mp", ao_at_nuclei, parts.mask, np.asarray(coeff64))
        phi0 = ao_at_nuclei @ np.asarray(coeff64)
        # an orbital of that atom: its s part there dominates, and it is not a tail of another atom's
        own = ((np.abs(s0) > eps) & (np.abs(s0) >= 0.5 * np.abs(phi0))
               & (np.abs(phi0) >= 0.2 * np.abs(phi0).max(axis=0, keepdims=True)))  # [M, P]
        z = np.linspace(-1.0, 1.0, 7)[:, None]  # 7 directions and their antipodes
        azimuth = np.pi * (1.0 + 5.0**0.5) * np.arange(7)[:, None]
        half = np.concatenate([np.sqrt(1 - z**2) * np.cos(azimuth), np.sqrt(1 - z**2) * np.sin(azimuth), z], axis=1)
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        dirs = jnp.asarray(np.concatenate([half, -half]))
        shifts = np.zeros(own.shape)
        for nucleus in np.nonzero(own.any(axis=1))[0]:
            radii = jnp.asarray(rc[nucleus] * np.linspace(1.0 / 16, 1.0, 16))
            energy = jax.jit(jax.vmap(lambda d, n=int(nucleus): _effective_local_energy(
                basis, coeff64, charges64, R64, scale, n, d, radii, dirs)))
            coarse = np.linspace(-span, span, 21)
            grids = [np.broadcast_to(coarse[:, None], (len(coarse), own.shape[1]))]
            best, at_zero = None, None
            for stage in range(2):
                if stage == 1:  # refine around each orbital's best
                    step = coarse[1] - coarse[0]
                    grids.append(best[None, :] + np.linspace(-step, step, 11)[:, None])
                grid = grids[-1]
                shift = np.zeros((len(grid),) + own.shape)
                shift[:, nucleus] = grid
                e = np.asarray(energy(jnp.asarray(shift)))  # [G, r, P]
                deviation = np.max(np.abs(e - e[:, -1:]), axis=1)  # [G, P]
                deviation = np.where(np.isfinite(deviation), deviation, np.inf)
                if stage == 0:
                    at_zero = deviation[len(coarse) // 2]
                best = grid[np.argmin(deviation, axis=0), np.arange(grid.shape[1])]
                least = deviation.min(axis=0)
            # keep a shift only where it clearly helps and lies inside the range searched
            useful = own[nucleus] & (least < 0.5 * at_zero) & (np.abs(best) < span)
            shifts[nucleus] = np.where(useful, best, 0.0)
    _SHIFTS[key] = (coeff, basis, shifts)
    return shifts
