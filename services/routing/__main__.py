"""Routing service entrypoint.

    python -m cctriage_routing          # or: cctriage-routing

Reads RoutingSettings from the environment (see services/routing/README.md), recovers the
journal, serves gRPC, and on SIGTERM/SIGINT drains and exits.
"""

from __future__ import annotations

import signal
import sys
import threading

from cctriage_common.logs import configure
from cctriage_common.settings import SettingsError, load
from cctriage_routing.server import serve_forever
from cctriage_routing.settings import RoutingSettings


def main() -> int:
    try:
        settings = load(RoutingSettings)
    except SettingsError as exc:
        print(f"cctriage-routing: {exc}", file=sys.stderr)
        return 2
    configure("routing", settings.log_level)
    stop = threading.Event()
    # Handlers only set a flag; the main thread does the shutdown.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve_forever(settings, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
