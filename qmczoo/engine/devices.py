"""Walkers spread over devices: one mesh axis, walkers sharded on it, everything else replicated.

A run on ``D`` devices keeps every jitted function of the engine as it is and hands it arrays
placed on a one-axis :class:`jax.sharding.Mesh` (axis ``"walkers"``): walker positions
``[B, ...]`` split into ``D`` contiguous blocks of ``B / D`` walkers, parameters, optimizer
state, keys and step sizes replicated. XLA then inserts the reductions a step needs
(the gradient's and the KFAC factors' sums over walkers, the batch median of the clipping
window); no walker leaves its device.

With one device nothing is placed and every program is the one-device program of before.

The mesh is built from :func:`jax.devices` directly (its axis is of the ``Auto`` type):
``jax.make_mesh`` makes ``Explicit`` axes in jax 0.9, on which ``jnp.median`` of sharded
walkers raises a ``ShardingTypeError``.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qmczoo.errors import ConfigError

WALKER_AXIS = "walkers"


def available_devices() -> int:
    """Devices a run can use: every device of every process (one process: its local devices)."""
    return jax.device_count()


def resolve_device_count(devices: int | None) -> int:
    """The number of devices a run uses: ``devices``, or every available device for None.

    Raises :class:`~qmczoo.errors.ConfigError` for a count that is not a positive integer or
    exceeds the devices there are."""
    there = available_devices()
    if devices is None:
        return there
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise ConfigError(f"devices must be a positive integer, got {devices!r}")
    if devices > there:
        kind = jax.devices()[0].platform
        raise ConfigError(f"{devices} devices asked for, but this machine has {there} ({kind}); use --devices {there} "
                          "or fewer")
    if jax.process_count() > 1 and devices != there:
        raise ConfigError(f"a run of {jax.process_count()} processes uses every device of every process ({there}); "
                          f"--devices {devices} would leave some process without one: drop --devices, or start "
                          "each process on fewer devices (CUDA_VISIBLE_DEVICES)")
    return int(devices)


def check_divides(count: int, devices: int, what: str, flag: str) -> None:
    """One :class:`ConfigError` line unless ``count`` walkers split evenly over ``devices``."""
    if devices > 1 and count % devices:
        below, above = count - count % devices, count + devices - count % devices
        choices = f"{below} or {above}" if below else f"{above}"
        raise ConfigError(f"{what} ({count}) must divide by the number of devices ({devices}): use {flag} "
                          f"{choices}, or --devices 1")


def check_walker_counts(batch_size: int, monitor_walkers: int, devices: int) -> None:
    """The batch and the monitor chain must split evenly over ``devices`` (one ``ConfigError`` line)."""
    check_divides(batch_size, devices, "the batch size", "--batch-size")
    check_divides(monitor_walkers, devices, "the monitor chain's walkers", "--monitor-walkers")


@dataclasses.dataclass(frozen=True)
class WalkerSharding:
    """The placements of a run on ``mesh`` (one axis, :data:`WALKER_AXIS`)."""

    mesh: Mesh

    @classmethod
    def over(cls, devices: int) -> "WalkerSharding":
        """The first ``devices`` devices (of :func:`jax.devices`, every process's) as one axis."""
        return cls(Mesh(np.asarray(jax.devices()[:devices]), (WALKER_AXIS,)))

    @property
    def size(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def walkers(self) -> NamedSharding:
        """Leading (walker) axis split over the devices."""
        return NamedSharding(self.mesh, PartitionSpec(WALKER_AXIS))

    @property
    def replicated(self) -> NamedSharding:
        """A whole copy on every device."""
        return NamedSharding(self.mesh, PartitionSpec())

    def replicate(self, tree):
        """Every array of ``tree`` copied to every device (None and non-arrays kept). Over several
        processes, process 0's values are the ones copied (so that every device holds the same)."""
        return jax.tree.map(lambda x: _put(x, self.replicated, from_main=True) if _is_array(x) else x, tree)

    def shard(self, x):
        """An array ``[B, ...]`` split on its leading axis (over several processes, each takes its
        devices' blocks from its own copy of the whole array)."""
        return _put(x, self.walkers)

    def place_walkers(self, walkers):
        """A :class:`~qmczoo.engine.sampler.WalkerState`: positions sharded, step sizes and
        acceptances (scalars or one per geometry) replicated."""
        if walkers is None:
            return None
        return walkers.replace(r=self.shard(walkers.r), step_size=self.replicate(walkers.step_size),
                               acceptance=self.replicate(walkers.acceptance))

    def place_state(self, state):
        """A :class:`~qmczoo.engine.vmc.TrainState` placed: its training walkers and monitor chain
        sharded, everything else replicated."""
        walkers, monitor = state.walkers, state.monitor
        rest = self.replicate(state.replace(walkers=None, monitor=None))
        return rest.replace(walkers=self.place_walkers(walkers), monitor=self.place_walkers(monitor))


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic))


def _put(x, sharding: NamedSharding, from_main: bool = False):
    """``x`` placed with ``sharding``. On one process: :func:`jax.device_put`. Over several, a global
    array is built from each process's host copy (``from_main``: process 0's copy), or an array
    that is already global is resharded by a jitted identity."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    host = np.asarray(x)
    if from_main:
        from qmczoo.distributed import from_main as broadcast

        host = np.asarray(broadcast(host))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(x) -> np.ndarray:
    """The whole value of an array as numpy, in every process: an array spread over several
    processes is gathered (a collective: every process must call this at the same point)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def walker_sharding(devices: int) -> WalkerSharding | None:
    """The placements for a run on ``devices`` devices; None for one (nothing is placed)."""
    return None if devices <= 1 else WalkerSharding.over(devices)


__all__ = ["WALKER_AXIS", "WalkerSharding", "available_devices", "check_divides", "check_walker_counts",
           "resolve_device_count", "to_host", "walker_sharding"]


def peak_memory() -> tuple[float, float | None]:
    """``(host, device)`` peak memory of this process so far, in MiB: the resident set
    (``ru_maxrss``) and the sum over local devices of jax's ``peak_bytes_in_use`` (None where the
    backend reports none, as on CPU)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    host = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    device = None
    try:
        stats = [d.memory_stats() for d in jax.local_devices()]
        if stats and all(s and "peak_bytes_in_use" in s for s in stats):
            device = sum(s["peak_bytes_in_use"] for s in stats) / 2**20
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        device = None
    return host, device
