"""Typed hyperparameters: one frozen dataclass per concern, each field with its help text, its choices or
range, and the condition under which it applies. This module is the one place settings are checked
(`RunConfig.validate`, before any data is read or any directory made) and the one place a run's identity
is defined (`RunConfig.identity`: the settings after defaults are resolved, whatever their spelling).

The command line's absl flags are generated from these fields (`lth_tf.cli`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from lth_tf.errors import UserError

DATASETS = ("imdb", "ag_news", "imdb_sample", "ag_news_sample")
MODELS = ("cnn", "lstm")
BRANCHES = ("ticket", "reinit", "random_mask", "study_random", "early_bird",
            "early_bird_ticket")  # described in lth_tf.lottery.branches
STRATEGIES = ("local", "global", "lamp")  # lth_tf.sparsity.pruning.STRATEGIES
GLOBAL_RANKINGS = ("all", "no_embedding")  # lth_tf.sparsity.pruning.GLOBAL_RANKINGS
SPLITS = ("study", "official", "pooled")  # per dataset: DataConfig.check

# Settings that say how much of an experiment to run, or where things live: they do not name the run,
# so asking for more levels, replicates or branches extends the same run.
# --allow_empty_tensors only lets a run go past a round it would otherwise stop at: the levels before are the same.
# --early_bird only records what the weights say during training: the numbers are the same.
EXTENDING_SETTINGS = ("data.cache_dir", "experiment.replicates", "experiment.branches", "prune.levels",
                      "prune.allow_empty_tensors", "experiment.early_bird")
# Where the data was read from does not name the run either: the data's content does (lth_tf.rundir).
LOCATION_SETTINGS = ("data.data_dir", "data.glove_path")


def param(default: Any, help: str, choices: tuple | None = None, low: float | None = None,  # noqa: A002
          high: float | None = None, open_low: bool = False, open_high: bool = False,
          applies: Callable[["RunConfig"], bool] | None = None, when: str = "") -> Any:
    """A setting: `choices` or a range [low, high] (open ends with open_low/open_high), and `applies`:
    whether the setting means anything given the others (`when` says so in words, for messages)."""
    return field(default=default, metadata={"help": help, "choices": choices, "low": low, "high": high,
                                            "open_low": open_low, "open_high": open_high,
                                            "applies": applies, "when": when})


def _cnn(c: "RunConfig") -> bool:
    return c.model.model == "cnn"


def _lstm(c: "RunConfig") -> bool:
    return c.model.model == "lstm"


def _transfer(c: "RunConfig") -> bool:
    return bool(c.experiment.transfer_from)


@dataclass(frozen=True, order=True)
class Step:
    """A point in a level's training, as open_lth writes it: '<n>ep<m>it' = n epochs plus m iterations."""
    epochs: int = 0
    iterations: int = 0

    @classmethod
    def parse(cls, text: str, flag: str = "--rewind_step") -> "Step":
        m = re.fullmatch(r"\s*(?:(\d+)ep)?\s*(?:(\d+)it)?\s*", text or "")
        if not text or not m or (m.group(1) is None and m.group(2) is None):
            raise UserError(f"{flag}={text!r}: write '<n>it', '<n>ep' or '<n>ep<m>it', e.g. 438it or 1ep")
        return cls(int(m.group(1) or 0), int(m.group(2) or 0))

    def iteration(self, steps_per_epoch: int) -> int:
        return self.epochs * steps_per_epoch + self.iterations

    def __str__(self) -> str:
        if self.epochs and self.iterations:
            return f"{self.epochs}ep{self.iterations}it"
        return f"{self.epochs}ep" if self.epochs else f"{self.iterations}it"


