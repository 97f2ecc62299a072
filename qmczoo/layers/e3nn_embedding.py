"""SE(3)-equivariant message passing over electrons on e3nn-jax (tensor-field-network style).

Each electron carries features as irreps of O(3) (an ``e3nn.IrrepsArray`` of ``channels``
copies of ``0e + 1o + ... + lmax``, natural parity). They start as messages from the nuclei:
radial filters of ``|r_i - R_I|`` (times a learned vector of the nucleus' charge) weighting the
bounded harmonics ``S_l(x)`` of the displacements ``x = r_i - R_I`` (see :func:`bounded_harmonics`),
plus a learned vector of the electron's spin. Each interaction layer then sends electron ``i``
the tensor products of every other electron's features with the bounded harmonics of
``r_i - r_j``, weighted channel by channel by radial filters of ``|r_i - r_j|`` (one for
same-spin pairs, one for opposite-spin pairs), and adds a gated equivariant linear map of
``[h_i, message_i]`` to ``h_i``.

Bounded features. ``S_l(x) = Y_l(x / |x|) (|x|^2 / (|x|^2 + s^2))^(l/2)``: the spherical harmonic
of the direction (component normalisation, so each component is O(1)), times a radial factor
that rises like ``(|x| / s)^l`` from the coalescence point and tends to 1 far away. Written as
the solid harmonic ``|x|^l Y_l`` (a polynomial of ``x``) divided by ``(|x|^2 + s^2)^(l/2)`` (a
smooth function of ``|x|^2``), it is smooth everywhere, also at ``x = 0`` where the direction
alone is not defined. Every radial filter is a network of an even radial basis of ``|x|``
(bounded Gaussians) times the smooth cutoff ``max(0, 1 - |x|^2/c^2)^3`` (as SchNet's filters),
so every message is bounded and vanishes smoothly beyond ``cutoff``; the gated updates keep
bounded inputs bounded. (Before issue 28 the harmonics were the unnormalised solid harmonics and
the filters had no cutoff: features grew like ``|x|^l`` with distance, and faster through the
tensor products of several layers.)

Readout (``readout``), the choice that decides what the orbitals can be:

* ``"components"`` (default): ``h`` is the raw irreps array, every component of every channel,
  i.e. the equivariant features *projected on the fixed lab axes*. A linear orbital head on it
  makes each orbital ``phi_j(r_i) = sum_l w_jl . h_il`` a scalar part plus the ``l >= 1``
  features contracted with learned lab-frame coefficient vectors ``w_jl``. The layers stay
  exactly equivariant; only this last contraction picks directions, so ``psi`` is not
  invariant: rotating electrons and nuclei together gives the same ``psi`` as rotating the
  learned vectors ``w_jl`` back (by the Wigner-D matrices). This is how FermiNet itself breaks
  rotation invariance (its one-electron stream sees raw displacement vectors ``r_i - R_I``), and
  it is what lets ``psi`` transform as a state with ``L > 0`` or odd parity does (the p
  electron of boron: ``phi(r) ~ w . S_1(r - R) f(|r - R|)``).
* ``"invariant"``: ``h`` is the scalar channels and the squared norms of the ``l >= 1`` channels
  (invariant under rotations and inversion). With the isotropic envelope and FermiNet's linear
  head, ``psi`` is then invariant under every rotation and inversion of the electrons about an
  atom: only even ``L = 0`` states (and ``Sigma+`` states of linear molecules) can be
  represented. The registry records this as a claim of this option
  (``claims_when: readout=invariant``), and ``qmczoo info`` / ``train`` say what it imposes.

``lmax = 0`` leaves only scalars, so both readouts are invariant.

The full equivariant features are handed on as ``EmbeddingOutput.irreps`` (for the Wigner-D
check and for heads that want them); ``shared`` holds the spin means of ``h``.

Smoothness and cusps: bounded harmonics and the radial filters are smooth functions of the
displacement, so the embedding is smooth at electron-electron and electron-nuclear coalescence
and adds no cusp (unlike FermiNet's inputs, which hold the kinked distances ``|r_i - R_I|`` and
``|r_i - r_j|``). The electron-electron cusp is then a Jastrow's job (``ee_cusp_jastrow``, exact),
and the electron-nuclear one is left to the envelopes' kinks ``exp(-sigma |r - R|)`` (a slope
``-sigma`` per orbital, where Kato asks ``-Z`` of every orbital that does not vanish at the
nucleus) and a Jastrow: on boron (``small``, 500 pretraining and 200 KFAC steps) FermiNet with
this embedding had a median local-energy variance of 29 Ha² over the last 100 steps, 28 with
``jastrow=ee_cusp_jastrow`` and 7 with ``jastrow=cusp_jastrow`` (both cusps; FermiNet's own
embedding: 4). Use ``--set jastrow=cusp_jastrow`` with it (docs/benchmarks.md).

Every parameter has a proper KFAC block: the equivariant linear map is a registered dense map
per irrep acting on the channel axis (:class:`IrrepsDense`), filters are registered dense maps.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.activations import activation
from qmczoo.layers.curvature import Dense
from qmczoo.layers.pair_streams import split_pairs
from qmczoo.layers.schnet_embedding import (_Filter, even_radial_basis, nucleus_vectors, smooth_cutoff,
                                            spin_pair_filters, spin_vectors, squared_distance, without_self)
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import spin_means

READOUTS = ("components", "invariant")


def hidden_irreps(channels: int, lmax: int) -> e3nn.Irreps:
    """``channels x (0e + 1o + 2e + ...)`` up to ``lmax`` (the parities of spherical harmonics)."""
    return e3nn.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


def bounded_harmonics(lmax: int, disp: jnp.ndarray, length: float) -> e3nn.IrrepsArray:
    """``S_l(x) = |x|^l Y_l(x/|x|) / (|x|^2 + s^2)^(l/2)`` for ``l = 0..lmax``.

    Args:
      lmax: highest degree.
      disp: displacements ``x`` ``[..., 3]``.
      length: ``s`` (bohr), where the radial factor ``(|x|^2 / (|x|^2 + s^2))^(l/2)`` turns from
        ``(|x|/s)^l`` (near coalescence) to 1 (far away).

    Returns:
      ``e3nn.IrrepsArray`` ``[..., (lmax + 1)^2]`` of irreps ``0e + 1o + 2e + ...``, component
      normalisation (``sum_m S_lm^2 -> 2l + 1`` far away). Smooth in ``x`` (a polynomial over a
      smooth positive function of ``|x|^2``), bounded, equivariant under O(3).
    """
    sh = e3nn.spherical_harmonics(e3nn.Irreps.spherical_harmonics(lmax), disp, normalize=False,
                                  normalization="component")
    denominator = squared_distance(disp) + length**2  # [..., 1]
    chunks = [chunk * (denominator[..., None] ** (-0.5 * mul_ir.ir.l))
              for mul_ir, chunk in zip(sh.irreps, sh.chunks)]
    return e3nn.from_chunks(sh.irreps, chunks, sh.shape[:-1], sh.dtype)


def scale_channels(x: e3nn.IrrepsArray, weights: jnp.ndarray) -> e3nn.IrrepsArray:
    """Multiply each irrep copy (channel) of ``x`` ``[..., dim]`` by a scalar: ``weights``
    ``[..., x.irreps.num_irreps]``, in the order of ``x.irreps``. Equivariant for invariant weights."""
    chunks, start = [], 0
    for mul_ir, chunk in zip(x.irreps, x.chunks):
        w = weights[..., start:start + mul_ir.mul, None]
        chunks.append(None if chunk is None else chunk * w)
        start += mul_ir.mul
    return e3nn.from_chunks(x.irreps, chunks, x.shape[:-1], x.dtype)


def invariant_readout(h: e3nn.IrrepsArray) -> jnp.ndarray:
    """The scalar channels of ``h`` ``[..., dim]`` and the squared norms of its ``l >= 1``
    channels: ``[..., num_irreps]``, invariant under rotations and inversion."""
    scalars = h.filter(keep="0e").array
    norms = [jnp.sum(jnp.square(chunk), axis=-1) for mul_ir, chunk in zip(h.irreps, h.chunks)
             if mul_ir.ir.l > 0]
    return jnp.concatenate([scalars, *norms], axis=-1)


class IrrepsDense(nn.Module):
    """Equivariant linear map between irreps: per irrep, a registered dense map of the channels.

    Attributes:
      irreps_out: output irreps (each irrep once, e.g. ``"16x0e + 16x1o"``); an output irrep
        absent from the input is zero.

    Call: ``x`` ``e3nn.IrrepsArray`` ``[..., dim_in]`` -> ``[..., dim_out]``. Only scalar
    (``0e``) outputs get a bias (a bias on another irrep would break equivariance). Each map
    is a :class:`~qmczoo.layers.curvature.Dense` over the channel axis, the ``2l+1``
    components acting as extra rows of a repeated-dense KFAC block.
    """

    irreps_out: str

    @nn.compact
    def __call__(self, x: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        x = x.regroup()
        out_irreps = e3nn.Irreps(self.irreps_out)
        chunks = []
        for mul_ir in out_irreps:
            found = [(m, c) for m, c in zip(x.irreps, x.chunks) if m.ir == mul_ir.ir and c is not None]
            if not found:
                chunks.append(None)
                continue
            (m_in, chunk), = found
            y = Dense(mul_ir.mul, use_bias=mul_ir.ir == e3nn.Irrep("0e"), name=f"linear_{mul_ir.ir}")(
                jnp.swapaxes(chunk, -1, -2))  # [..., 2l+1, mul_in] -> [..., 2l+1, mul_out]
            chunks.append(jnp.swapaxes(y, -1, -2))
        return e3nn.from_chunks(out_irreps, chunks, x.shape[:-1], x.dtype)


class E3nnEmbedding(nn.Module):
    """Equivariant electron embedding (see the module docstring).

    Attributes:
      n_up, n_down: electrons of each spin (rows ``[:n_up]`` are spin up).
      charges: nuclear charges ``[M]`` (nuclei of one element share a learned vector).
      layers: interaction layers.
      channels: copies of each irrep.
      lmax: highest angular momentum of the features and of the harmonics.
      n_rbf: radial basis functions (even in the distance).
      cutoff: largest centre of the radial basis and the distance (bohr) beyond which every
        filter vanishes (smoothly).
      length: ``s`` of :func:`bounded_harmonics` (bohr).
      filter_width: hidden width of the radial filters.
      activation: nonlinearity of the filters and of the gated scalars.
      readout: ``"components"`` (the raw irreps components: ``psi`` can carry any symmetry) or
        ``"invariant"`` (scalars and squared norms: an invariant ``h``).

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures`; uses ``en_disp``
      ``[N, M, 3]`` and ``ee_disp`` ``[N, N, 3]`` (vectors, not flattened).

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput`: ``h`` ``[N, channels (lmax + 1)^2]``
      (``components``) or ``[N, channels (lmax + 1)]`` (``invariant``), ``shared`` the spin
      means of ``h`` concatenated, ``irreps`` the final equivariant features
      ``[N, channels (lmax + 1)^2]``.
    """

    n_up: int
    n_down: int
    charges: tuple
    layers: int = 2
    channels: int = 16
    lmax: int = 1
    n_rbf: int = 12
    cutoff: float = 8.0
    length: float = 1.0
    filter_width: int = 32
    activation: str = "silu"
    readout: str = "components"

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        if self.readout not in READOUTS:
            raise ValueError(f"E3nnEmbedding: readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        en_disp, ee_disp = features.en_disp, features.ee_disp
        n, m = en_disp.shape[0], en_disp.shape[1]
        c = self.channels
        hidden = hidden_irreps(c, self.lmax)
        act = activation(self.activation)

        # messages from the nuclei: sum_I filter_l(|r_iI|) cut(|r_iI|) * nucleus_I * S_l(r_iI)
        en2 = squared_distance(en_disp)
        en_sh = bounded_harmonics(self.lmax, en_disp, self.length)
        en_w = _Filter(self.filter_width, c * (self.lmax + 1), m, self.activation, name="nuclear_filter")(
            even_radial_basis(en2, self.n_rbf, self.cutoff)) * smooth_cutoff(en2, self.cutoff)
        en_w = en_w * nucleus_vectors(c * (self.lmax + 1), self.charges, en2, name="nucleus")[None]
        chunks = []
        for l, sh in enumerate(en_sh.chunks):  # sh [N, M, 1, 2l+1]
            w = en_w[..., l * c:(l + 1) * c, None]  # [N, M, c, 1]
            chunks.append(jnp.sum(w * sh, axis=1))
        chunks[0] = chunks[0] + spin_vectors(c, self.n_up, self.n_down, en2, name="spin")[..., None]
        h = e3nn.from_chunks(hidden, chunks, (n,), en_disp.dtype)

        # electron-electron interactions
        ee2 = squared_distance(ee_disp)
        ee_sh = bounded_harmonics(self.lmax, ee_disp, self.length)
        ee_basis = split_pairs(even_radial_basis(ee2, self.n_rbf, self.cutoff), self.n_up)
        mask = without_self(n, en_disp.dtype) * smooth_cutoff(ee2, self.cutoff)
        n_gates = sum(mul for mul, ir in hidden if ir.l > 0)
        update_irreps = e3nn.Irreps(f"{c + n_gates}x0e") + hidden.filter(drop="0e")
        for layer in range(self.layers):
            h_j = e3nn.IrrepsArray(h.irreps, jnp.broadcast_to(h.array[None], (n, n, h.irreps.dim)))
            tp = e3nn.tensor_product(h_j, ee_sh, filter_ir_out=[ir for _, ir in hidden])
            k = tp.irreps.num_irreps
            weights = spin_pair_filters(
                ee_basis, self.n_up, self.n_down, k,
                lambda kind: _Filter(self.filter_width, k, n, self.activation, name=f"{kind}_filter_{layer}")) * mask
            message = scale_channels(tp, weights)
            message = e3nn.IrrepsArray(message.irreps, jnp.sum(message.array, axis=1))
            z = IrrepsDense(str(update_irreps), name=f"update_{layer}")(e3nn.concatenate([h, message]))
            h = h + e3nn.gate(z, even_act=act, normalize_act=False)

        out = h.array if self.readout == "components" else invariant_readout(h)
        return EmbeddingOutput(h=out, shared=jnp.concatenate(spin_means(out, self.n_up), axis=-1), irreps=h)
