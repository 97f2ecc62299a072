"""Pair-product ansätze: the DeepWF of Han, Zhang & E (J. Comput. Phys. 2019) and the pair
product over learned equivariant embeddings of Pang, Yan & Lin (arXiv:2205.13205, 2022).

psi = exp(J) sum_k prod_spin [prod_i chi_k(x_i) prod_{i<j} phi_k(x_i, x_j)], with
phi_k(a, b) = -phi_k(b, a) by construction (``pair_orbitals`` and ``pair_product``; see
``docs/pair_product.md`` for its limits). Both registry entries are this model: DeepWF feeds
the pair function raw one-electron features (``raw_embedding``), the pair-product ansatz a
FermiNet embedding. The slots are FermiNet's; only the orbital head and the antisymmetrizer
differ.
"""

from __future__ import annotations

from qmczoo.layers.filler import Layer
from qmczoo.models.ferminet import FermiNet, cusp_charges_of


class PairProductAnsatz(FermiNet):
    """FermiNet's slot wiring with pair matrices in place of orbital matrices.

    The pair matrices are not orbitals, so the ansatz offers no ``orbitals`` method and
    Hartree–Fock pretraining is skipped (with a warning) for it.
    """

    orbitals = None


def make_pair_product(system, orbitals: Layer, **options) -> PairProductAnsatz:
    """Factory used by the registry (``deepwf`` and ``pair_product``); envelopes start from ones."""
    return PairProductAnsatz(n_up=system.n_up, n_down=system.n_down,
                             charges=tuple(float(z) for z in system.charges), orbital_head=orbitals,
                             cusp_charges=cusp_charges_of(system), **options)
