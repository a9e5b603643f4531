"""How much of a ticket its initialisation alone decides:
`python -m lth_tf.instruments.init_magnitude --run_dir=DIR [--replicate=0] [--data_dir=D]`.

For each finished ticket level L of a replicate, the mask that IMP would draw if training never moved a weight
(the run's pruning round applied L times to θ0's magnitudes, from the level-0 mask) is compared with the ticket
IMP drew: per tensor, the share of the ticket's survivors that θ0's magnitudes alone keep too, against chance
(the share a random mask of that density would keep). 1 means training changed nothing the mask depends on;
chance means the ticket owes nothing to θ0's magnitudes. θ0 is rebuilt from the run's seed (the run need hold
no weights: a record restored by lth_tf.archive will do); the data is read only for its sizes.

Writes `<run_dir>/init_magnitude/init_magnitude_r<R>.{md,json}` (lth_tf.atomic).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
from absl import flags

from lth_tf import atomic, cli
from lth_tf.errors import UserError
from lth_tf.lottery.existing import open_experiment
from lth_tf.rundir import RunDir, Task
from lth_tf.sparsity import pruning

COMMAND = "lth_tf.instruments.init_magnitude"
SUMMARY = "How much of each ticket θ0's magnitudes alone decide, per tensor and level, against chance."
OUT_DIR = "init_magnitude"
FLAGS = flags.FLAGS
Masks = dict[str, np.ndarray]


def init_magnitude_masks(start: Masks, theta0: dict[str, np.ndarray], levels: int,
                         prune_round: Callable[[Masks, dict], Masks]) -> dict[int, Masks]:
    """{L: the mask after L rounds of `prune_round` on θ0's magnitudes} for L = 1..levels."""
    out, masks = {}, start
    for level in range(1, levels + 1):
        masks = prune_round(masks, {n: theta0[n] for n in masks})
        out[level] = masks
    return out


def agreement(ticket: Masks, predicted: Masks) -> dict[str, dict]:
    """Per tensor: survivors, the share of them `predicted` keeps too, and chance (`predicted`'s density)."""
    out = {}
    for name, mask in ticket.items():
        alive, other = np.asarray(mask, bool), np.asarray(predicted[name], bool)
        out[name] = {"alive": int(alive.sum()), "size": int(alive.size),
                     "shared": float((alive & other).sum() / alive.sum()) if alive.any() else float("nan"),
                     "chance": float(other.mean())}
    return out


def analyse(run: RunDir, theta0: dict[str, np.ndarray], prune_round, replicate: int = 0) -> dict:
    levels = sorted(t.level for t in run.finished() if t.replicate == replicate and t.branch == "ticket"
                    and t.level >= 1)
    if not levels:
        raise UserError(f"--run_dir={run.path}: replicate {replicate} has no finished pruned ticket level")
    start = run.read_masks(Task(replicate, 0, "ticket"))
    predicted = init_magnitude_masks(start, theta0, levels[-1], prune_round)
    return {"run": run.name, "replicate": replicate,
            "levels": {level: agreement(run.read_masks(Task(replicate, level, "ticket")), predicted[level])
                       for level in levels}}


def to_markdown(result: dict) -> str:
    levels = sorted(result["levels"], key=int)
    tensors = list(result["levels"][levels[0]])
    lines = [f"# How much of each ticket θ0 decides: {result['run']}, replicate {result['replicate']}", "",
             "Share of the ticket's survivors that θ0's magnitudes alone would keep (the run's pruning round applied "
             "L times to θ0), and in brackets chance (a random mask of that density). 1 = training changed nothing "
             "the mask depends on; chance = the ticket owes nothing to θ0's magnitudes.", "",
             "| tensor | " + " | ".join(f"level {lvl}" for lvl in levels) + " |",
             "|---|" + "---:|" * len(levels)]
    for name in tensors:
        cells = [result["levels"][lvl][name] for lvl in levels]
        lines.append(f"| {name} | " + " | ".join(f"{c['shared']:.3f} ({c['chance']:.3f})" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def define_flags() -> None:
    own = {"module_name": COMMAND}
    flags.DEFINE_string("run_dir", "", "The run directory (written by lth_tf.main).", **own)
    flags.DEFINE_integer("replicate", 0, "The replicate whose tickets are compared.", **own)
    flags.DEFINE_string("data_dir", "", "Where the run's data lives now, if it moved.", **own)


def main() -> int:
    run = RunDir.open(FLAGS.run_dir)
    if FLAGS.replicate not in run.replicates():
        raise UserError(f"--replicate={FLAGS.replicate}: {run.path} has replicates {run.replicates()}")
    experiment = open_experiment(run, FLAGS.data_dir)
    theta0 = experiment.start_weights(Task(FLAGS.replicate, 0, "ticket"))
    prune_cfg = experiment.cfg.prune
    result = analyse(run, theta0, lambda masks, weights: pruning.prune_round(masks, weights, prune_cfg),
                     FLAGS.replicate)
    out = os.path.join(run.file(OUT_DIR), f"{OUT_DIR}_r{FLAGS.replicate}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    atomic.write_json(out + ".json", result)
    atomic.write_text(out + ".md", to_markdown(result))
    print(f"written to {out}.md")
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
