"""The molecular frame (PESNet's equivariant coordinates) and the geometry-encoder slot."""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo import testing
from qmczoo.layers.frame_kind import _Designation, frame_kind
from qmczoo.layers.geometry_encoder import GeometryEncoder, NuclearEmbedding
from qmczoo.layers.molecular_frame import FrameKind, FrameWarning, frame_chirality, frame_coordinates, molecular_frame
from qmczoo.layers.slots import SLOTS, GeometryEncoderSlot
from qmczoo.testing import random_rotation

ATOL = 1e-9


def rotation(axis, angle) -> np.ndarray:
    """The proper rotation by ``angle`` about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


_T = 2.05 / np.sqrt(3)
_RING = 2 * np.pi * np.arange(3) / 3
MOLECULES = {
    # name: (charges, positions in bohr, kind name, signs, designated nuclei per group,
    #        proper symmetry rotations (about c))
    "h2o_asymmetric": ((8, 1, 1), [[0, 0, 0], [1.8, 0, 0], [-0.5, 1.7, 0.2]],
                       "asymmetric", ("moment", "moment", "handedness"), ((), (), ()), []),
    "h2o_c2v": ((8, 1, 1), [[0, 0, 0], [1.43, 0, 1.11], [-1.43, 0, 1.11]],
                "asymmetric", ("nucleus", "moment", "handedness"), ((1,), (), ()), [rotation([0, 0, 1], np.pi)]),
    "h2": ((1, 1), [[0, 0, -0.7], [0, 0, 0.7]], "prolate", ("nucleus", "none"), ((0,), ()),
           [rotation([1, 0, 0], np.pi), rotation([1, 1, 0], np.pi), rotation([0, 0, 1], 0.9)]),
    "lih": ((3, 1), [[0, 0, 0], [0, 0, 3.015]], "prolate", ("moment", "none"), ((), ()), [rotation([0, 0, 1], 2.1)]),
    "atom": ((6,), [[0.3, -0.2, 0.1]], "spherical", ("none",), ((),), [rotation([1, 2, 3], 1.3)]),
    "ch4": ((6, 1, 1, 1, 1), [[0, 0, 0], [_T, _T, _T], [_T, -_T, -_T], [-_T, _T, -_T], [-_T, -_T, _T]],
            "spherical", ("nucleus",), ((1, 2),), [rotation([1, 1, 1], 2 * np.pi / 3), rotation([0, 0, 1], np.pi)]),
    "bf3": ((5, 9, 9, 9), [[0, 0, 0]] + [[2.45 * np.cos(a), 2.45 * np.sin(a), 0] for a in _RING],
            "oblate", ("nucleus", "handedness"), ((1, 2), ()),
            [rotation([0, 0, 1], 2 * np.pi / 3), rotation([1, 0, 0], np.pi)]),
    "nh3": ((7, 1, 1, 1), [[0, 0, 0]] + [[1.77 * np.cos(a), 1.77 * np.sin(a), -0.72] for a in _RING],
            "oblate", ("nucleus", "moment"), ((1,), ()), [rotation([0, 0, 1], 2 * np.pi / 3)]),
}
K_OF = {"h2o_asymmetric": 3, "h2o_c2v": 3, "h2": 2, "lih": 2, "atom": 1, "ch4": 3, "bf3": 3, "nh3": 3}
UNSIGNED = {  # designate=False: the moments alone (no designated nuclei)
    "h2o_asymmetric": ("moment", "moment", "handedness"), "h2o_c2v": ("none", "moment", "none"),
    "h2": ("none", "none"), "lih": ("moment", "none"), "atom": ("none",), "ch4": ("none",),
    "bf3": ("none", "none"), "nh3": ("none", "moment")}


def _coords(r, R, charges, kind):
    """Frame coordinates ``[N, K]`` of electrons ``r`` relative to the frame's origin."""
    origin, axes = molecular_frame(jnp.asarray(R), tuple(charges), kind)
    return frame_coordinates(jnp.asarray(r) - origin, axes, kind)


def _electrons(seed, n=7):
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, 3))


def _relabelling(R, moved):
    """``P`` with ``moved == R[P]`` (a symmetry rotation maps the nuclei onto themselves)."""
    return np.asarray([int(np.argmin(np.linalg.norm(R - x, axis=-1))) for x in moved])


