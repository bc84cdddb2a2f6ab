"""Process helpers shared by tests that start real servers and browsers."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
