"""Ticket transfer: a run that starts from another run's ticket (`--transfer_from=RUN --transfer_level=L`).

The source's ticket at level L (replicate `--transfer_replicate`) is its mask there and the weights its
level L started from (its rewind point; θ0 for level 0). It is carried into this run's network tensor by
tensor (`plan`):

- the embedding by token: a row of this run's vocabulary whose token is in the source's (`<pad>` and
  `<unk>` by name) takes the source row's mask and weights; an unmatched row takes this run's θ0 row (a
  fresh init of θ0's distribution) and a random mask at the source embedding's density;
- an output layer of another size (2 classes -> 4): this run's θ0 and a random mask at the source output
  tensor's density (dense if the source kept it dense);
- every other tensor is copied, and must have the source's shape (same network, same architecture).

In the run, level 0 trains the dense network on this run's data (the reference every level is compared
with); level 1's tasks take the transferred mask: the `ticket` starts from the transferred weights,
`reinit` from a fresh init, `random_mask` from the transferred weights under a random mask of the same
per-tensor sparsity (lth_tf.lottery.branches); later levels prune on from level 1 as in any run, rewinding
to the transferred weights. `transfer.json` records what was matched; the report shows it.

The source's files are read as they are: a run that kept only masks and metrics (no weights.npz, no
rewind.npz) serves if its rewind point is θ0, which is rebuilt from its config.json with the code path its
tasks used (lth_tf.lottery.imp.build_masked). Nothing here loads TensorFlow but that rebuild, so the
settings are checked (`check_source`, from RunConfig.validate) before TensorFlow loads.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Mapping

import numpy as np

from lth_tf.config import Rewind, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery.tasks import derive_seed
from lth_tf.nets import EMBEDDING_LAYER, OUTPUT_LAYER
from lth_tf.rundir import MASK, VOCAB, RunDir, Task
from lth_tf.sparsity.masks import Masks

EMBEDDING = f"{EMBEDDING_LAYER}/embeddings"
ARCHITECTURE = ("embedding_dim", "filters", "filter_sizes", "hidden", "lstm_layers")  # ModelConfig: shapes
SELECTION = ("prune_bias", "prune_embedding", "prune_output")  # PruneConfig: which tensors have masks
HOW = {"rows": "rows matched by token", "copied": "copied", "fresh": "re-initialised"}


# --- the source, checked before TensorFlow loads ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Source:
    """The run a transfer starts from and its ticket's task."""
    run: RunDir
    cfg: RunConfig
    task: Task

    @classmethod
    def open(cls, cfg: RunConfig) -> "Source":
        e = cfg.experiment
        run = RunDir.open(e.transfer_from, "--transfer_from")
        flag = f"--transfer_from={e.transfer_from}"
        if run.recorded_name() != run.name:
            raise UserError(f"{flag}: this run was made as {run.recorded_name()} and its name is its identity: "
                            f"give it its name back")
        if not os.path.exists(run.file(VOCAB)):
            raise UserError(f"{flag}: no {VOCAB} (the vocabulary its embedding rows belong to); a run record is "
                            f"restored first: python -m lth_tf.archive --restore={e.transfer_from} --output_dir=DIR")
        replicates = run.replicates()
        if e.transfer_replicate not in replicates:
            raise UserError(f"--transfer_replicate={e.transfer_replicate}: the source run has replicate(s) "
                            f"{', '.join(map(str, replicates)) or 'none'}")
        task = Task(e.transfer_replicate, e.transfer_level, "ticket")
        if not run.is_done(task):
            done = [t.level for t in run.finished() if t.replicate == task.replicate and t.branch == "ticket"]
            raise UserError(f"--transfer_level={task.level}: the source's replicate {task.replicate} has not "
                            f"finished its ticket at that level (finished: {', '.join(map(str, done)) or 'none'})")
        if not os.path.exists(run.task_file(task, MASK)):
            raise UserError(f"--transfer_level={task.level}: {run.task_file(task, MASK)} is missing: the source "
                            f"ticket's mask is what a transfer carries")
        source = cls(run, run.config(), task)
        if not source.starts_from_theta0 and not os.path.exists(run.rewind_path(task.replicate)):
            raise UserError(f"{flag}: its level {task.level} started from {source.cfg.rewind().describe()}, kept in "
                            f"{run.rewind_path(task.replicate)}, which is missing (only θ0 can be rebuilt)")
        return source

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def starts_from_theta0(self) -> bool:
        """Whether the ticket's level started from θ0: level 0 always does, later levels when rewinding to θ0."""
        return self.task.level == 0 or self.cfg.rewind() == Rewind()

    @property
    def seed(self) -> int:
        return self.cfg.experiment.seed + self.task.replicate

    @property
    def rebuilds_theta0(self) -> bool:
        """θ0 is rebuilt unless the source's rewind.npz holds it (kept, and its rewind point is θ0)."""
        kept = os.path.exists(self.run.rewind_path(self.task.replicate))
        return self.starts_from_theta0 and not (kept and self.cfg.rewind() == Rewind())

    def start(self) -> str:
        """Where the ticket's start weights come from, in words."""
        if self.rebuilds_theta0:
            return f"θ0 rebuilt from the source's config.json (seed {self.seed})"
        rewind = os.path.relpath(self.run.rewind_path(self.task.replicate), self.run.path)
        return f"{rewind} ({self.cfg.rewind().describe() if self.task.level else 'θ0'})"


