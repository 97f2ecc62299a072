"""An embedding that hands the input features on unchanged, for heads that want raw inputs
(e.g. the pair-product orbitals of DeepWF, Han, Zhang & E, J. Comput. Phys. 399, 108929, 2019)."""

from __future__ import annotations

import flax.linen as nn

from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import symmetric_inputs


class RawFeaturesEmbedding(nn.Module):
    """``h = features.one`` with its spin means and the spin means of ``features.two``.

    No parameters.

    Attributes:
      n_up: number of spin-up electrons (rows ``[:n_up]``).

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures` with ``one`` ``[N, F1]`` and
      ``two`` ``[N, N, F2]``.

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput`: ``h`` ``[N, F1]`` (= ``one``), ``shared``
      the spin means of ``one`` concatenated ``[c F1]`` (``c`` non-empty spin channels),
      ``pair`` the spin means of ``two`` over the second electron ``[N, c F2]``.
    """

    n_up: int

    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        return EmbeddingOutput(*symmetric_inputs(features.one, features.two, self.n_up))