@pytest.mark.parametrize("name", sorted(MOLECULES))
def test_frame_kind_of_each_symmetry(name):
    charges, R, kind_name, signs, nuclei, _ = MOLECULES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameWarning)  # one geometry: nothing to warn about
        kind = frame_kind(np.asarray(R, float), charges)
        plain = frame_kind(np.asarray(R, float), charges, designate=False)
    assert (kind.name, kind.signs, kind.nuclei) == (kind_name, signs, nuclei)
    assert kind.n_components == K_OF[name] == len(kind.components)
    assert kind.designated == tuple(sorted({j for n in nuclei for j in n}))
    out = _coords(_electrons(0), np.asarray(R, float), charges, kind)
    assert out.shape == (7, K_OF[name])
    assert (plain.name, plain.signs, plain.designated) == (kind_name, UNSIGNED[name], ())
    # every proper frame the nuclei fix is right-handed (a resolved pair or a handedness axis)
    _, axes = molecular_frame(jnp.asarray(R, jnp.float64), charges, kind)
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-12)
    if "handedness" in kind.signs or "nucleus" in kind.signs and kind.name != "asymmetric":
        assert float(jnp.linalg.det(axes)) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(MOLECULES))
def test_frame_coordinates_are_covariant(name):
    """Rotating and translating everything leaves the coordinates unchanged, for every molecule.
    A symmetry rotation ``g`` maps the nuclei onto themselves in another order ``P``; the frame
    follows the labels, so ``coords(r; R[P]) = coords(g^-1 r; R)``. That equals ``coords(r; R)``
    (invariance under relabelling identical nuclei) when the kind designates no nucleus; a
    designated nucleus tells them apart (the module docstring: the price of a signed frame)."""
    charges, R, _, _, _, symmetries = MOLECULES[name]
    R = np.asarray(R, float)
    kind = frame_kind(R, charges)
    plain = frame_kind(R, charges, designate=False)
    r = _electrons(1)
    ref = _coords(r, R, charges, kind)
    for seed in range(4):
        rot, shift = random_rotation(seed), np.random.default_rng(seed).normal(size=3) * 3
        np.testing.assert_allclose(_coords(r @ rot.T + shift, R @ rot.T + shift, charges, kind), ref, atol=ATOL)
    c = np.asarray(charges, float) @ R / np.sum(charges)
    for sym in symmetries:
        moved = (R - c) @ sym.T + c  # the same set of nuclei, in another order
        P = _relabelling(R, moved)
        np.testing.assert_allclose(R[P], moved, atol=1e-9)
        turned_back = (r - c) @ sym + c  # g^-1 r
        np.testing.assert_allclose(_coords(r, R[P], charges, kind), _coords(turned_back, R, charges, kind), atol=ATOL)
        # without designated nuclei the relabelled frame is the same frame
        np.testing.assert_allclose(_coords(r, R[P], charges, plain), _coords(r, R, charges, plain), atol=ATOL)
        if all(P[j] == j for j in kind.designated):
            np.testing.assert_allclose(_coords(r, R[P], charges, kind), ref, atol=ATOL)
        else:  # the relabelling moves a designated nucleus: psi may tell the two apart
            assert float(jnp.max(jnp.abs(_coords(r, R[P], charges, kind) - ref))) > 1e-2


def test_frame_coordinates_per_component_rules():
    """K and the formula of each component, as the docstring says."""
    charges, R, *_ = MOLECULES["lih"]
    kind = frame_kind(np.asarray(R, float), charges)
    d = jnp.asarray([[0.3, -0.4, 1.2]])
    out = np.asarray(frame_coordinates(d, jnp.eye(3)[jnp.asarray([2, 0, 1])], kind))  # e0 = z
    np.testing.assert_allclose(out, [[1.2, 0.3**2 + 0.4**2]], atol=1e-14)
    sym = FrameKind(groups=((0,), (1,), (2,)), signs=("none", "moment", "none"))
    out = np.asarray(frame_coordinates(d, jnp.eye(3), sym))
    np.testing.assert_allclose(out, [[0.09, -0.4, 1.44]], atol=1e-14)
    sphere = FrameKind(groups=((0, 1, 2),), signs=("none",))
    np.testing.assert_allclose(np.asarray(frame_coordinates(d, jnp.eye(3), sphere)), [[0.09 + 0.16 + 1.44]])
    resolved = FrameKind(groups=((0,), (1, 2)), signs=("moment", "nucleus"), nuclei=((), (1,)))
    assert resolved.components == ("d.e0", "d.e1", "d.e2") and resolved.n_chirality == 0
    np.testing.assert_allclose(np.asarray(frame_coordinates(d, jnp.eye(3), resolved)), [[0.3, -0.4, 1.2]])
    assert kind.components == ("d.e0", "(d.e1)^2+(d.e2)^2") and kind.chiral_axis == 0
    # t_ij = e0 . (x_i x x_j): antisymmetric, and the signed area of the two electrons seen along e0
    x = jnp.asarray([[5.0, 1.0, 0.0], [-2.0, 0.0, 1.0]])
    t = np.asarray(frame_chirality(x, jnp.eye(3), kind))
    np.testing.assert_allclose(t[..., 0], [[0.0, 1.0], [-1.0, 0.0]], atol=1e-14)
    assert frame_chirality(x, jnp.eye(3), sphere).shape == (2, 2, 0)
    for bad in [(((0, 2), (1,)), ("none", "none"), None),
                (((0,), (1, 2)), ("none", "nucleus"), ((), (1,))),  # unsigned u, one nucleus
                (((0,), (1,), (2,)), ("moment", "none", "handedness"), None),
                (((0, 1, 2),), ("nucleus",), ((1,),))]:
        with pytest.raises(ValueError):
            FrameKind(*bad)


