"""Multi-process start-up on JAX's own runtime (``jax.distributed``), the
data-parallel mesh, and how a batch splits over processes and devices.

Call ``initialize()`` once, before anything touches a JAX device. It is
idempotent and picks the first that applies:

1. explicit: ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
   ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` in the environment (or the
   same as arguments) — any cluster, and ``launch/local_multiprocess.sh``;
2. SLURM: inside an ``srun`` step (``SLURM_STEP_ID`` set), JAX reads the
   topology from SLURM's variables (one process per task);
3. Cloud TPU pod: on a TPU VM of a multi-host slice (``TPU_WORKER_HOSTNAMES``
   lists several workers), JAX asks the TPU metadata server;
4. otherwise one process: nothing to do.

Multi-process runs on CPU use gloo collectives (the CPU backend has none
otherwise). After start-up every process sees every device of every host:
``jax.devices()`` is global, ``jax.local_devices()`` its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

import jax
import numpy as np

from gramjax.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Topology:
  process_index: int
  process_count: int
  local_devices: int
  global_devices: int
  platform: str
  how: str

  def describe(self) -> str:
    return (f'process {self.process_index}/{self.process_count} on '
            f'{socket.gethostname()}: {self.local_devices} local of '
            f'{self.global_devices} {self.platform} devices ({self.how})')


def _env_int(name: str, value: int | None) -> int | None:
  if value is not None:
    return value
  raw = os.environ.get(name)
  if raw is None or raw == '':
    return None
  try:
    return int(raw)
  except ValueError as e:
    raise UserError(f'{name}={raw!r} is not an integer') from e


def detect(coordinator_address: str | None = None) -> str:
  """Which start-up applies: 'explicit', 'slurm', 'tpu_pod' or 'single'."""
  if coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS'):
    return 'explicit'
  if os.environ.get('SLURM_JOB_ID') and os.environ.get('SLURM_STEP_ID'):
    return 'slurm'
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  if len([h for h in hosts.split(',') if h.strip()]) > 1:
    return 'tpu_pod'
  return 'single'


CPU_DEVICES_FLAG = 'xla_force_host_platform_device_count'


def usable_cores() -> int:
  """Cores this process may run on (its affinity mask, not the host's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def configure_cpu_devices(requested: int, batch_size: int) -> int | None:
  """Splits a CPU host into ``n`` XLA devices, before the backend starts.

  Training is data-parallel over every device; XLA:CPU runs each device's
  program on its own thread, so a single-process CPU run gets more of the
  cores into the convolutions (measured: 1.35x steps/s for the paper model
  on 2 cores; docs/benchmarks.md). ``requested`` is ``config.cpu_devices``:
  0 picks one per usable core (at most 8), reduced to the largest count
  that divides ``batch_size``; 1 leaves one device; n > 1 must divide
  ``batch_size``. Returns the device count set, or None where nothing was
  changed: an explicit ``--xla_force_host_platform_device_count`` in
  ``XLA_FLAGS`` wins, and multi-process runs keep their own settings. Only
  the CPU backend is affected (an accelerator's devices are not).
  """
  if requested < 0 or (requested > 1 and batch_size % requested):
    raise ValueError(f'cpu_devices={requested} must be >= 0 and, above 1, '
                     f'divide batch_size={batch_size}')
  flags = os.environ.get('XLA_FLAGS', '')
  if CPU_DEVICES_FLAG in flags or detect() != 'single':
    return None
  if requested == 0:
    limit = min(usable_cores(), 8)
    requested = max(d for d in range(1, limit + 1) if batch_size % d == 0)
  if requested > 1:
    os.environ['XLA_FLAGS'] = f'{flags} --{CPU_DEVICES_FLAG}={requested}'.strip()
  return requested


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> Topology:
  """Starts ``jax.distributed`` as described in the module doc; returns and
  logs the topology. Safe to call more than once."""
  how = 'already initialized'
  if not jax.distributed.is_initialized():
    how = detect(coordinator_address)
    if how == 'explicit':
      address = coordinator_address or os.environ['JAX_COORDINATOR_ADDRESS']
      n = _env_int('JAX_NUM_PROCESSES', num_processes)
      i = _env_int('JAX_PROCESS_ID', process_id)
      if n is None or i is None:
        raise UserError(
            f'JAX_COORDINATOR_ADDRESS={address} is set, so JAX_NUM_PROCESSES '
            'and JAX_PROCESS_ID must be set too (process ids 0..N-1)')
      if n < 1 or not 0 <= i < n:
        raise UserError(f'JAX_PROCESS_ID={i} must be in 0..'
                        f'JAX_NUM_PROCESSES-1={n - 1}')
      if n > 1:
        jax.config.update('jax_cpu_collectives_implementation', 'gloo')
        jax.distributed.initialize(coordinator_address=address,
                                   num_processes=n, process_id=i)
    elif how in ('slurm', 'tpu_pod'):
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
      jax.distributed.initialize()
  topology = Topology(jax.process_index(), jax.process_count(),
                      jax.local_device_count(), jax.device_count(),
                      jax.devices()[0].platform, how)
  logging.info('%s', topology.describe())
  return topology


def split_batch(global_batch: int) -> tuple[int, int]:
  """(per-process, per-device) shares of the global batch; a clear error
  naming config.batch_size when it does not divide evenly."""
  n_proc, n_dev = jax.process_count(), jax.device_count()
  if global_batch % n_dev:
    raise UserError(
        f'config.batch_size={global_batch} does not divide over {n_dev} '
        f'devices ({n_proc} processes x {jax.local_device_count()} local); '
        f'use a multiple of {n_dev}')
  return global_batch // n_proc, global_batch // n_dev


def create_mesh() -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over every device of every process."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def local_value(x: jax.Array) -> np.ndarray:
  """A replicated (possibly multi-process) array's value on this host."""
  return np.asarray(x.addressable_data(0))