@dataclass(frozen=True)
class Rewind:
    """Where the survivors of a pruned level start: `step` of level 0's training (Step() = θ0, the winning
    ticket; later = late rewinding), or, with `end`, the weights at the END of dense training (fine-tuning,
    which is not rewinding)."""
    step: Step = Step()
    end: bool = False

    def describe(self) -> str:
        if self.end:
            return "prune and fine-tune from the end of dense training (--finetune)"
        if self.step == Step():
            return "winning ticket: survivors reset to θ0"
        return f"late rewinding to {self.step} of level 0 (--late_rewind)"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = param("imdb", "Dataset to use.", DATASETS)
    data_dir: str = param("", "Local data: an aclImdb folder or archive, the 50k-review IMDb CSV, a folder "
                              "with AG News train.csv/test.csv, or a prepared tensorflow-datasets directory.")
    split: str = param("study", "How the labelled rows are split (docs/data.md). IMDb: 'study' pools all 50,000 "
                                "reviews and splits them 40,000/10,000 (stratified, --split_seed); 'official' keeps "
                                "the 25,000/25,000 split. AG News: 'study' keeps the given train.csv/test.csv "
                                "(the study's protocol); 'pooled' pools the rows of train.csv (if present) and "
                                "test.csv and splits them 80/20 as the study split IMDb (not the study's AG News "
                                "protocol). --valid_fraction of the training part is then held out.", SPLITS,
                       applies=lambda c: c.data.dataset in ("imdb", "ag_news"), when="--dataset=imdb or ag_news")
    valid_fraction: float = param(0.3, "Fraction of the training split held out for validation.",
                                  low=0.0, high=1.0, open_low=True, open_high=True)
    split_seed: int = param(0, "Seed of the train/test and train/validation splits.", low=0)
    vocab_size: int = param(0, "Most frequent training tokens kept (plus <pad> and <unk>); 0 = the study's "
                               "value for the model (50,000 CNN, 25,000 LSTM).", low=0)
    max_len: int = param(0, "Truncate texts to this many tokens; 0 = no cap (the study's).", low=0)
    cache_dir: str = param("", "Where tokenised datasets are cached; empty = ~/.cache/lth_tf.")
    glove_path: str = param("", "GloVe-format text file (.txt, .gz, .xz or .zip) for the embedding; "
                                "empty = trained from a random init.")

    def resolved_vocab_size(self, model: str) -> int:
        return self.vocab_size or (50_000 if model == "cnn" else 25_000)

    def effective_split(self) -> str:
        """The split as it acts: --split for IMDb and AG News; the samples are always pooled and split 80/20
        (their own single file), which is the default 'study' here."""
        return self.split if self.dataset in ("imdb", "ag_news") else "study"

    def check(self) -> None:
        """Checks of the data settings beyond each field's own choices and range."""
        split = self.effective_split()
        if self.dataset == "imdb" and split == "pooled":
            raise UserError("--split=pooled: IMDb's 'study' split already pools all its labelled reviews and "
                            "splits them 80/20; use --split=study")
        if self.dataset == "ag_news" and split == "official":
            raise UserError("--split=official: AG News' given train/test split is the study's; use --split=study "
                            "(or --split=pooled to pool every labelled row and split 80/20)")


@dataclass(frozen=True)
class ModelConfig:
    model: str = param("cnn", "Network: Kim-style CNN or 2-layer bidirectional LSTM.", MODELS)
    embedding_dim: int = param(100, "Embedding size (a GloVe file imposes its own).", low=1,
                               applies=lambda c: not c.data.glove_path, when="no --glove_path")
    filters: int = param(100, "CNN: filters per width.", low=1, applies=_cnn, when="--model=cnn")
    filter_sizes: str = param("3,4,5", "CNN: comma-separated filter widths.", applies=_cnn, when="--model=cnn")
    hidden: int = param(256, "LSTM: hidden units per direction.", low=1, applies=_lstm, when="--model=lstm")
    lstm_layers: int = param(2, "LSTM: stacked bidirectional layers.", low=1, applies=_lstm, when="--model=lstm")
    dropout: float = param(0.5, "Dropout rate.", low=0.0, high=1.0, open_high=True)
    init: str = param("study", "'study': Xavier normal with PyTorch fans, orthogonal recurrent kernels, zero "
                               "biases, N(0,1) embedding; 'keras': Keras defaults.", ("study", "keras"))

    def widths(self) -> tuple[int, ...]:
        try:
            widths = tuple(int(w) for w in self.filter_sizes.split(",") if w.strip())
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            raise UserError(f"--filter_sizes={self.filter_sizes!r}: give positive integers like 3,4,5")
        return widths


