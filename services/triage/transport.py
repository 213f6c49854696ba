"""The triage worker's faust transport: cctriage_common.faust_transport with the ack guard on.

The transport (bounded fetch wait; no false "gap" commits across the post-rebalance seek) now
lives in cctriage_common.faust_transport so every faust app of the project gets it through
cctriage_common.kafka.faust_config. The triage worker also switches on its ack guard: only a
message an agent has passed to ``take()`` can be acked, so a message faust's stream skips
around a rebalance stays uncommitted and is fetched again.
"""

from __future__ import annotations

from cctriage_common import faust_transport
from cctriage_common.faust_transport import SCHEME, take

__all__ = ["SCHEME", "register", "take"]


def register(fetch_max_wait_ms: int) -> str:
    """Make ``cctriage-kafka://`` URLs use the project transport with the ack guard on."""
    return faust_transport.register(fetch_max_wait_ms, ack_only_taken=True)
