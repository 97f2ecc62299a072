"""Chemistry: molecules and what pyscf tells about them, free of networks and of run folders.

==================  ==============================================================
module              job
==================  ==============================================================
``systems``         molecules from a name, an xyz file or string, an atom list or a pyscf ``Mole``
``hartree_fock``    UHF with pyscf, once per system and basis
``geometry_set``    the geometries of a PES run (scans, geometry files) and reference curves
``data/``           named molecules (``molecules.yaml``) and reference curves (``pes.yaml``)
==================  ==============================================================
"""
