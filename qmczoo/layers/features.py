"""Input features computed from electron positions ``r`` and nuclear positions ``R``.

Pure functions on ONE configuration (no batch axis): ``r`` is ``[N, 3]``, ``R`` is ``[M, 3]``.
Every feature is a function of differences of positions, so it is invariant under a common
translation of electrons and nuclei.
"""

from __future__ import annotations

import jax.numpy as jnp

from qmczoo.layers.slots import ElectronFeatures


def electron_nuclear(r: jnp.ndarray, R: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Electron–nuclear displacements and distances.

    Args:
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.

    Returns:
      ``(disp, dist)``: ``disp[i, I] = r_i - R_I`` with shape ``[N, M, 3]`` and
      ``dist[i, I] = |r_i - R_I|`` with shape ``[N, M, 1]``.
    """
    disp = r[:, None, :] - R[None, :, :]
    dist = jnp.linalg.norm(disp, axis=-1, keepdims=True)
    return disp, dist


def electron_electron(r: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Electron–electron displacements and distances, with a safe (zero) diagonal.

    The diagonal distance ``|r_i - r_i|`` is exactly zero but its derivative is kept finite
    (the norm of an exactly-zero vector has an undefined gradient).

    Args:
      r: electron positions ``[N, 3]``.

    Returns:
      ``(disp, dist)``: ``disp[i, j] = r_i - r_j`` with shape ``[N, N, 3]`` and
      ``dist[i, j] = |r_i - r_j|`` with shape ``[N, N, 1]``.
    """
    n = r.shape[0]
    disp = r[:, None, :] - r[None, :, :]
    eye = jnp.eye(n, dtype=r.dtype)[..., None]
    dist = jnp.linalg.norm(disp + eye, axis=-1, keepdims=True) * (1.0 - eye)
    return disp, dist


def log_rescale(disp: jnp.ndarray, dist: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Rescale displacements so that their length grows like ``log(1 + |x|)``.

    Keeps features of far-away electrons O(log r) instead of O(r), which some
    architectures prefer. Shapes are unchanged.
    """
    scale = jnp.log1p(dist) / jnp.where(dist > 0, dist, 1.0)
    return disp * scale, jnp.log1p(dist)


def ferminet_inputs(
    r: jnp.ndarray, R: jnp.ndarray, rescale: bool = False
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The FermiNet input streams.

    Args:
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      rescale: apply :func:`log_rescale` to the stream inputs (not to the returned
        raw distances, which envelopes need).

    Returns:
      ``(one, two, en_disp, en_dist)``: the one-electron stream input ``[N, 4 M]``
      (displacement and distance to every nucleus), the two-electron stream input
      ``[N, N, 4]``, and the raw electron–nuclear displacements ``[N, M, 3]`` and
      distances ``[N, M, 1]``.
    """
    f = ferminet_features(r, R, rescale)
    return f.one, f.two, f.en_disp, f.en_dist


def ferminet_features(r: jnp.ndarray, R: jnp.ndarray, rescale: bool = False) -> ElectronFeatures:
    """The features-slot filler ``ferminet_features``: FermiNet's streams and raw geometry.

    Args:
      r: electron positions ``[N, 3]``.
      R: nuclear positions ``[M, 3]``.
      rescale: apply :func:`log_rescale` to the stream inputs ``one``/``two`` (the raw
        displacements and distances are handed on unscaled).

    Returns:
      :class:`~qmczoo.layers.slots.ElectronFeatures` with ``one`` ``[N, 4M]`` and ``two``
      ``[N, N, 4]`` (displacements and distances).
    """
    en_disp, en_dist = electron_nuclear(r, R)
    ee_disp, ee_dist = electron_electron(r)
    d1, r1 = (log_rescale(en_disp, en_dist) if rescale else (en_disp, en_dist))
    d2, r2 = (log_rescale(ee_disp, ee_dist) if rescale else (ee_disp, ee_dist))
    one = jnp.concatenate([d1, r1], axis=-1).reshape(r.shape[0], -1)
    two = jnp.concatenate([d2, r2], axis=-1)
    return ElectronFeatures(one=one, two=two, en_disp=en_disp, en_dist=en_dist, ee_disp=ee_disp, ee_dist=ee_dist)
