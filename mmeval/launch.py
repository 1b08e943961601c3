"""Where this process stands in a multi-process launch: (rank, world size) from the launcher's environment.

torchrun and ``accelerate launch --multi_gpu --num_processes N`` (torchrun underneath; it works on
CPU-only machines too) set RANK/WORLD_SIZE. accelerate's multi-CPU launch through MPI
(``--mpirun_hostfile``) sets only the MPI variables. Note: ``accelerate launch --cpu
--num_processes N`` on one machine without MPI starts a single process.
"""

from __future__ import annotations

import os

from mmeval.errors import InputError

RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


#: set by the launchers mmeval supports (torchrun/accelerate: LOCAL_RANK, MASTER_ADDR; MPI: its own)
LAUNCHER_VARS = ("LOCAL_RANK", "MASTER_ADDR", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def _first(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise InputError(f"environment variable {name}={value!r} is not an integer (it says which "
                                 "process of a multi-process launch this is)") from None
    return default


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when run plainly. Nonsense values are an InputError naming the variable."""
    rank, world = _first(RANK_VARS, 0), _first(WORLD_VARS, 1)
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"rank {rank} of world size {world} is impossible: check RANK and WORLD_SIZE")
    return rank, world


def under_launcher() -> bool:
    """Whether a multi-process launcher started this process (not just WORLD_SIZE set by hand)."""
    return any(os.environ.get(name, "").strip() for name in LAUNCHER_VARS)
