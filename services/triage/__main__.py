"""Run one triage worker.

    python -m cctriage_triage        (or: cctriage-triage)

Settings come from the environment (services/triage/README.md). Start as many workers as
you like with the same TRIAGE_APP_ID: they share the partitions, and each needs its own
TRIAGE_WEB_PORT on one host. SIGTERM drains: the worker stops taking events, finishes the
batch and the routing call in flight, flushes the producer, commits and exits.
"""

from __future__ import annotations

import gc
import sys


def use_event_loop(kind: str) -> None:
    """Make every event loop created from now on (the worker's, faust's consumer thread's) ``kind``."""
    import asyncio

    if kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())


def main() -> int:
    from cctriage_common import logs
    from cctriage_common.settings import SettingsError
    from cctriage_triage.settings import load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"cctriage-triage: {exc}", file=sys.stderr)
        return 2
    logs.configure("triage", settings.log_level)
    sys.setswitchinterval(settings.gil_switch_interval_s)
    gc.set_threshold(*settings.gc_thresholds)
    use_event_loop(settings.event_loop)
    if settings.create_topics:
        from cctriage_common.topics import ensure_topics

        ensure_topics(settings.bootstrap_servers, settings=settings.topics)

    import faust
    from cctriage_triage.app import app

    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "cctriage_common.logs.JsonFormatter", "service": "triage"}},
            "handlers": {
                "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
            },
            "root": {"handlers": ["stdout"], "level": settings.log_level.upper()},
        },
    )
    # faust's terminal spinner: at log level warning and above it sets the root logger to DEBUG
    # (so every debug record of aiokafka and faust is built, to spin it: measured as 12% of the
    # worker's Python time under load) and writes terminal escapes into the JSON log lines.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