def check_source(cfg: RunConfig) -> None:
    """UserError naming the flag if `cfg`'s transfer cannot work: called by RunConfig.validate."""
    e = cfg.experiment
    if e.transfer_level < 0:
        raise UserError(f"--transfer_from={e.transfer_from} needs --transfer_level=L: the source level whose ticket "
                        f"to carry (0 = its dense level)")
    for flag, given in (("--late_rewind", e.late_rewind), ("--finetune", e.finetune)):
        if given:
            raise UserError(f"{flag}: a transfer starts from the source ticket's own rewind point (the source "
                            f"run's {flag} decides it); leave it out with --transfer_from")
    if "study_random" in cfg.branch_list():
        raise UserError(f"--branches={e.branches}: study_random is a trajectory of its own from the dense level, "
                        f"with no transferred counterpart; choose from ticket, reinit, random_mask")
    if cfg.prune.levels < 1:
        raise UserError(f"--levels={cfg.prune.levels}: with --transfer_from level 1 trains the transferred "
                        f"ticket; give --levels=1 or more")
    check_compatible(Source.open(cfg), cfg)


def check_compatible(source: Source, cfg: RunConfig) -> None:
    """The same network and architecture, and masks over the same tensors (shapes: `plan`, at build time)."""
    ours, theirs = cfg.resolved(), source.cfg.resolved()
    if ours.model.model != theirs.model.model:
        raise UserError(f"--model={cfg.model.model}: the source run {source.name} is a {theirs.model.model}; a "
                        f"ticket transfers only into the network it was found in")
    glove = bool(cfg.data.glove_path or source.cfg.data.glove_path)  # a GloVe file sets the embedding's width
    for section, names in (("model", ARCHITECTURE), ("prune", SELECTION)):
        for name in names:
            if name == "embedding_dim" and glove:
                continue  # compared by shape when the run builds its model (`plan`)
            mine, its = getattr(getattr(ours, section), name), getattr(getattr(theirs, section), name)
            if name == "filter_sizes":
                mine, its = ours.model.widths(), theirs.model.widths()
            if mine != its:
                raise UserError(f"--{name}={getattr(getattr(cfg, section), name)}: the source run {source.name} "
                                f"has --{name}={getattr(getattr(source.cfg, section), name)}; a ticket transfers "
                                f"only into the same architecture and pruned tensors")


# --- carrying a ticket: pure functions --------------------------------------------------------------
def match_rows(source_vocab: list[str], vocab: list[str]) -> np.ndarray:
    """For each token id of `vocab`, the source's id of the same token, or -1."""
    index = {token: i for i, token in enumerate(source_vocab)}
    return np.array([index.get(token, -1) for token in vocab], np.int64)


