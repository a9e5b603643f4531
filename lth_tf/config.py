"""Typed hyperparameters: one frozen dataclass per concern, each field carrying its help text.

The CLI's absl flags are generated from these fields (see `lth_tf.flags_def`), and a run's directory is
named from a hash of the fields that differ from their defaults (open_lth's convention), so the same
settings always find the same directory again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lth_tf.errors import UserError

DATASETS = ("imdb", "ag_news", "imdb_sample", "ag_news_sample")
MODELS = ("cnn", "lstm")
# Branches of every pruned level. `ticket` trains the IMP trajectory itself; the rest are controls that
# reuse its mask (or its sparsity) and never feed back into it, except `study_random`, which is a
# trajectory of its own, re-initialised every round, as the study's "random" mode did.
BRANCHES = ("ticket", "reinit", "random_mask", "study_random")


# Settings that only say how much of an experiment to run: they do not name the run directory.
EXTENDING_SETTINGS = ("data.cache_dir", "experiment.replicates", "experiment.branches", "prune.levels")


def param(default: Any, help: str, choices: tuple | None = None) -> Any:  # noqa: A002 (absl's name)
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class DataConfig:
    dataset: str = param("imdb", "Dataset to use.", DATASETS)
    data_dir: str = param("", "Local data: an aclImdb folder or archive, the 50k-review IMDb CSV, a folder "
                              "with AG News train.csv/test.csv, or a prepared tensorflow-datasets directory.")
    split: str = param("study", "IMDb split: 'study' pools all 50,000 reviews and splits 40,000/10,000; "
                                "'official' keeps the 25,000/25,000 split.", ("study", "official"))
    valid_fraction: float = param(0.3, "Fraction of the training split held out for validation.")
    split_seed: int = param(0, "Seed of the train/test and train/validation splits.")
    vocab_size: int = param(0, "Most frequent training tokens kept (plus <pad> and <unk>); 0 = the study's "
                               "value for the model (50,000 CNN, 25,000 LSTM).")
    max_len: int = param(0, "Truncate texts to this many tokens; 0 = no cap (the study's).")
    cache_dir: str = param("", "Where tokenised datasets are cached; empty = ~/.cache/lth_tf.")
    glove_path: str = param("", "GloVe-format text file (.txt, .gz, .xz or .zip) for the embedding; "
                                "empty = trained from a random init.")

    def resolved_vocab_size(self, model: str) -> int:
        return self.vocab_size or (50_000 if model == "cnn" else 25_000)


@dataclass(frozen=True)
class ModelConfig:
    model: str = param("cnn", "Network: Kim-style CNN or 2-layer bidirectional LSTM.", MODELS)
    embedding_dim: int = param(100, "Embedding size (a GloVe file imposes its own).")
    filters: int = param(100, "CNN: filters per width.")
    filter_sizes: str = param("3,4,5", "CNN: comma-separated filter widths.")
    hidden: int = param(256, "LSTM: hidden units per direction.")
    lstm_layers: int = param(2, "LSTM: stacked bidirectional layers.")
    dropout: float = param(0.5, "Dropout rate.")
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
    levels: int = param(20, "Pruning levels after the dense level 0.")
    prune_fraction: float = param(0.2, "Fraction of the surviving weights pruned at each level.")
    strategy: str = param("local", "'local': every tensor loses the fraction; 'global': one threshold over "
                                   "all prunable weights.", ("local", "global"))
    prune_bias: bool = param(True, "Prune biases (the study did).")
    prune_embedding: bool = param(True, "Prune the embedding (the study did).")
    prune_output: bool = param(True, "Prune the output layer (the study did).")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = param(20, "Maximum epochs per level.")
    learning_rate: float = param(5e-3, "Adam learning rate (a fresh Adam every level).")
    batch_size: int = param(64, "Batch size.")
    patience: int = param(2, "Early stopping on validation loss: epochs without improvement before stopping; "
                             "the best epoch's weights are kept. 0 = no early stopping, keep the last epoch.")
    bucket: bool = param(True, "Batch texts of similar length together (less padding).")


@dataclass(frozen=True)
class ExperimentConfig:
    branches: str = param("ticket,reinit", "Comma-separated branches: " + ", ".join(BRANCHES) + ".")
    late_rewind: bool = param(False, "Rewind survivors to the weights at --rewind_step of level 0's training "
                                     "(Frankle et al. 2019) instead of the initial weights.")
    rewind_step: str = param("1ep", "Rewind point for --late_rewind: '<n>it' (iterations), '<n>ep' (epochs) "
                                    "or '<n>ep<m>it'.")
    finetune: bool = param(False, "Instead of rewinding, restart every level from the weights at the END of "
                                  "dense training with a fresh Adam (prune and fine-tune): what the study's "
                                  "'late rewinding' table actually did. Not late rewinding.")
    replicates: int = param(1, "Independent seeds of the whole experiment.")
    seed: int = param(0, "Seed of replicate 0; replicate r uses seed + r.")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    prune: PruneConfig = dataclasses.field(default_factory=PruneConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    experiment: ExperimentConfig = dataclasses.field(default_factory=ExperimentConfig)

    SECTIONS = ("data", "model", "prune", "train", "experiment")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dataclasses.asdict(getattr(self, s)) for s in self.SECTIONS}

    def non_default(self) -> dict[str, Any]:
        """Settings that differ from the defaults, as flat `section.name` keys (what names the run)."""
        out = {}
        for section in self.SECTIONS:
            value, default = getattr(self, section), type(getattr(self, section))()
            for f in dataclasses.fields(value):
                if getattr(value, f.name) != getattr(default, f.name):
                    out[f"{section}.{f.name}"] = getattr(value, f.name)
        return out

    def run_hash(self) -> str:
        """Names the run directory. Settings that do not change results (where the cache lives, how many
        replicates, levels or branches are asked for) are left out, so asking for more extends the run."""
        keys = {k: v for k, v in self.non_default().items() if k not in EXTENDING_SETTINGS}
        blob = json.dumps(keys, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def branch_list(self) -> list[str]:
        names = [b.strip() for b in self.experiment.branches.split(",") if b.strip()]
        unknown = [b for b in names if b not in BRANCHES]
        if unknown or not names:
            raise UserError(f"--branches={self.experiment.branches!r}: unknown {unknown or 'empty'}; "
                            f"choose from {', '.join(BRANCHES)}")
        if "ticket" not in names:
            names.insert(0, "ticket")  # every other branch needs the ticket's masks
        return list(dict.fromkeys(names))

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, Any]]) -> "RunConfig":
        kwargs = {}
        for section in cls.SECTIONS:
            klass = type(getattr(cls(), section))
            known = {f.name for f in dataclasses.fields(klass)}
            kwargs[section] = klass(**{k: v for k, v in d.get(section, {}).items() if k in known})
        return cls(**kwargs)
