"""Running the instability analysis's tasks (the graph: lth_tf.lottery.spawn_tasks) inside an IMP experiment
(lth_tf.lottery.imp.Experiment.run hands them here), so they are claimed, resumed and run on any executor
like the IMP tasks.

- rewind point n: level 0's training replayed from θ0 with level 0's own seeds, batches and dropout, up to
  step n; the weights there are those the dense level had at step n (with --late_rewind --rewind_step=n,
  the run's own rewind.npz, bit for bit). Its metrics: the point's validation accuracy.
- copy c: level L's ticket mask (its mask.npz: the run may hold no weights), the rewind point's weights,
  and a level's training (--epochs, --patience, the best epoch kept) with copy c's data order and dropout,
  seeded by (replicate seed, "instability", L, n, c).
- path: the two copies' weights interpolated at k evenly spaced points (lth_tf.lottery.interpolation),
  each evaluated on the validation split.
"""
from __future__ import annotations

import dataclasses
import math
import time

from lth_tf.errors import UserError
from lth_tf.lottery import interpolation, spawn_tasks
from lth_tf.lottery.tasks import DENSE, dense, derive_seed
from lth_tf.rundir import Task
from lth_tf.sparsity import masks as masks_lib
from lth_tf.training import train


def run(exp, task: Task) -> dict:
    """Run one task of the analysis in experiment `exp`; returns its metrics (written last). Each kind returns
    its metrics and the seconds earlier attempts spent (a resumed task's wall time includes them)."""
    s = spawn_tasks.parse(task)
    started = time.perf_counter()
    kind = {"rewind": rewind_point, "copy": train_copy, "path": evaluate_path}[s.kind]
    metrics, resumed_seconds = kind(exp, task, s)
    metrics.update(kind=s.kind, replicate=s.replicate, level=s.level, iteration=s.iteration,
                   seconds=time.perf_counter() - started + resumed_seconds)
    exp.run_dir.write_metrics(task, metrics)
    return metrics


def _train(exp, task: Task, mm, seed: int, train_cfg, snapshot_steps=()):
    """A level's training of `mm` as Experiment.run trains one: batches and dropout from `seed`, checkpoints."""
    checkpoints = exp.run_dir.checkpoints(task) if exp.resumable else None
    result = train(mm, lambda epoch: exp.batches(exp.data.train, derive_seed(seed, "epoch", epoch)),
                   lambda: exp.batches(exp.data.valid), train_cfg, seed=seed, snapshot_steps=snapshot_steps,
                   log=exp.log, progress=exp.progress, checkpoints=checkpoints, epoch_seeded=exp.resumable,
                   steps_per_epoch=exp.steps_per_epoch)
    return result, checkpoints


def rewind_point(exp, task: Task, s: spawn_tasks.Spawned) -> tuple[dict, float]:
    r, n = s.replicate, s.iteration
    mm = exp.model(r)  # the same calls, in the same order, as the dense level's Experiment.run
    mm.set_masks(masks_lib.dense_masks(mm.shapes))
    mm.restore(exp.start_weights(dense(r)))
    steps, checkpoints, resumed_seconds = 0, None, 0.0
    if n > 0:
        t = exp.cfg.resolved().train
        epochs = min(t.epochs, math.ceil(n / exp.steps_per_epoch))  # what reaching step n takes, no more
        result, checkpoints = _train(exp, task, mm, derive_seed(exp.seed(r), 0, DENSE),
                                     dataclasses.replace(t, epochs=epochs), snapshot_steps=[n])
        if n not in result.snapshots:
            raise UserError(f"--rewind_steps: step {n} is beyond level 0's {result.steps} training steps (it "
                            f"stopped early): choose an earlier step")
        steps, resumed_seconds = n, result.resumed_seconds
        mm.restore(result.snapshots[n])
    exp.run_dir.write_weights(task, mm.snapshot())
    valid = mm.evaluate(exp.batches(exp.data.valid))
    if checkpoints is not None:
        checkpoints.clear()
    return {"steps": steps, "valid_loss": valid["loss"], "valid_accuracy": valid["accuracy"],
            "summary": f"rewind point at step {n}: valid acc {valid['accuracy']:.4f}"}, resumed_seconds


def _ticket_masks(exp, s: spawn_tasks.Spawned):
    return exp.read(Task(s.replicate, s.level, spawn_tasks.TICKET), exp.run_dir.read_masks)


def train_copy(exp, task: Task, s: spawn_tasks.Spawned) -> tuple[dict, float]:
    r = s.replicate
    mm = exp.model(r)
    masks = _ticket_masks(exp, s)
    mm.set_masks(masks)
    mm.restore(exp.read(spawn_tasks.rewind_point(r, s.iteration), exp.run_dir.read_weights))
    seed = derive_seed(exp.seed(r), "instability", s.level, s.iteration, s.seed_copy)
    result, checkpoints = _train(exp, task, mm, seed, exp.cfg.resolved().train)
    exp.run_dir.write_weights(task, mm.snapshot())
    if checkpoints is not None:
        checkpoints.clear()
    best = result.best
    return {"copy": s.copy, "seed": seed, "sparsity": masks_lib.sparsity_report(masks)["overall"]["sparsity"],
            "valid_loss": best["valid_loss"], "valid_accuracy": best["valid_accuracy"],
            "epochs_trained": result.epochs_trained, "best_epoch": result.best_epoch, "steps": result.steps,
            "history": result.history,
            "summary": f"copy {s.copy} from step {s.iteration}: valid acc {best['valid_accuracy']:.4f} | "
                       f"{result.epochs_trained} epochs"}, result.resumed_seconds


def evaluate_path(exp, task: Task, s: spawn_tasks.Spawned) -> tuple[dict, float]:
    r = s.replicate
    mm = exp.model(r)
    mm.set_masks(_ticket_masks(exp, s))
    a, b = (exp.read(spawn_tasks.copy(r, s.level, s.iteration, c), exp.run_dir.read_weights) for c in s.copies)
    alphas, losses, accuracies = interpolation.alphas(s.points), [], []
    for alpha in alphas:
        mm.restore(interpolation.interpolate(a, b, alpha))
        valid = mm.evaluate(exp.batches(exp.data.valid))
        losses.append(valid["loss"])
        accuracies.append(valid["accuracy"])
    errors = [1.0 - acc for acc in accuracies]
    instability = interpolation.barrier(errors)
    return {"copies": list(s.copies), "points": s.points, "instability": instability,
            "loss_barrier": interpolation.barrier(losses), "valid_examples": len(exp.data.valid),
            "path": {"alpha": alphas, "valid_loss": losses, "valid_accuracy": accuracies, "valid_error": errors},
            "summary": f"path {s.copies[0]}-{s.copies[1]} from step {s.iteration}: instability "
                       f"{100 * instability:.2f} points"}, 0.0
