"""Several states of one molecule at once: NES-VMC and the overlap penalty, for any ansatz.

``k`` states are ``k`` copies of an ansatz's parameters (:func:`qmczoo.wavefunction.states`);
a walker holds ``k`` electron sets. Nothing here asks which ansatz it runs.

==================  ==============================================================
module              job
==================  ==============================================================
``total``           walkers of ``k`` electron sets; the state matrix ``psi_i(x^j)``; NES's
                    total ansatz ``det A`` and the penalty method's product of states
``local_energy``    the ``k x k`` local-energy matrix ``A^-1 (HA)``; local ``S^2``
``loss``            NES-VMC's trace loss and the penalty loss (clipped, centred, KFAC-ready)
``pretrain``        each state pretrained to its own Hartree–Fock determinant
``vmc``             :class:`StatesVMC`, the VMC step for ``k`` states; :func:`make_vmc`
``evaluate``        fixed-parameter evaluation: energies, errors, ``<S^2>``, overlaps
==================  ==============================================================
"""

from qmczoo.engine.states.vmc import StatesVMC, make_vmc, state_energies

__all__ = ["StatesVMC", "make_vmc", "state_energies"]