@dataclass(frozen=True)
class PruneConfig:
    levels: int = param(20, "Pruning levels after the dense level 0.", low=0)
    prune_fraction: float = param(0.2, "Fraction of the surviving weights pruned at each level.",
                                  low=0.0, high=1.0, open_low=True, open_high=True)
    strategy: str = param("local", "'local': every tensor loses the fraction of its survivors (the study); "
                                   "'global': one magnitude ranking over all pruned tensors (see --global_ranking); "
                                   "'lamp': one ranking by LAMP score (Lee et al. 2021: a survivor's squared "
                                   "magnitude over the sum of the squares of its tensor's survivors at least as "
                                   "large), which keeps every tensor's largest weight. See docs/instruments.md.",
                          STRATEGIES)
    global_ranking: str = param("all", "Tensors in the one ranking of --strategy=global or lamp: 'all', or "
                                       "'no_embedding': the embedding is left out of the ranking and pruned locally "
                                       "by the same fraction (as open_lth ranks only conv/linear weights; "
                                       "--noprune_embedding leaves it dense instead).", GLOBAL_RANKINGS,
                                applies=lambda c: c.prune.strategy in ("global", "lamp") and c.prune.prune_embedding,
                                when="--strategy=global or lamp with the embedding pruned")
    allow_empty_tensors: bool = param(False, "Let a pruning round remove every surviving weight of a kernel or the "
                                             "embedding (with a warning). Without it such a round stops the run "
                                             "with an error naming the tensor (a conv kernel at 0% kept is a dead "
                                             "network). A bias emptied only warns.")
    prune_bias: bool = param(True, "Prune biases (the study did).")
    prune_embedding: bool = param(True, "Prune the embedding (the study did).")
    prune_output: bool = param(True, "Prune the output layer (the study did).")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = param(20, "Maximum epochs per level.", low=1)
    learning_rate: float = param(5e-3, "Adam learning rate (a fresh Adam every level).", low=0.0, open_low=True)
    batch_size: int = param(64, "Batch size.", low=1)
    patience: int = param(2, "Early stopping on validation loss: epochs without improvement before stopping; "
                             "the best epoch's weights are kept. 0 = no early stopping, keep the last epoch.",
                          low=0)
    bucket: bool = param(True, "Batch texts of similar length together (less padding).")
    masking: str = param("native", "How pruned weights are held at 0: 'native' (lth_tf.training.MaskedModel: masked "
                                   "gradients) or 'tfmot' (tensorflow-model-optimization's prune_low_magnitude "
                                   "wrappers holding the IMP masks, never re-ranking: "
                                   "lth_tf.sparsity.tfmot_masking). Part of a run's identity: the arithmetic "
                                   "path differs.", ("native", "tfmot"))
    threads: int = param(0, "TensorFlow threads per task (intra- and inter-op pools); 0 = this machine's "
                            "cores. Part of a run's identity: the order of float sums, and so the last bits of "
                            "every number, depend on it.", low=0)

    precision: str = param("float32", "Compute precision: 'bfloat16' trains and evaluates under Keras' mixed_bfloat16 "
                                      "policy (bfloat16 compute, float32 weights, masks, logits and loss; faster "
                                      "on CPUs with AVX512-BF16 or AMX). Part of a run's identity: it changes "
                                      "the numbers.", ("float32", "bfloat16"))
    xla: bool = param(False, "Compile the train step with XLA (jit_compile); training batches are then padded to "
                             "a few lengths (lth_tf.data.pipeline.XLA_LENGTH_BUCKETS) so it compiles a few times. "
                             "Part of a run's identity: the padding and the compiler change the numbers.",
                      applies=_cnn, when="--model=cnn (XLA made the LSTM about 10x slower on a CPU: "
                                         "docs/benchmarks.md)")
    eval_batch_size: int = param(0, "Batch size of the validation and test passes; 0 = --batch_size (the same "
                                    "batches as always). Part of a run's identity: the CNN's output for a text "
                                    "depends on how far its batch is padded (its max-pool sees windows over the "
                                    "padding), so other evaluation batches change its numbers.", low=0)

    def resolved_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    def resolved_threads(self) -> int:
        return self.threads or len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class ExperimentConfig:
    branches: str = param("ticket,reinit", "Comma-separated branches: " + ", ".join(BRANCHES) + ".")
    early_bird: bool = param(False, "Record the early-bird distance in every task's metrics: after every epoch (and "
                                    "every --early_bird_steps steps), the normalised Hamming distance between the "
                                    "mask pruning would draw from the current weights and the one drawn at the "
                                    "previous check (lth_tf.lottery.early_bird; report: python -m "
                                    "lth_tf.instruments.early_bird). Changes no trained number.")
    early_bird_steps: int = param(0, "Early-bird checks also every this many steps (0 = after every epoch only). "
                                     "Part of a run's identity: the early_bird branch stops at a check.", low=0)
    early_bird_threshold: float = param(0.1, "Early-bird: the mask has converged when the distance stayed below "
                                             "this for --early_bird_patience checks in a row (where the early_bird "
                                             "branch stops a level).", low=0.0, high=1.0, open_low=True)
    early_bird_patience: int = param(3, "Early-bird: checks in a row below --early_bird_threshold.", low=1)
    late_rewind: bool = param(False, "Rewind survivors to the weights at --rewind_step of level 0's training "
                                     "(Frankle et al. 2019) instead of the initial weights.")
    rewind_step: str = param("1ep", "Rewind point for --late_rewind: '<n>it' (iterations), '<n>ep' (epochs) "
                                    "or '<n>ep<m>it'.", applies=lambda c: c.experiment.late_rewind,
                             when="--late_rewind")
    finetune: bool = param(False, "Instead of rewinding, restart every level from the weights at the END of "
                                  "dense training with a fresh Adam (prune and fine-tune): what the study's "
                                  "'late rewinding' table actually did. Not late rewinding.")
    replicates: int = param(1, "Independent seeds of the whole experiment.", low=1)
    seed: int = param(0, "Seed of replicate 0; replicate r uses seed + r.", low=0)
    transfer_from: str = param("", "Start from another run's ticket (lth_tf.lottery.transfer, docs/instruments.md): "
                                   "that run's directory. Level 0 trains the dense network on this run's data (the "
                                   "reference); level 1 trains the source's ticket at --transfer_level (its mask and "
                                   "rewind weights, embedding rows matched by token) and the --branches controls; "
                                   "later levels prune on. Part of the identity by the source run's name, not its "
                                   "path.")
    transfer_level: int = param(-1, "The source level whose ticket --transfer_from carries (0 = its dense level); "
                                    "required with --transfer_from.", applies=_transfer, when="--transfer_from")
    transfer_replicate: int = param(0, "The source replicate whose ticket every replicate of this run starts from.",
                                    low=0, applies=_transfer, when="--transfer_from")


