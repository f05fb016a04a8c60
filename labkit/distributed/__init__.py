r"""Data-parallel SGD on :mod:`torch.distributed`: workers, launcher, cost model (chapter 9).

Each of :math:`P` workers holds a copy of the weights :math:`w_t` and computes the gradient of its
own shard :math:`B_p` of a global mini-batch :math:`B = B_1 \cup \dots \cup B_P` (:math:`b`
examples each); an **all-reduce** sums the :math:`P` gradients, every worker divides by
:math:`P` and takes the same step:

.. math::

    g_t = \frac1P \sum_{p=1}^P \frac1b \sum_{i\in B_p} \nabla\ell_i(w_t)
        = \frac1{Pb}\sum_{i\in B}\nabla\ell_i(w_t), \qquad w_{t+1} = w_t - \alpha_t\, g_t .

So :math:`P` workers with batch :math:`b` compute exactly the step of one process with batch
:math:`Pb` (up to the rounding of the sum). A ring all-reduce of a message of :math:`n` bytes
makes every worker send (and receive) :math:`2\frac{P-1}{P}\,n` bytes in :math:`2(P-1)` steps, so
with a latency :math:`\alpha` per step and a bandwidth :math:`\beta` it takes

.. math:: T(n) = 2(P-1)\,\alpha + 2\,\frac{P-1}{P}\,\frac{n}{\beta}.

The package has one module per job:

* :mod:`labkit.distributed.launch`, **the launcher**: :func:`~.launch` starts :math:`P` processes
  (``torch.multiprocessing``; or ``torchrun`` as a subprocess), each joins a process group (gloo
  on CPUs, NCCL on CUDA, chosen by :func:`~.choose_backend`) with a timeout on every collective,
  runs a worker function and saves what it returns in a temporary folder; the caller gets the
  list of results, one per rank. A worker that raises surfaces as :class:`~.WorkerError`, one that
  hangs as :class:`~.LaunchTimeout` (or as the collective timeout of the others), never as a hang.
* :mod:`labkit.distributed.training`, **the training loop**: :func:`~.train_data_parallel`
  (hand-written all-reduce of the gradients, DDP, DDP with a communication hook, local SGD; alone
  in one process it gives the single-process reference) and its worker :func:`~.train_worker`.
* :mod:`labkit.distributed.collectives`, **inside a worker**: :func:`~.rank_and_world`,
  :func:`~.worker_device`, the two averaging steps :func:`~.average_gradients` and
  :func:`~.average_parameters`, and :func:`~.bytes_written`.
* :mod:`labkit.distributed.measure`, **measurements**: :func:`~.allreduce_worker` (all-reduce times
  and bytes), :func:`~.step_time_worker` (DDP's bucketing and overlap) and :func:`~.fault_worker`
  (failures, on purpose).
* :mod:`labkit.distributed.cost`, **the cost model**: :func:`~.ring_allreduce_bytes`,
  :func:`~.ring_allreduce_time`, :func:`~.fit_ring_model`, and :func:`~.linear_scaling_lr`.

On a CUDA machine the same workers run under ``torchrun`` with one process per GPU::

    torchrun --nproc-per-node 8 -m labkit.distributed train_worker --config '{"steps": 100}' \
        --out results/
"""

from labkit.distributed.collectives import (
    average_gradients,
    average_parameters,
    bytes_written,
    rank_and_world,
    worker_device,
)
from labkit.distributed.cost import (
    fit_ring_model,
    linear_scaling_lr,
    ring_allreduce_bytes,
    ring_allreduce_time,
)
from labkit.distributed.launch import LaunchTimeout, WorkerError, choose_backend, launch, main
from labkit.distributed.measure import allreduce_worker, fault_worker, step_time_worker
from labkit.distributed.training import (
    HOOKS,
    MODES,
    digits_tensors,
    train_data_parallel,
    train_worker,
)

__all__ = [
    "HOOKS",
    "MODES",
    "LaunchTimeout",
    "WorkerError",
    "allreduce_worker",
    "average_gradients",
    "average_parameters",
    "bytes_written",
    "choose_backend",
    "digits_tensors",
    "fault_worker",
    "fit_ring_model",
    "launch",
    "linear_scaling_lr",
    "main",
    "rank_and_world",
    "ring_allreduce_bytes",
    "ring_allreduce_time",
    "step_time_worker",
    "train_data_parallel",
    "train_worker",
    "worker_device",
]
