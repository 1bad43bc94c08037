"""Runs the Python original's server (PyPI jwthenticator 1.6.3) on 127.0.0.1 only.

Usage: python original_server.py PORT

The original's own `python -m jwthenticator.server` listens on every interface; this builds the
very same aiohttp app (its `Server` class, configured by the same environment variables) and
binds it to loopback. Used by the compatibility tests to write a database the way the original
does.
"""

import sys

from aiohttp import web

from jwthenticator.loop_management import main_event_loop
from jwthenticator.server import Server


def main() -> None:
    port = int(sys.argv[1])
    server = Server(start_server=False)
    web.run_app(
        server.app,
        host="127.0.0.1",
        port=port,
        loop=main_event_loop,
        print=lambda message: print(message, flush=True),
    )


if __name__ == "__main__":
    main()