@dataclass(frozen=True)
class ExecutorConfig:
    """How tasks are executed: never part of a run's identity (every executor gives the same numbers)."""
    executor: str = param("local", "'local': tasks one after another in this process; 'ray': tasks side by "
                                   "side on a Ray cluster (see docs/scaling.md).", ("local", "ray"))
    ray_address: str = param("", "Ray cluster: empty = start one on this machine; 'auto' = join the running "
                                 "cluster; or an address such as ray://head:10001.",
                             applies=lambda c: c.executor == "ray", when="--executor=ray")
    task_cpus: float = param(0.0, "CPUs Ray reserves per task (fractions allowed); 0 = the run's --threads.",
                             low=0.0, applies=lambda c: c.executor == "ray", when="--executor=ray")
    task_gpus: float = param(0.0, "GPUs Ray reserves per task (fractions let tasks share a GPU).", low=0.0,
                             applies=lambda c: c.executor == "ray", when="--executor=ray")

    def validate(self) -> list[str]:
        notes = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_field(f, value)
            applies = f.metadata["applies"]
            if applies and value != f.default and not applies(self):
                notes.append(f"--{f.name}={value} applies only with {f.metadata['when']}: ignored")
        return notes


SECTIONS = ("data", "model", "prune", "train", "experiment")
THREADS_ENV = "LTH_TF_THREADS"  # how a process tells lth_tf.keras its thread pools before TensorFlow starts


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    prune: PruneConfig = dataclasses.field(default_factory=PruneConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    experiment: ExperimentConfig = dataclasses.field(default_factory=ExperimentConfig)

    SECTIONS = SECTIONS

    # --- reading the settings -----------------------------------------------------------------------
    def fields(self):
        """(section, field, value) for every setting."""
        for section in SECTIONS:
            value = getattr(self, section)
            for f in dataclasses.fields(value):
                yield section, f, getattr(value, f.name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, Any]]) -> "RunConfig":
        kwargs = {}
        for section in SECTIONS:
            klass = type(getattr(cls(), section))
            known = {f.name for f in dataclasses.fields(klass)}
            kwargs[section] = klass(**{k: v for k, v in d.get(section, {}).items() if k in known})
        return cls(**kwargs)

    def non_default(self) -> dict[str, Any]:
        """Settings that differ from the defaults, as flat `section.name` keys."""
        return {f"{s}.{f.name}": v for s, f, v in self.fields() if v != f.default}

    def branch_list(self) -> list[str]:
        names = [b.strip() for b in self.experiment.branches.split(",") if b.strip()]
        unknown = [b for b in names if b not in BRANCHES]
        if unknown or not names:
            raise UserError(f"--branches={self.experiment.branches!r}: unknown {unknown or 'empty'}; "
                            f"choose from {', '.join(BRANCHES)}")
        if "ticket" not in names:
            names.insert(0, "ticket")  # every other branch needs the ticket's masks
        if "early_bird_ticket" in names and "early_bird" not in names:
            names.insert(names.index("early_bird_ticket"), "early_bird")  # whose masks it trains
        return list(dict.fromkeys(names))

    def rewind(self) -> Rewind:
        e = self.experiment
        if e.finetune:
            return Rewind(end=True)
        return Rewind(Step.parse(e.rewind_step)) if e.late_rewind else Rewind()

    # --- the one validation -------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Raise UserError naming the flag for any setting that cannot work; return notes on settings that
        do not apply (they are ignored, and `identity` leaves them out)."""
        for section, f, value in self.fields():
            _check_field(f, value)
        self.model.widths()
        self.data.check()
        self.branch_list()
        e = self.experiment
        if e.late_rewind and e.finetune:
            raise UserError("--late_rewind and --finetune exclude each other: choose one")
        self.rewind()
        if e.transfer_from:
            from lth_tf.lottery.transfer import check_source  # reads the source run's files; no TensorFlow

            check_source(self)
        notes = []
        for section, f, value in self.fields():
            applies = f.metadata["applies"]
            if applies and value != f.default and not applies(self):
                notes.append(f"--{f.name}={value} applies only with {f.metadata['when']}: ignored")
        return notes

    # --- identity -----------------------------------------------------------------------------------
    def resolved(self) -> "RunConfig":
        """The settings as they act: defaults resolved (vocabulary 0 -> the study's size), settings that do
        not apply set back to their defaults."""
        sections = {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}
        for section, f, value in self.fields():
            applies = f.metadata["applies"]
            if applies and not applies(self):
                sections[section][f.name] = f.default
        sections["data"]["vocab_size"] = self.data.resolved_vocab_size(self.model.model)
        sections["train"]["threads"] = self.train.resolved_threads()
        sections["train"]["eval_batch_size"] = self.train.resolved_eval_batch_size()
        return RunConfig.from_dict(sections)

    def identity(self) -> dict[str, Any]:
        """What names a run: the resolved settings that differ from the resolved defaults of its model and
        dataset (so a setting added later, at its default, names no run anew), plus the model, the dataset
        and the thread count, less how much to run and where the data lives (the data enters the identity by
        its content, see lth_tf.rundir)."""
        base = RunConfig(data=DataConfig(dataset=self.data.dataset), model=ModelConfig(model=self.model.model),
                         train=TrainConfig(threads=self.train.threads)).resolved()
        ours = {f"{s}.{f.name}": v for s, f, v in self.resolved().fields()}
        defaults = {f"{s}.{f.name}": v for s, f, v in base.fields()}
        always = ("data.dataset", "model.model", "train.threads")
        out = {k: v for k, v in ours.items()
               if (k in always or v != defaults[k]) and k not in EXTENDING_SETTINGS + LOCATION_SETTINGS}
        if self.experiment.transfer_from:  # the source by its run's name (its identity), wherever it lives
            out["experiment.transfer_from"] = os.path.basename(os.path.normpath(self.experiment.transfer_from))
        return out

    def legacy_hash(self) -> str:
        """How runs were named before 0.2: a hash of the settings as spelled. Kept to find those runs."""
        keys = {k: v for k, v in self.non_default().items() if k not in EXTENDING_SETTINGS}
        return _digest(keys)


def _digest(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _check_field(f: dataclasses.Field, value: Any) -> None:
    m = f.metadata
    flag = f"--{f.name}={value!r}" if isinstance(value, str) else f"--{f.name}={value}"
    if m["choices"] and value not in m["choices"]:
        raise UserError(f"{flag}: choose from {', '.join(m['choices'])}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{flag}: must be a finite number")
    low, high = m["low"], m["high"]
    if low is not None and (value <= low if m["open_low"] else value < low):
        raise UserError(f"{flag}: must be {'above' if m['open_low'] else 'at least'} {low:g}"
                        + (f" and {'below' if m['open_high'] else 'at most'} {high:g}" if high is not None else ""))
    if high is not None and (value >= high if m["open_high"] else value > high):
        raise UserError(f"{flag}: must be {'below' if m['open_high'] else 'at most'} {high:g}")
