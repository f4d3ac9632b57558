"""Run the web application with uvicorn: one process, stopped cleanly by SIGTERM or Ctrl-C.

The socket is bound here, before uvicorn starts, so that a port already taken is one line
from the CLI (not a log record) and port 0 (any free port) can be reported. uvicorn's own
access log is off: `security.SecurityHeaders` logs each request without its query string.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import socket
import sys
import threading
from collections.abc import Callable
from logging.handlers import QueueHandler, QueueListener
from types import FrameType
from typing import TextIO

import uvicorn

from trialfinder.errors import TrialFinderError
from trialfinder.i18n import _
from trialfinder.web.app import Settings, create_app


class ServeError(TrialFinderError):
    """The server cannot start (the address is taken, not ours, …)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6, as the host says)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(_("Cannot listen on {host}: {reason}").format(
            host=host, reason=exc.strerror)) from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Answers are small: without this, Nagle's algorithm and delayed ACKs hold each one
        # back 40 ms (connections accepted from it inherit the option).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(_("Cannot listen on {host}:{port}: {reason}").format(
            host=host, port=port, reason=exc.strerror or exc)) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log: TextIO | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests under way and return.

    `on_ready(url)` is called once the trials are loaded and the socket accepts requests.
    Request lines (method, path, status, time: never a query string) go to `log`
    (default stderr).
    """
    app = create_app(settings)
    app.state.web.warm()  # a --trial that cannot be loaded fails here, before listening
    sock = bind(host, port)
    listener = _log_to(log or sys.stderr)
    config = uvicorn.Config(
        app, access_log=False, log_config=None, lifespan="off", server_header=False,
        timeout_graceful_shutdown=5, timeout_keep_alive=5,
    )

    def ready() -> None:
        threading.Thread(target=_preload, name="preload", daemon=True).start()
        if on_ready is not None:
            on_ready(url_of(sock))

    server = ReadyServer(config, on_ready=ready)
    # uvicorn stops on SIGTERM/SIGINT, then raises the signal again for the handler it found:
    # these handlers make that a plain return (exit 0) instead of death by signal.
    stopped: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        listener.stop()  # writes what is still queued
    if not server.started:
        raise ServeError(_("The server did not start (see the lines above)"))


def _log_to(stream: TextIO) -> QueueListener:
    """Log lines go through a queue to a thread that writes them: a slow reader of the log
    (a full pipe to journald) never holds up the event loop."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for name, level in (("trialfinder.web", logging.INFO), ("uvicorn.error", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [QueueHandler(records)]
        logger.setLevel(level)
        logger.propagate = False
    listener = QueueListener(records, handler)
    listener.start()
    return listener


class ReadyServer(uvicorn.Server):
    """uvicorn's server, telling when it is ready."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready()


def _preload() -> None:
    """Import what the first map needs (folium: about 0.4 s) while the server already
    answers, so that the first patient does not wait for it."""
    import folium  # noqa: F401

    from trialfinder.mapping import leaflet_assets

    leaflet_assets()
    # What is loaded now lives as long as the server: keep it out of the cyclic garbage
    # collector's full passes, which otherwise walk it all every few thousand requests
    # (pauses of tens of milliseconds: the p99 of /api/nearest under load).
    gc.collect()
    gc.freeze()