def plan(name: str, source_shape: tuple, shape: tuple) -> str:
    """How tensor `name` is carried: 'rows' (the embedding, by token), 'copied', or 'fresh' (an output layer
    of another size). Any other difference is another architecture: UserError."""
    source_shape, shape = tuple(source_shape), tuple(shape)
    if name == EMBEDDING and source_shape[1:] == shape[1:]:
        return "rows"
    if name != EMBEDDING and source_shape == shape:
        return "copied"
    if name.startswith(f"{OUTPUT_LAYER}/") and source_shape[:-1] == shape[:-1]:
        return "fresh"
    raise UserError(f"--transfer_from: {name} is {source_shape} in the source and {shape} here; a ticket transfers "
                    f"only into the same architecture (--embedding_dim or --glove_path, --filters, --hidden ...)")


def random_subset(where: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(density * n) of the n True positions of `where`, chosen at random."""
    positions = np.flatnonzero(where)
    out = np.zeros(where.size, bool)
    out[rng.permutation(positions)[:int(round(density * positions.size))]] = True
    return out.reshape(where.shape)


def unmatched(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """The positions of an embedding of `shape` in rows no source row matched."""
    return np.broadcast_to((rows < 0).reshape(-1, *([1] * (len(shape) - 1))), shape)


def carry_masks(source: Masks, rows: np.ndarray, shapes: Mapping[str, tuple], seed: int) -> Masks:
    """The source's masks in this run's shapes; fresh positions get a random mask at the source tensor's
    density, seeded per tensor (`seed`: this run's replicate)."""
    out = {}
    for name, shape in shapes.items():
        shape, kept = tuple(shape), source[name]
        how = plan(name, kept.shape, shape)
        if how == "copied":
            out[name] = kept.copy()
            continue
        rng = np.random.default_rng(derive_seed(seed, "transfer", name))
        fresh = unmatched(rows, shape) if how == "rows" else np.ones(shape, bool)
        mask = random_subset(fresh, float(np.mean(kept)), rng)
        if how == "rows":
            mask[rows >= 0] = kept[rows[rows >= 0]]
        out[name] = mask
    return out


def carry_weights(source: Mapping[str, np.ndarray], rows: np.ndarray, theta0: Mapping[str, np.ndarray]) -> dict:
    """The source's start weights in this run's shapes; fresh rows and tensors keep this run's θ0 (also any
    weight the source does not have)."""
    out = {}
    for name, value in theta0.items():
        how = plan(name, np.shape(source[name]), np.shape(value)) if name in source else "fresh"
        if how == "copied":
            out[name] = np.array(source[name], copy=True)
        elif how == "rows":
            out[name] = np.array(value, copy=True)
            out[name][rows >= 0] = source[name][rows[rows >= 0]]
        else:
            out[name] = value
    return out


# --- in a run --------------------------------------------------------------------------------------
class Transfer:
    """The source ticket of `cfg`, carried into a run of vocabulary `vocab` (its masks per replicate seed, its
    start weights from that replicate's θ0)."""

    def __init__(self, cfg: RunConfig, vocab: list[str]):
        self.source = Source.open(cfg)
        self.source_vocab = self.source.run.vocab()
        self.rows = match_rows(self.source_vocab, vocab)

    @functools.cached_property
    def source_masks(self) -> Masks:
        return self.source.run.read_masks(self.source.task)

    @functools.cached_property
    def source_weights(self) -> dict[str, np.ndarray]:
        """The weights the source ticket's level started from: its rewind point, or θ0 (read, else rebuilt)."""
        s = self.source
        return rebuild_theta0(s) if s.rebuilds_theta0 else s.run.read_rewind(s.task.replicate)

    def masks(self, seed: int, shapes: Mapping[str, tuple]) -> Masks:
        return carry_masks(self.source_masks, self.rows, shapes, seed)

    def weights(self, theta0: Mapping[str, np.ndarray]) -> dict:
        return carry_weights(self.source_weights, self.rows, theta0)

    def record(self, model, data) -> dict:
        """transfer.json: the source, and what was matched, for `model` (a MaskedModel of this run) on `data`."""
        s, matched = self.source, self.rows >= 0
        counts = np.bincount(data.train.token_ids, minlength=len(self.rows)).astype(np.int64)
        total = max(1, int(counts.sum()))
        words = matched.copy()
        words[:2] = False  # <pad>, <unk>: matched by name, but they cover no word
        unmatched_ids = np.flatnonzero(~matched)
        frequent = unmatched_ids[np.argsort(-counts[unmatched_ids], kind="stable")][:10]
        tensors = {}
        for name, var in model.weights.items():
            source_shape = np.shape(self.source_weights[name]) if name in self.source_weights else None
            kept = self.source_masks.get(name)
            tensors[name] = {"carried": HOW[plan(name, source_shape, var.shape) if source_shape else "fresh"],
                             "shape": list(var.shape), "source_shape": list(source_shape or ()),
                             "source_sparsity": None if kept is None else 1.0 - float(np.mean(kept))}
        source_sparsity = 1.0 - (sum(int(m.sum()) for m in self.source_masks.values())
                                 / max(1, sum(m.size for m in self.source_masks.values())))
        return {
            "source": {"run": s.name, "path": os.path.abspath(s.run.path), "dataset": s.cfg.data.dataset,
                       "classes": s.run.data_info()["class_names"], "replicate": s.task.replicate,
                       "level": s.task.level, "branch": s.task.branch, "sparsity": source_sparsity,
                       "start": s.start()},
            "classes": list(data.class_names),
            "embedding": {"rows": len(self.rows), "source_rows": len(self.source_vocab),
                          "matched_rows": int(matched.sum()), "matched_fraction": float(matched.mean()),
                          "special_tokens_matched": [t for t, m in zip(self.source_vocab[:2], matched[:2]) if m],
                          "train_tokens": int(counts.sum()),
                          "train_tokens_covered": float(counts[words].sum() / total),
                          "train_tokens_unknown": float(counts[1] / total) if len(counts) > 1 else 0.0,
                          "most_frequent_unmatched": [data.vocab[i] for i in frequent]},
            "tensors": tensors,
            "reinitialised": [n for n, t in tensors.items() if t["carried"] == HOW["fresh"]],
        }


def rebuild_theta0(source: Source) -> dict[str, np.ndarray]:
    """The source replicate's θ0 as its tasks built it (their code path, settings, vocabulary size, classes
    and GloVe matrix), masked dense as its level 0 started: bit-identical to its rewind.npz when that is θ0."""
    from lth_tf.lottery.imp import build_masked

    run, cfg = source.run, source.cfg
    vocab = run.vocab()
    matrix = None
    if cfg.data.glove_path:
        from lth_tf.data import load_glove

        matrix = load_glove(cfg.data.glove_path, vocab, log=lambda m: None)[0]
    model = build_masked(cfg, len(vocab), run.data_info()["num_classes"], source.seed, matrix, run.format >= 2)
    model.apply_masks()  # dense masks: only the padding row is zeroed, as when the source's level 0 began
    return model.snapshot()


def describe(record: dict) -> str:
    """transfer.json in one paragraph, for summary.md."""
    s, e = record["source"], record["embedding"]
    n, m = len(s["classes"]), len(record["classes"])
    fresh = ", ".join(record["reinitialised"]) + (f" ({n} -> {m} classes)" if n != m else "")
    return (f"the ticket of {s['run']} ({s['dataset']}, replicate {s['replicate']}, level {s['level']}, "
            f"{100 * s['sparsity']:.2f}% sparse; start weights: {s['start']}). Embedding rows matched by token: "
            f"{e['matched_rows']:,} of {e['rows']:,} ({100 * e['matched_fraction']:.1f}%), covering "
            f"{100 * e['train_tokens_covered']:.1f}% of this run's training tokens "
            f"({100 * e['train_tokens_unknown']:.1f}% are <unk>); unmatched rows: this run's θ0 and a random mask "
            f"at the source embedding's sparsity. Re-initialised with their own random masks: "
            f"{fresh if record['reinitialised'] else 'none'}. Level 0 is the dense network trained on this data; "
            f"level 1 the transferred ticket and its controls (reinit: its mask, a fresh init; random_mask: its "
            f"per-tensor sparsity, its start); later levels prune on.")
