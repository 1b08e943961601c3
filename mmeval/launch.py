"""Where this process stands in a multi-process launch: (rank, world size) from the launcher's environment.

torchrun and ``accelerate launch --multi_gpu --num_processes N`` (torchrun underneath; it works on
CPU-only machines too) set RANK/WORLD_SIZE. accelerate's multi-CPU launch through MPI
(``--mpirun_hostfile``) sets only the MPI variables. Note: ``accelerate launch --cpu
--num_processes N`` on one machine without MPI starts a single process.
"""

from __future__ import annotations

import os

RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def _first(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip():
            return int(os.environ[name])
    return default


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when run plainly."""
    return _first(RANK_VARS, 0), _first(WORLD_VARS, 1)
