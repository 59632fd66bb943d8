"""Loaded by task processes that the sandbox runs with Python (via PYTHONPATH).

A task with host networking sees the host's hostname; on a simulated host that is
$RESIDENCY_SANDBOX_HOSTNAME, so `socket.gethostname()` answers it.
"""

import os
import platform
import socket

_HOSTNAME = os.environ.get("RESIDENCY_SANDBOX_HOSTNAME") or ""
if _HOSTNAME:

    def _gethostname() -> str:
        return _HOSTNAME

    def _node() -> str:
        return _HOSTNAME

    socket.gethostname = _gethostname
    platform.node = _node
