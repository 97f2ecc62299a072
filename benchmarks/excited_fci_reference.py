"""Full CI reference for the lowest states of a small molecule in its (n_up, n_down) sector.

    python benchmarks/excited_fci_reference.py LiH --basis cc-pvtz --roots 4

Prints each root's total energy, <S^2> and excitation energy above the lowest root. Used for the
molecule case of docs/excited_states.md (LiH at the geometry of qmczoo's named molecule). FCI in a
finite basis is not exact: the total energies lie above the basis-set limit (for LiH in cc-pVTZ by
about 10-20 mHa, mostly core correlation), the excitation energies much less so; the doc says so.
"""

from __future__ import annotations

import argparse

import numpy as np
from pyscf import fci, scf

from qmczoo.chemistry.systems import get_system


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", help="a named molecule, e.g. LiH")
    parser.add_argument("--basis", default="cc-pvtz")
    parser.add_argument("--roots", type=int, default=4)
    args = parser.parse_args()
    system = get_system(args.system)
    mol = system.to_pyscf(args.basis)
    mf = scf.RHF(mol).run(verbose=0)
    solver = fci.FCI(mf)
    solver.nroots = args.roots
    energies, vectors = solver.kernel(nelec=(system.n_up, system.n_down))
    norb = mf.mo_coeff.shape[1]
    print(f"{system.name} in {args.basis} ({norb} orbitals), RHF {mf.e_tot:.6f}")
    for i, (e, v) in enumerate(zip(np.atleast_1d(energies), vectors)):
        s2, _ = fci.spin_op.spin_square(v, norb, (system.n_up, system.n_down))
        print(f"root {i}: E = {e:.6f} Ha, <S^2> = {s2:.3f}, E - E_0 = {e - energies[0]:.6f} Ha")


if __name__ == "__main__":
    main()
