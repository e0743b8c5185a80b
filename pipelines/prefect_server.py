"""Prefect's temporary API server, bound to the process that started it so a killed CLI leaves no server behind."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import threading
from types import SimpleNamespace

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """`preexec_fn`: the kernel sends this child SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class PopenBoundToParent(subprocess.Popen):
    """Popen whose child dies with this process; only from the main thread, since the kernel ties the
    parent-death signal to the thread that forked (a worker thread's exit would stop the server)."""

    def __init__(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread() and "preexec_fn" not in kwargs:
            kwargs["preexec_fn"] = die_with_parent
        super().__init__(*args, **kwargs)


def bind_temporary_server_to_this_process() -> None:
    """Make the temporary server Prefect starts on first use die with this process (idempotent).

    Prefect stops it at a normal exit (atexit); a SIGKILL skips atexit and used to leave a
    ~220 MB server running. Only Prefect's server module sees the bound Popen. With an API
    URL configured no temporary server starts, and Prefect's server code (about 1.5 CPU-s
    to import) stays unloaded.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return
    from prefect.server.api import server

    if isinstance(server.subprocess, SimpleNamespace):
        return
    bound = SimpleNamespace(**{name: getattr(subprocess, name) for name in dir(subprocess) if not name.startswith("__")})
    bound.Popen = PopenBoundToParent
    server.subprocess = bound