@pytest.mark.parametrize("name", ["lih", "h2"])
def test_a_linear_molecules_pair_pseudoscalar_tells_mirror_images_apart(name):
    """Nothing off the axis resolves the perpendicular pair, so the frame hands on t_ij: it is
    invariant under rotating everything and under rotating the electrons about the axis (psi can
    only be a Sigma state), and flips its sign under a reflection of the electrons through a
    plane containing the axis (so psi need not be even under it: Sigma-minus states)."""
    charges, R, *_ = MOLECULES[name]
    R = np.asarray(R, float)
    kind = frame_kind(R, charges)
    r = _electrons(2, n=4)

    def chirality(r, R):
        origin, axes = molecular_frame(jnp.asarray(R), charges, kind)
        return np.asarray(frame_chirality(jnp.asarray(r) - origin, axes, kind))[..., 0]

    ref = chirality(r, R)
    assert np.max(np.abs(ref)) > 0.1 and np.allclose(ref, -ref.T)
    for seed in range(2):
        rot = random_rotation(seed)
        np.testing.assert_allclose(chirality(r @ rot.T, R @ rot.T), ref, atol=ATOL)
    np.testing.assert_allclose(chirality(r @ rotation([0, 0, 1], 0.8).T, R), ref, atol=ATOL)  # about the axis (z)
    mirror = np.diag([1.0, -1.0, 1.0])  # the plane x-z contains the axis
    np.testing.assert_allclose(chirality(r @ mirror, R), -ref, atol=ATOL)
    # and the coordinates of each electron do not change under that reflection: only t does
    np.testing.assert_allclose(_coords(r @ mirror, R, charges, kind), _coords(r, R, charges, kind), atol=ATOL)


def test_frame_is_jittable_and_vmaps_over_walker_geometries():
    charges, R, *_ = MOLECULES["h2o_asymmetric"]
    R = np.asarray(R, float)
    kind = frame_kind(R, charges)
    geoms = jnp.stack([jnp.asarray(R @ random_rotation(s).T) for s in range(3)])
    r = jnp.stack([jnp.asarray(_electrons(0) @ random_rotation(s).T) for s in range(3)])

    @jax.jit
    def f(r, R):
        origin, axes = molecular_frame(R, charges, kind)
        return frame_coordinates(r - origin, axes, kind)

    out = jax.vmap(f)(r, geoms)
    np.testing.assert_allclose(out, jnp.broadcast_to(out[0], out.shape), atol=ATOL)


def test_frame_kind_of_a_set_takes_the_most_degenerate_treatment():
    c2v = np.asarray(MOLECULES["h2o_c2v"][1], float)
    linear = np.asarray([[0, 0, 0], [1.81, 0, 0], [-1.81, 0, 0]])
    asym = np.asarray(MOLECULES["h2o_asymmetric"][1], float)
    with pytest.warns(FrameWarning, match="differ in symmetry"):
        kind = frame_kind(np.stack([asym, c2v]), (8, 1, 1))
    # the moments sign only the C2 axis in both; a hydrogen signs the H-H direction
    assert (kind.name, kind.signs, kind.nuclei) == ("asymmetric", ("nucleus", "moment", "handedness"), ((1,), (), ()))
    with pytest.warns(FrameWarning, match="differ in symmetry"):
        kind = frame_kind(np.stack([c2v, linear]), (8, 1, 1))
    # the linear geometry has nothing off the axis: the pair stays unresolved in all of them
    assert (kind.name, kind.signs, kind.nuclei, kind.chiral_axis) == ("prolate", ("nucleus", "none"), ((1,), ()), 0)
    with pytest.warns(FrameWarning, match="differ in symmetry"):
        kind = frame_kind(np.stack([c2v, linear]), (8, 1, 1), designate=False)
    assert (kind.name, kind.signs, kind.chiral_axis) == ("prolate", ("none", "none"), None)
    atom = np.zeros((1, 1, 3))
    assert frame_kind(atom, (2,)).name == "spherical"


