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

Deviation from Ma et al.: they also optimise the orbital's value at the nucleus (a shift of
``s(0)``) to flatten the one-electron local energy; deepqmc leaves that shift at zero (a
trainable parameter there); here it stays zero and is not trained.
"""

from __future__ import annotations

import dataclasses

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


def fit_cusp(basis: GaussianBasis, coeff, charges, R: jnp.ndarray, scale: float = 1.0, eps: float = EPS) -> CuspFit:
    """The cusp-corrected s part of every orbital (columns of ``coeff [n_ao, P]``) at every nucleus.

    Args:
      basis: the AO basis; ``coeff``: orbital coefficients ``[n_ao, P]``.
      charges: ``Z_I`` ``[M]``; ``R``: nuclear positions ``[M, 3]``.
      scale: ``r_c = scale / Z`` (before the overlap reduction); ``eps``: see :data:`EPS`.
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
