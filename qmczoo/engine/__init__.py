"""The engine every ansatz shares, free of files and folders.

==================  ==============================================================
module              job
==================  ==============================================================
``sampler``         Metropolis–Hastings on |psi|^2 with an adaptive step size
``hamiltonian``     the local energy (folx forward Laplacian; the Hessian trace as reference)
``pseudopotential`` an effective core potential's local and nonlocal terms (random quadrature)
``loss``            the clipped, centred energy gradient (KFAC-ready)
``pretrain``        supervised pretraining of the orbitals to Hartree–Fock
``vmc``             the VMC step: KFAC (kfac-jax) or optax, the NaN guard, the monitor chain
``evaluate``        fixed-parameter sampling of the energy
``statistics``      reblocking
``states/``         several states at once: NES-VMC and the overlap penalty (``k`` copies of any ansatz)
``background``      one job on a thread beside the main one (compiling while pretraining)
``threads``         BLAS thread limits
==================  ==============================================================

Nothing here reads or writes a run folder: that is :mod:`qmczoo.runs`.
"""
