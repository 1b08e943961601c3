"""Running a command under a multi-process launcher (torchrun, ``accelerate launch``) in the tests.

gloo can abort a process while the processes connect to each other: ``std::terminate`` ("terminate called
without an active exception") out of ``gloo::transport::tcp::Address::fromPeerName`` when a peer's socket is
gone before it is named (pytorch/pytorch#188266, open). It happens while the process group is set up, before
any answer is computed, now and then on a loaded 2-core machine. Such a launch is run once more; any other
failure is not.
The processes talk over the loopback interface only (``GLOO_SOCKET_IFNAME=lo``), and the launcher's log
folders go to the test's own temporary folder, not /tmp.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

#: what gloo's abort while connecting prints, and nothing else of a launch does
GLOO_ABORT = "terminate called without an active exception"


def launch(cmd: Sequence[str], env: dict[str, str], tmp: Path, *, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; once more when gloo aborted a process while connecting (see the module's docstring)."""
    env = {**env, "GLOO_SOCKET_IFNAME": "lo", "TMPDIR": str(tmp)}
    done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 and GLOO_ABORT in done.stderr:
        done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done
