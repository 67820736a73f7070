"""Whether a process of this machine still runs: a leaf module every layer may use.

The job store (jobs/store.py) frees rows claimed by a process that died, the
trainer (training/trainer.py) sees a training's lock left by a dead one, and a
Ray actor's weights cache (ocr/shipped_weights.py) removes the part-files a
dead writer left behind; all ask the same question, of a pid on this host.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process `pid` runs on this machine (also one of another user's)."""
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the pid is only checked
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
