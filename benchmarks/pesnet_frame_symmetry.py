"""What PESNet's signed molecular frame costs and buys, at initialisation (issue 28, item 4).

For the ``pesnet`` preset ``tiny`` with random parameters (float64, 16 configurations near the
nuclei, 2 parameter seeds), prints the mean and largest change of log|psi|

* under relabelling identical nuclei of symmetric geometries (a symmetry rotation of the
  molecule): nonzero with ``frame=signed`` (a designated nucleus tells them apart), zero to
  rounding with ``frame=symmetric``;
* under reflecting the electrons of a linear molecule through a plane containing the bond:
  nonzero (psi is not forced to be even under it; the squared, radial frame made it so).

    python benchmarks/pesnet_frame_symmetry.py

Takes about a minute on a 2-core CPU (compilation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from qmczoo import testing
from qmczoo.registry import get_ansatz
from qmczoo.engine.sampler import initial_positions
from qmczoo.chemistry.systems import get_system

_T = 2.05 / np.sqrt(3)
_RING = 2 * np.pi * np.arange(3) / 3
RELABELLINGS = {  # label: (geometry in bohr, the nuclei's new order: a symmetry rotation)
    "H2 (swap)": ("H 0 0 -0.7; H 0 0 0.7", [1, 0]),
    "H2O C2v (swap the H)": ("O 0 0 0; H 1.43 0 1.11; H -1.43 0 1.11", [0, 2, 1]),
    "NH3 (C3 cycle of the H)": ("N 0 0 0; " + "; ".join(f"H {1.77 * np.cos(a)} {1.77 * np.sin(a)} -0.72"
                                                        for a in _RING), [0, 2, 3, 1]),
    "CH4 (C3 cycle of the H)": (f"C 0 0 0; H {_T} {_T} {_T}; H {_T} {-_T} {-_T}; H {-_T} {_T} {-_T}; H {-_T} {-_T} {_T}",
                                [0, 1, 3, 4, 2]),
}


def _changes(system, frame, moved_r=None, moved_R=None, seeds=(0, 1)):
    wf = get_ansatz("pesnet", "tiny", frame=frame).build(system)
    R = jnp.asarray(system.positions, jnp.float64)
    r = initial_positions(jax.random.PRNGKey(0), system, 16, dtype=jnp.float64)
    f = jax.jit(jax.vmap(wf.log_psi, in_axes=(None, 0, None)))
    out = []
    for seed in seeds:
        params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(seed), r[0], R))
        r2 = r if moved_r is None else moved_r(r, R)
        R2 = R if moved_R is None else moved_R(R)
        out.append(np.abs(np.asarray(f(params, r2, R2) - f(params, r, R))))
    return np.concatenate(out)


def main() -> None:
    for frame in ("signed", "symmetric"):
        for label, (geometry, order) in RELABELLINGS.items():
            d = _changes(get_system(geometry, unit="bohr"), frame, moved_R=lambda R, o=order: R[jnp.asarray(o)])
            print(f"frame={frame:9s} {label:24s} relabelled nuclei: |d log|psi|| mean {d.mean():.2e}, "
                  f"max {d.max():.2e}")
    for name in ("LiH", "H2"):
        system = get_system(name)
        R = np.asarray(system.positions)
        normal = np.cross(R[1] - R[0], [0.3, 0.9, 0.1])
        normal /= np.linalg.norm(normal)
        mirror = jnp.asarray(np.eye(3) - 2 * np.outer(normal, normal))

        def reflect(r, R, mirror=mirror):
            c = R.mean(axis=0)
            return (r - c) @ mirror.T + c

        d = _changes(system, "signed", moved_r=reflect)
        print(f"frame=signed    {name:24s} electrons reflected through a plane containing the bond: "
              f"|d log|psi|| mean {d.mean():.2e}, max {d.max():.2e}")


if __name__ == "__main__":
    main()
