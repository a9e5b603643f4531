"""The study this project reproduces (docs: shared notes seed-study.md): its results table and its protocol,
and how a run of ours differs from that protocol."""
from __future__ import annotations

from lth_tf.config import RunConfig
from lth_tf.report.analysis import spans

# The study's README (test accuracy %, its ticket picked on TEST accuracy), by (dataset, model):
# (dense, ticket, sparsity %) without / with its "late rewinding" (which was prune-and-fine-tune).
STUDY = {
    ("imdb", "cnn"): ((87.04, 87.55, 36.0), (87.04, 87.64, 48.8)),
    ("ag_news", "cnn"): ((89.18, 89.56, 89.3), (89.88, 89.82, 89.3)),
    ("imdb", "lstm"): ((90.60, 90.24, 86.6), (89.96, 90.49, 86.6)),
    ("ag_news", "lstm"): ((91.75, 91.89, 48.8), (91.55, 92.36, 73.8)),
}
STUDY_LABEL = "study (one seed, picked on test)"
CONFIGURATIONS = [("imdb", "cnn"), ("ag_news", "cnn"), ("imdb", "lstm"), ("ag_news", "lstm")]
NAMES = {"imdb": "IMDb", "ag_news": "AG News", "cnn": "CNN", "lstm": "LSTM"}
MODES = ("ticket", "finetune", "late_rewind")  # the keys of --projection: <dataset>/<model>/<mode>

# train / validation / test examples of the study's splits
STUDY_SPLITS = {"imdb": (28_000, 12_000, 10_000), "ag_news": (84_000, 36_000, 7_600)}
_COMMON = {"data.valid_fraction": 0.3, "data.max_len": 0, "data.glove_path": "", "model.embedding_dim": 100,
           "model.dropout": 0.5, "model.init": "study", "prune.prune_fraction": 0.2, "prune.strategy": "local",
           "prune.prune_bias": True, "prune.prune_embedding": True, "prune.prune_output": True,
           "train.batch_size": 64}
_CNN = {"model.filters": 100, "model.filter_sizes": "3,4,5", "data.vocab_size": 50_000}
_LSTM = {"model.hidden": 256, "model.lstm_layers": 2, "data.vocab_size": 25_000}
_IMDB = {"data.split": "study", "train.learning_rate": 5e-3}
_AG = {"train.learning_rate": 1e-3, "data.split": "study"}
STUDY_SETTINGS = {
    ("imdb", "cnn"): {**_COMMON, **_CNN, **_IMDB, "train.epochs": 20, "train.patience": 2},
    ("ag_news", "cnn"): {**_COMMON, **_CNN, **_AG, "train.epochs": 10, "train.patience": 0},
    ("imdb", "lstm"): {**_COMMON, **_LSTM, **_IMDB, "train.epochs": 10, "train.patience": 0},
    ("ag_news", "lstm"): {**_COMMON, **_LSTM, **_AG, "train.epochs": 10, "train.patience": 0},
}
STUDY_LEVELS = 20


def mode(cfg: RunConfig) -> str:
    """'ticket' (rewind to θ0), 'finetune' (the study's 'late rewinding') or 'late_rewind' (true late rewinding)."""
    e = cfg.experiment
    return "finetune" if e.finetune else "late_rewind" if e.late_rewind else "ticket"


def configuration(dataset: str, model: str) -> str:
    return f"{NAMES.get(dataset, dataset)} + {NAMES.get(model, model)}"


def study_row(cfg: RunConfig) -> tuple[float, float, float] | None:
    """The study's (dense, ticket, sparsity %) comparable with this run: its first table for a θ0 ticket, its
    second (prune and fine-tune) for --finetune; None for true late rewinding, which it did not tabulate."""
    row = STUDY.get((cfg.data.dataset, cfg.model.model))
    m = mode(cfg)
    return None if row is None or m == "late_rewind" else row[1 if m == "finetune" else 0]


def _same(a, b) -> bool:
    return abs(a - b) <= 1e-12 * max(1.0, abs(b)) if isinstance(b, float) else a == b


def differences(cfg: RunConfig, counts: dict | None, levels_done: int, n: int,
                chosen_among: tuple[list[int], int] | None = None) -> list[str]:
    """How a run departs from the study's protocol for its configuration, in short phrases. `chosen_among`:
    the levels its ticket was chosen among and how many replicates finished them (the levels finished by the
    most replicates: fewer than `levels_done` when the replicates were run to different depths)."""
    key = (cfg.data.dataset, cfg.model.model)
    if key not in STUDY_SETTINGS:
        return [f"{cfg.data.dataset} is not one of the study's datasets"]
    out = []
    resolved = {f"{s}.{f.name}": v for s, f, v in cfg.resolved().fields()}
    for name, want in STUDY_SETTINGS[key].items():
        got = resolved[name]
        if name == "data.glove_path":
            if got:
                out.append("GloVe embedding (the study's code trained it from N(0,1))")
        elif not _same(got, want):
            short = name.split(".", 1)[1]
            out.append(f"{short} {got!r} (study {want!r})" if isinstance(want, str) else
                       f"{short} {got:g} (study {want:g})" if isinstance(want, float) else
                       f"{short} {got} (study {want})")
    split = STUDY_SPLITS[cfg.data.dataset]
    if counts:
        ours = tuple(int(counts.get(k, 0)) for k in ("train", "valid", "test"))
        if ours != split:
            out.append("train/valid/test {:,}/{:,}/{:,} (study {:,}/{:,}/{:,})".format(*ours, *split))
    else:
        out.append("split sizes not recorded (no data.json)")
    if levels_done != STUDY_LEVELS:
        out.append(f"{levels_done} levels run (study {STUDY_LEVELS})")
    if n < cfg.experiment.replicates:
        out.append(f"{n} of {cfg.experiment.replicates} replicates finished")
    levels, k = chosen_among or ([], 0)
    if levels and levels != list(range(1, levels_done + 1)):
        among = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans(levels))
        out.append(f"level chosen among levels {among}, those {k} replicates finished (the rest of levels "
                   f"1-{levels_done}: fewer)")
    if n == 1:
        out.append("one seed, like the study (no seed-to-seed interval)")
    if mode(cfg) == "late_rewind":
        out.append(f"true late rewinding to {cfg.experiment.rewind_step} (the study's table: fine-tuning)")
    return out
