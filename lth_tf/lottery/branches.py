"""The branches of an experiment, as a table. Each entry says where a task's mask comes from, where its
start weights come from, when its training ends, and so whether its trained weights choose its next
level's mask (a trajectory). A new control is one entry.

mask sources:  "own"        pruned from this branch's own previous level (level 1: from the dense level)
               "ticket"     the ticket's mask at this level
               "early_bird" the early_bird trajectory's mask at this level
               "random"     random positions, the ticket's per-tensor survivor counts at this level
start sources: "rewind" the run's rewind point (θ0, step k of level 0, or the end of dense training)
               "fresh"  a fresh random init from θ0's distribution, seeded by (replicate, level, branch)
stops:         "end"        the level's training as configured (--epochs, --patience)
               "early_bird" also as soon as the mask it would hand on has converged (lth_tf.lottery.early_bird)
"""
from __future__ import annotations

import dataclasses

from lth_tf import config


@dataclasses.dataclass(frozen=True)
class Branch:
    name: str
    mask: str
    start: str
    help: str
    stop: str = "end"

    @property
    def is_trajectory(self) -> bool:
        """Its trained weights choose its next mask."""
        return self.mask == "own"


BRANCHES = {b.name: b for b in (
    Branch("ticket", mask="own", start="rewind",
           help="the IMP trajectory: survivors back to the rewind point (θ0: the winning ticket)"),
    Branch("reinit", mask="ticket", start="fresh",
           help="the ticket's mask with a fresh random init (Frankle & Carbin's control)"),
    Branch("random_mask", mask="random", start="rewind",
           help="a random mask with the ticket's per-tensor sparsity, started like the ticket"),
    Branch("study_random", mask="own", start="fresh",
           help="the study's 'random' mode: a trajectory of its own, re-initialised at random every level"),
    Branch("early_bird", mask="own", start="rewind", stop="early_bird",
           help="a trajectory whose levels end once the mask they hand on has converged (early-bird tickets)"),
    Branch("early_bird_ticket", mask="early_bird", start="rewind",
           help="the early_bird trajectory's mask trained fully from the rewind point, to compare with the ticket"),
)}
assert tuple(BRANCHES) == config.BRANCHES, "config.BRANCHES (the flag's choices) must list this table's names"