def test_a_lih_bond_scan_keeps_one_signed_frame_without_warnings():
    geoms = np.stack([np.asarray([[0, 0, 0], [0, 0, d]]) for d in np.linspace(2.0, 6.0, 9)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameWarning)
        kind = frame_kind(geoms, (3, 1))
    assert (kind.name, kind.signs) == ("prolate", ("moment", "none"))


def test_an_eigenvalue_crossing_in_a_scan_is_warned_about_and_merged():
    """Opening the angle of H-O-H swaps the in-plane spreads (near 90 degrees): the sorted axes
    would jump, so frame_kind warns and treats the two as one degenerate (continuous) group."""
    def bent(deg):
        h = np.radians(deg) / 2
        return np.asarray([[0, 0, 0], [1.81 * np.sin(h), 0, 1.81 * np.cos(h)], [-1.81 * np.sin(h), 0, 1.81 * np.cos(h)]])

    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameWarning)
        assert frame_kind(np.stack([bent(a) for a in np.linspace(30, 80, 6)]), (8, 1, 1)).name == "asymmetric"
    with pytest.warns(FrameWarning) as record:  # also: the signed axis differs (e0, then e1)
        kind = frame_kind(np.stack([bent(a) for a in np.linspace(60, 130, 8)]), (8, 1, 1))
    assert any("eigenvalue crossing" in str(w.message) for w in record)
    assert kind.groups == ((0, 1), (2,))  # the in-plane pair merged, the plane normal unique
    # ...and resolved by the two hydrogens' directions (which move smoothly through the crossing)
    assert (kind.signs, kind.nuclei) == (("nucleus", "handedness"), ((1, 2), ()))
    # continuity through the crossing: the frame coordinates of a fixed point move smoothly
    r = np.asarray([[0.4, 0.3, 0.9]])
    angles = np.linspace(80, 100, 41)
    out = np.stack([np.asarray(_coords(r, bent(a), (8, 1, 1), kind)) for a in angles])[:, 0]
    assert np.max(np.abs(np.diff(out, axis=0))) < 0.05
    # whereas the kind of the scan up to 80 degrees (three unique axes) jumps at the crossing
    below = frame_kind(np.stack([bent(a) for a in np.linspace(30, 80, 6)]), (8, 1, 1))
    jumpy = np.stack([np.asarray(_coords(r, bent(a), (8, 1, 1), below)) for a in angles])[:, 0]
    assert np.max(np.abs(np.diff(jumpy, axis=0))) > 0.2


def test_a_third_moment_changing_sign_drops_the_sign():
    """A-B-C linear molecule whose middle nucleus moves through the point where the third moment
    vanishes: the moment would flip the bond axis, so frame_kind signs it by an end nucleus
    instead (or, without designated nuclei, squares it)."""
    geoms = np.stack([np.asarray([[0, 0, -2.0], [0, 0, x], [0, 0, 2.0]]) for x in (-0.8, 0.8)])
    with pytest.warns(FrameWarning, match="changes sign"):
        kind = frame_kind(geoms, (2, 1, 2))
    assert (kind.name, kind.signs, kind.nuclei) == ("prolate", ("nucleus", "none"), ((0,), ()))
    with pytest.warns(FrameWarning, match="changes sign"):
        kind = frame_kind(geoms, (2, 1, 2), designate=False)
    assert (kind.name, kind.signs) == ("prolate", ("none", "none"))
    # a nucleus whose direction turns over between consecutive (aligned) geometries would flip
    # the axis too: it is passed over, however far from the axis it is
    vectors = np.asarray([[[3.0, 0, 0], [0.5, 0.2, 0]], [[-3.0, 0, 0], [0.6, 0.1, 0]]])  # [G, M, 3]
    pick = _Designation(vectors, np.stack([np.eye(3)] * 2), [np.eye(3)] * 2)
    assert pick._pick(vectors) == 1 and pick._pick(vectors[:1]) == 0


# ----------------------------------------------------------------------------- the encoder


def test_the_slot_is_declared():
    info = SLOTS["geometry_encoder"]
    assert info.protocol is GeometryEncoderSlot and info.context == ("charges",)


def test_check_layer_passes_for_the_registered_encoder():
    testing.check_layer("geometry_encoder")


def _encoder_outputs(charges, R, seed=0, **options):
    enc = GeometryEncoder(charges=tuple(charges), **options)
    params = enc.init(jax.random.PRNGKey(seed), jnp.asarray(R))
    return jax.jit(enc.apply), params


