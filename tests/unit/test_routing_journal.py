"""The SQLite journal: what was committed comes back, in the state it was last left in."""

from __future__ import annotations

from cctriage_routing.engine import COMPLETED, OFFERED, WAITING, Engine, RouteRequest, RoutingConfig
from cctriage_routing.journal import Journal, collect


class Clock:
    now = 5_000.0

    def __call__(self) -> float:
        return self.now


def _route(e: Engine, conv_id: str, stressed: bool = True) -> None:
    e.route(
        RouteRequest(conv_id, "t", "q", 1, 60, 0.9, stressed, language="en", idempotency_key=f"k-{conv_id}")
    )


def _reload(path, clock) -> Engine:
    e = Engine(RoutingConfig(offer_timeout_seconds=20), clock=clock)
    journal = Journal(path)
    journal.load(e)
    journal.close()
    return e


def test_changes_in_one_group_commit_end_in_their_last_state(tmp_path):
    clock = Clock()
    e = Engine(RoutingConfig(offer_timeout_seconds=20), clock=clock)
    journal = Journal(tmp_path / "j.sqlite3")
    tickets = []
    # Queued before the writer starts, so all of it lands in one transaction.
    e.login("a", "t", 1, [], ["en"], [(1, 2)])
    tickets.append(journal.submit(collect(e)))
    _route(e, "done")
    tickets.append(journal.submit(collect(e)))
    conv = e.conversations["done"]
    e.accept("a", conv.offer_id)
    tickets.append(journal.submit(collect(e)))
    e.complete("a", "done")
    tickets.append(journal.submit(collect(e)))
    _route(e, "offered")
    tickets.append(journal.submit(collect(e)))
    journal.start()
    for ticket in tickets:
        journal.wait(ticket)
    journal.close()

    again = _reload(tmp_path / "j.sqlite3", clock)
    again.check_invariants()
    assert "done" not in again.conversations and again.finished["done"].status == COMPLETED
    offered = again.conversations["offered"]
    assert offered.status == OFFERED and offered.agent_id == "a"
    offer = again.offers[offered.offer_id]
    assert offer.expires_at == clock.now + 20  # the original deadline, not a fresh one
    assert again.route(RouteRequest("x", "t", "q", 1, 1, language="en", idempotency_key="k-done")).duplicate
    # The restored offer still times out and the conversation waits again.
    clock.now += 21
    again.tick()
    assert again.conversations["offered"].status == WAITING
    assert again.agents["a"].missed_offers == 1
