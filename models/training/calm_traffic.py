"""How often the shipped model calls the demo's calm traffic stressed.

Run: ``.venv/bin/python models/training/calm_traffic.py [--model-dir DIR]``

The demo simulator (``cctriage_sim.texts``) opens calm conversations with a plain problem
report ("Good morning, the internet keeps dropping every evening.") and follows up with calm
details, tricky-but-calm messages and thanks. None of them should be stressed; the share
that is, and the share scored at 0.99 or more, go in the model card. The texts were never
trained on (``tests/unit/test_model_training_extra.py`` checks the train-only messages do
not echo them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cctriage_common.sentiment import SentimentModel
from cctriage_sim import texts

FILL = {"ref": "AB1234", "digits": "42", "day": "Monday"}


def calm_sets() -> dict[str, list[str]]:
    openings = sorted(
        {
            opening.format(thing=thing, issue=issue, **FILL)
            for topic in texts.TOPICS.values()
            for opening in texts.OPENING
            for thing in topic["thing"][:2]
            for issue in topic["issue"]
        }
    )
    follow_ups = [t.format(thing="my order", **FILL) for t in texts.DETAIL + texts.CALM_TRICKY + texts.THANKS]
    return {"openings": openings, "follow_ups": follow_ups}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--show", type=int, default=10, help="print this many of the highest-scored")
    args = parser.parse_args(argv)
    model = SentimentModel.load(args.model_dir, intra_op_threads=2)
    print(model.version)
    for name, messages in calm_sets().items():
        scores = model.score(messages)
        flagged = sorted(
            ((s.stress, m) for s, m in zip(scores, messages, strict=True) if s.stressed), reverse=True
        )
        print(
            f"{name}: n={len(messages)} stressed={len(flagged)} ({len(flagged) / len(messages):.2f}) "
            f"stress>=0.99: {sum(s.stress >= 0.99 for s in scores)} "
            f"median stress {sorted(s.stress for s in scores)[len(scores) // 2]:.3f} "
            f"neutral {sum(s.sentiment == 'neutral' for s in scores) / len(scores):.2f}"
        )
        for stress, message in flagged[: args.show]:
            print(f"  {stress:.3f} {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