def test_encoder_invariances_on_random_geometries():
    charges = (1, 6, 1, 1)
    rng = np.random.default_rng(3)
    R = rng.normal(scale=1.5, size=(4, 3))
    f, params = _encoder_outputs(charges, R, width=8, n_rbf=6)
    out = f(params, jnp.asarray(R))
    assert out.nuclei.shape == (4, 8) and out.global_.shape == (8,)
    assert isinstance(out, NuclearEmbedding) and np.all(np.isfinite(out.nuclei))
    for seed in range(2):
        moved = f(params, jnp.asarray(R @ random_rotation(seed).T + rng.normal(size=3)))
        np.testing.assert_allclose(moved.nuclei, out.nuclei, atol=ATOL)
        np.testing.assert_allclose(moved.global_, out.global_, atol=ATOL)
    perm = np.asarray([3, 1, 0, 2])  # the three H permuted, C in place
    moved = f(params, jnp.asarray(R[perm]))
    np.testing.assert_allclose(moved.nuclei, out.nuclei[perm], atol=ATOL)
    np.testing.assert_allclose(moved.global_, out.global_, atol=ATOL)
    # not a constant: the geometry matters
    assert np.max(np.abs(f(params, jnp.asarray(R * 1.2)).global_ - out.global_)) > 1e-4


def test_encoder_of_one_nucleus_has_no_message_parameters_and_proper_kfac_blocks():
    from qmczoo.chemistry.systems import get_system
    from qmczoo.wavefunction import Wavefunction

    enc = GeometryEncoder(charges=(2.0,), width=4, n_rbf=4)

    class Toy(nn.Module):  # the encoder of the walker's geometry, as in training
        @nn.compact
        def __call__(self, r, R):
            out = GeometryEncoder(charges=(2.0,), width=4, n_rbf=4, name="encoder")(
                R + 0.0 * jax.lax.stop_gradient(jnp.sum(r)))
            return jnp.ones(()), jnp.sum(jnp.tanh(out.nuclei)) + jnp.sum(jnp.tanh(out.global_))

    R = jnp.zeros((1, 3))
    params = enc.init(jax.random.PRNGKey(0), R)
    out = enc.apply(params, R)
    assert out.nuclei.shape == (1, 4) and np.all(np.isfinite(out.global_))
    assert not any("filter" in k or "values" in k for k in params["params"])
    toy = Toy()
    wf = Wavefunction(init=toy.init, signed_log_psi=toy.apply, n_up=1, n_down=1, name="toy")
    blocks = testing.kfac_block_types(wf, get_system("He"))
    assert blocks and all(b != "NaiveDiagonal" for b in blocks.values()), blocks


class _RawCoordinate(nn.Module):
    """A broken encoder: adds a raw nuclear coordinate (not translation invariant)."""

    charges: tuple

    @nn.compact
    def __call__(self, R):
        out = GeometryEncoder(charges=self.charges, width=4, layers=1, n_rbf=4, name="inner")(R)
        return out.replace(nuclei=out.nuclei + R[:, :1])


class _IndexLabels(nn.Module):
    """A broken encoder: labels nuclei by their index (not equivariant under identical nuclei)."""

    charges: tuple

    @nn.compact
    def __call__(self, R):
        out = GeometryEncoder(charges=self.charges, width=4, layers=1, n_rbf=4, name="inner")(R)
        return out.replace(nuclei=out.nuclei + jnp.arange(len(self.charges), dtype=R.dtype)[:, None])


@pytest.mark.parametrize("broken, message", [(_RawCoordinate, "not translation-invariant"),
                                             (_IndexLabels, "nuclear permutation")])
def test_check_layer_catches_a_broken_encoder(monkeypatch, broken, message):
    from qmczoo import registry

    entry = dict(registry._load()["layers"]["geometry_encoder"], factory=broken, options={}, choices={})
    monkeypatch.setitem(registry._load()["layers"], "broken_encoder", entry)
    with pytest.raises(AssertionError, match=message):
        testing.check_layer("broken_encoder")


def test_the_cli_lists_and_describes_the_encoder():
    from typer.testing import CliRunner

    from qmczoo.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["list", "--layers"])
    assert result.exit_code == 0 and "geometry_encoder" in result.output, result.output
    result = runner.invoke(app, ["info", "geometry_encoder"])
    assert result.exit_code == 0, result.output
    for words in ("slot: geometry_encoder", "nuclear_permutation", "PESNet", "width=32"):
        assert words in result.output, (words, result.output)
