"""Free loopback ports for the servers the tests start."""
from __future__ import annotations

import socket
from contextlib import ExitStack, closing


def free_port() -> int:
    """A loopback port nothing listens on right now (it may be taken again once released)."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hold_port(stack: ExitStack, port: int = 0) -> int:
    """Bind port (any free one when 0) until stack closes, so that no other probe gets it meanwhile."""
    probe = stack.enter_context(closing(socket.socket()))
    probe.bind(("127.0.0.1", port))
    return probe.getsockname()[1]
