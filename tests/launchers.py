"""Running a command under a multi-process launcher (torchrun, ``accelerate launch``) in the tests.

On this 2-core machine a launch of two CPU processes has once, in about a dozen full runs of the suite, ended
with one process aborted in native code ("terminate called without an active exception", a C++
``std::terminate``) right after both had loaded the model, with nothing else printed: torch.distributed's gloo
group was being set up (pytorch/pytorch#188266 reports a gloo abort at the same stage). Such a launch is run
once more, with a warning that names it in the test summary; any other failure is not retried, and a second
abort fails the test. The processes talk over the loopback interface only (``GLOO_SOCKET_IFNAME=lo``), and the
launcher's log folders go to the test's own temporary folder, not /tmp.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path

#: what a native abort prints (no Python traceback of the test's code comes with it)
NATIVE_ABORT = "terminate called without an active exception"


def launch(cmd: Sequence[str], env: dict[str, str], tmp: Path, *, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; once more, with a warning, when a process aborted in native code (see the module's docstring)."""
    env = {**env, "GLOO_SOCKET_IFNAME": "lo", "TMPDIR": str(tmp)}
    done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 and NATIVE_ABORT in done.stderr:
        warnings.warn(f"a process of the launch aborted in native code; launched once more:\n{done.stderr[-1500:]}",
                      stacklevel=2)
        done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done
