"""Chemistry: molecules and what pyscf tells about them, free of networks and of run folders.

==================  ==============================================================
module              job
==================  ==============================================================
``systems``         molecules from a name, an xyz file or string, an atom list or a pyscf ``Mole``
``ecp``             effective core potentials: valence-only systems, the matching basis
``hartree_fock``    UHF with pyscf, once per system and basis
``excitations``     the lowest determinants among UHF and its single and double excitations
``excited_references``  exact energies of a system's lowest states (``data/excited_states.yaml``)
``geometry_set``    the geometries of a PES run (scans, geometry files) and reference curves
``data/``           named molecules (``molecules.yaml``) and reference curves (``pes.yaml``)
==================  ==============================================================
"""
