"""The run directory: every path and file name of a run, and how each file is written and read.

    <output_dir>/<model>_<dataset>_<identity hash>/
        config.json            settings (as given and resolved), identity, format version
        data.json              class names, data statistics, the data's content fingerprint
        vocab.txt              line i = token id i
        transfer.json          with --transfer_from: the source ticket carried in, and what was matched
        r<R>/rewind.npz        the rewind point of replicate R (weights by stable name)
        r<R>/level_<LL>/<branch>/
            mask.npz           the mask the task trained under ({name: bool array})
            weights.npz        its trained weights ({name: float array})
            metrics.json       written last: its presence means the task is done
            checkpoint/        while it trains (format 2): the state after its last finished epoch
            .claim             locked by the process training it
        r<R>/level_<LL>/instability/...   the instability analysis's tasks (names: lth_tf.lottery.spawn_tasks),
                               each with weights.npz, metrics.json ("kind" says which), checkpoint/, .claim
        results.json, results.csv, summary.md, *.png, tensorboard/   (lth_tf.report)
        instability_level_<LL>/, early_bird/   reports of lth_tf.instruments.instability and .early_bird

No other module spells these names. Writes are atomic (lth_tf.atomic); reads validate and raise
`DamagedFile` naming the file. A run's directory is named from its identity: the resolved settings
(lth_tf.config.RunConfig.identity) and the data's content fingerprint, so the same experiment finds the
same directory however its settings and data path were spelled. Runs made before that (format 1, named
from the settings as spelled) are found by their old name and resumed in place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
from typing import Any, Iterator

import numpy as np

from lth_tf import atomic
from lth_tf.atomic import DamagedFile
from lth_tf.config import RunConfig, _digest
from lth_tf.errors import UserError
from lth_tf.sparsity import masks as masks_lib

FORMAT = 2  # 1: before 0.2 (named from the settings as spelled); 2: named from the identity
CONFIG, DATA, VOCAB = "config.json", "data.json", "vocab.txt"
RESULTS_JSON, RESULTS_CSV, SUMMARY = "results.json", "results.csv", "summary.md"
MASK, WEIGHTS, METRICS, REWIND = "mask.npz", "weights.npz", "metrics.json", "rewind.npz"
CHECKPOINT, CLAIM = "checkpoint", ".claim"
TRANSFER = "transfer.json"
TENSORBOARD, ACCURACY_PLOT, SPARSITY_PLOT = "tensorboard", "accuracy_vs_sparsity.png", "sparsity_per_tensor.png"
_LEVEL_RE = re.compile(r"level_(\d+)")
_REPLICATE_RE = re.compile(r"r(\d+)")
INSTABILITY = "instability"  # the folder of the instability analysis's tasks in a level's folder
INSTABILITY_REPORT, EARLY_BIRD_REPORT = "instability_level_{:02d}", "early_bird"


@dataclasses.dataclass(frozen=True, order=True)
class Task:
    """One (replicate, level, branch) of an experiment: the unit of work, and of storage in a run."""
    replicate: int
    level: int
    branch: str

    @property
    def key(self) -> str:
        return f"r{self.replicate}/level_{self.level:02d}/{self.branch}"


def data_fingerprint(data) -> str:
    """A hash of the encoded data a run trains on (vocabulary, every split's ids and labels): the data's
    identity by content, the same whatever path or format it was read from."""
    h = hashlib.sha256("\n".join(data.vocab).encode())
    for split in (data.train, data.valid, data.test):
        for array in (split.token_ids, split.offsets, split.labels):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def _named(cfg: RunConfig, run_hash: str) -> str:
    return f"{cfg.model.model}_{cfg.data.dataset}_{run_hash}"


def run_name(cfg: RunConfig, fingerprint: str) -> str:
    return _named(cfg, _digest({"settings": cfg.identity(), "data": fingerprint}))


def legacy_run_name(cfg: RunConfig) -> str:
    return _named(cfg, cfg.legacy_hash())


def _same_legacy_run(cfg: RunConfig, output_dir: str, fingerprint: str) -> str | None:
    """A format-1 run in `output_dir` with the same identity and data, however its settings were spelled
    (a data path written another way gave it another name then)."""
    prefix = f"{cfg.model.model}_{cfg.data.dataset}_"
    try:
        names = sorted(n for n in os.listdir(output_dir) if n.startswith(prefix))
    except OSError:
        return None
    for name in names:
        candidate = RunDir(os.path.join(output_dir, name))
        try:
            config = candidate.read_config_file()
            if "format" in config or RunConfig.from_dict(config["settings"]).identity() != cfg.identity():
                continue
            if atomic.read_json(candidate.file(DATA)).get("fingerprint") == fingerprint:
                return candidate.path
        except (OSError, UserError, ValueError, TypeError, AttributeError):
            continue
    return None


class RunDir:
    def __init__(self, path: str):
        self.path = path

    # --- locating -----------------------------------------------------------------------------------
    @classmethod
    def locate(cls, cfg: RunConfig, output_dir: str, fingerprint: str) -> "RunDir":
        """The run of these settings and data in `output_dir`: the directory named from their identity, or
        a run made before identities (format 1) for the same settings, if one exists."""
        path = os.path.join(output_dir, run_name(cfg, fingerprint))
        if os.path.isdir(path):
            return cls(path)
        legacy = os.path.join(output_dir, legacy_run_name(cfg))
        if os.path.isfile(os.path.join(legacy, CONFIG)):
            return cls(legacy)
        return cls(_same_legacy_run(cfg, output_dir, fingerprint) or path)

    @classmethod
    def open(cls, path: str, flag: str = "--run_dir") -> "RunDir":
        """An existing run directory (for reports and export)."""
        if not path:
            raise UserError(f"{flag} is required: a run directory such as runs/cnn_imdb_<hash>")
        if not os.path.isdir(path):
            raise UserError(f"{flag}={path}: no such directory")
        run = cls(path)
        if not os.path.exists(run.file(CONFIG)):
            raise UserError(f"{flag}={path}: no {CONFIG}; is this a run directory written by lth_tf.main?")
        return run

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(os.path.abspath(self.path)))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def create(self, output_flag: str = "--output_dir") -> None:
        """Make the directory (if new) and remove temporaries left by dead processes."""
        try:
            os.makedirs(self.path, exist_ok=True)
            atomic.remove_stale_temporaries(self.path)
            probe = self.file(f".write-test-{atomic.HOST}-{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise UserError(f"{output_flag}={os.path.dirname(self.path) or '.'}: cannot write there "
                            f"({e.strerror}); choose another") from None

    # --- run-level files ----------------------------------------------------------------------------
    def write_config(self, cfg: RunConfig, fingerprint: str) -> None:
        existing = self.read_config_file() if os.path.exists(self.file(CONFIG)) else {}
        fmt = existing.get("format", 1 if existing else FORMAT)
        atomic.write_json(self.file(CONFIG), {
            "format": fmt, "settings": cfg.to_dict(), "resolved": cfg.resolved().to_dict(),
            "identity": cfg.identity(), "data_fingerprint": fingerprint, "non_default": cfg.non_default(),
            "run_hash": existing.get("run_hash", self.name.rsplit("_", 1)[-1])})

    def read_config_file(self) -> dict:
        config = self._read_json(CONFIG, "the run's settings")
        if not isinstance(config, dict) or "settings" not in config:
            raise DamagedFile(self.file(CONFIG), "no 'settings'")
        return config

    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.read_config_file()["settings"])

    def settings(self, data_dir: str = "") -> RunConfig:
        """The settings as the run's tasks ran, for more work in it: the thread count resolved when it was made
        (the last bits of every number depend on it), its data read from `data_dir` if given (the data moved;
        its content must not)."""
        config = self.read_config_file()
        cfg = RunConfig.from_dict(config["settings"])
        threads = config.get("resolved", {}).get("train", {}).get("threads") or cfg.train.resolved_threads()
        data = dataclasses.replace(cfg.data, data_dir=data_dir) if data_dir else cfg.data
        return dataclasses.replace(cfg, data=data, train=dataclasses.replace(cfg.train, threads=int(threads)))

    def check_data(self, fingerprint: str) -> None:
        """A run resumes only on the data it started with (a changed tokeniser or source would mix results)."""
        if not os.path.exists(self.file(DATA)):
            return
        try:
            before = self._read_json(DATA, "data statistics").get("fingerprint")
        except DamagedFile:
            return  # rewritten below by write_data
        if before and before != fingerprint:
            raise UserError(f"{self.path} was started on different data (fingerprint {before}, now {fingerprint}: "
                            f"tokeniser, source or split changed); use another --output_dir to start afresh")

    def write_data(self, data, fingerprint: str) -> None:
        atomic.write_text(self.file(VOCAB), "\n".join(data.vocab) + "\n", errors="surrogateescape")
        atomic.write_json(self.file(DATA), {"class_names": data.class_names, "num_classes": data.num_classes,
                                            "vocab_size": len(data.vocab), "stats": data.stats,
                                            "fingerprint": fingerprint})

    def data_info(self) -> dict:
        info = self._read_json(DATA, "class names")
        class_names = [str(c) for c in info.get("class_names", [])]
        num_classes = int(info.get("num_classes", len(class_names)))
        if num_classes < 2 or len(class_names) != num_classes:
            raise DamagedFile(self.file(DATA), f"{num_classes} classes but class names {class_names}")
        return dict(info, class_names=class_names, num_classes=num_classes)

    def vocab(self) -> list[str]:
        """vocab.txt: one token per line, line i = id i. Tokens never hold whitespace (the tokeniser splits on
        it), so lines are split on '\\n' only; bytes that are not UTF-8 survive (surrogateescape)."""
        path = self.file(VOCAB)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                vocab = f.read().split("\n")
        except FileNotFoundError:
            raise UserError(f"{path}: missing (the run's vocabulary); rerun lth_tf.main on this run to write it") \
                from None
        if vocab and vocab[-1] == "":
            vocab.pop()
        if len(vocab) < 2:
            raise DamagedFile(path, f"a vocabulary needs at least <pad> and <unk>, found {len(vocab)} lines")
        seen: dict[str, int] = {}
        for i, token in enumerate(vocab):
            if token in seen:
                raise DamagedFile(path, f"token {token!r} appears twice (lines {seen[token] + 1} and {i + 1})")
            seen[token] = i
        return vocab

    def recorded_name(self) -> str:
        """The name the run was made under (config.json's run hash), whatever its directory is called now."""
        config = self.read_config_file()
        return _named(RunConfig.from_dict(config["settings"]), config.get("run_hash") or self.name.rsplit("_", 1)[-1])

    def write_transfer(self, record: dict) -> None:
        atomic.write_json(self.file(TRANSFER), record)

    def read_transfer(self) -> dict | None:
        """transfer.json (lth_tf.lottery.transfer), or None for a run that is not a transfer."""
        return atomic.read_json(self.file(TRANSFER)) if os.path.exists(self.file(TRANSFER)) else None

    @property
    def format(self) -> int:
        """1 for runs made before 0.2 (trained with TF1-style dropout, resumable per task), 2 since (dropout
        reseeded per epoch, resumable per epoch)."""
        return int(self.read_config_file().get("format", 1))

    # --- tasks --------------------------------------------------------------------------------------
    def task_dir(self, task: Task) -> str:
        return os.path.join(self.path, task.key)

    def task_file(self, task: Task, name: str) -> str:
        return os.path.join(self.task_dir(task), name)

    def rewind_path(self, replicate: int) -> str:
        return os.path.join(self.path, f"r{replicate}", REWIND)

    def is_done(self, task: Task) -> bool:
        return os.path.exists(self.task_file(task, METRICS))

    def read_metrics(self, task: Task) -> dict:
        metrics = self._read_json(os.path.join(task.key, METRICS), "a task's metrics")
        if not isinstance(metrics, dict) or not ("valid_accuracy" in metrics or "kind" in metrics):
            raise DamagedFile(self.task_file(task, METRICS), "not a task's metrics")
        return metrics

    def write_metrics(self, task: Task, metrics: dict) -> None:
        atomic.write_json(self.task_file(task, METRICS), metrics)

    def read_masks(self, task: Task) -> dict[str, np.ndarray]:
        return masks_lib.load_masks(self.task_file(task, MASK))

    def write_masks(self, task: Task, masks: dict[str, np.ndarray]) -> None:
        masks_lib.save_masks(self.task_file(task, MASK), masks)

    def read_weights(self, task: Task) -> dict[str, np.ndarray]:
        return atomic.read_npz(self.task_file(task, WEIGHTS))

    def write_weights(self, task: Task, weights: dict[str, np.ndarray]) -> None:
        atomic.write_npz(self.task_file(task, WEIGHTS), weights)

    def read_rewind(self, replicate: int) -> dict[str, np.ndarray]:
        return atomic.read_npz(self.rewind_path(replicate))

    def write_rewind(self, replicate: int, weights: dict[str, np.ndarray]) -> None:
        atomic.write_npz(self.rewind_path(replicate), weights, compressed=False)

    def checkpoints(self, task: Task) -> "TaskCheckpoints":
        return TaskCheckpoints(os.path.join(self.task_dir(task), CHECKPOINT))

    @contextlib.contextmanager
    def claim(self, task: Task):
        """Yields True if this process now holds the task (an exclusive lock on its .claim file, released
        when the block ends or the process dies, however it dies), False if another process holds it."""
        os.makedirs(self.task_dir(task), exist_ok=True)
        fd = os.open(self.task_file(task, CLAIM), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            os.ftruncate(fd, 0)
            os.write(fd, f"{atomic.HOST} {os.getpid()}\n".encode())
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    def is_claimed(self, task: Task) -> bool:
        """Whether another process holds the task now."""
        path = self.task_file(task, CLAIM)
        if not os.path.exists(path):
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def invalidate(self, task: Task) -> None:
        """Mark a finished task as not done (its outputs are damaged): the executor recomputes it."""
        try:
            os.remove(self.task_file(task, METRICS))
        except FileNotFoundError:
            pass

    def replicates(self) -> list[int]:
        if not os.path.isdir(self.path):
            return []
        return sorted(int(m.group(1)) for d in os.listdir(self.path) if (m := _REPLICATE_RE.fullmatch(d)))

    def finished(self) -> Iterator[Task]:
        """Every finished task, in order."""
        for r in self.replicates():
            rdir = os.path.join(self.path, f"r{r}")
            for level_dir in sorted(os.listdir(rdir)):
                m = _LEVEL_RE.fullmatch(level_dir)
                if not m:
                    continue
                for branch in sorted(os.listdir(os.path.join(rdir, level_dir))):
                    if os.path.exists(os.path.join(rdir, level_dir, branch, METRICS)):
                        yield Task(r, int(m.group(1)), branch)

    def finished_metrics(self) -> list[dict]:
        return [self.read_metrics(task) for task in self.finished()]

    # --- report files -------------------------------------------------------------------------------
    def write_results(self, results: dict[str, Any], csv_text: str, summary: str) -> None:
        atomic.write_json(self.file(RESULTS_JSON), results)
        atomic.write_text(self.file(RESULTS_CSV), csv_text)
        atomic.write_text(self.file(SUMMARY), summary)

    def _read_json(self, name: str, what: str):
        path = self.file(name)
        try:
            return atomic.read_json(path)
        except FileNotFoundError:
            raise UserError(f"{path}: missing ({what}); is this a run directory written by lth_tf.main?") from None


class TaskCheckpoints:
    """A level's state after its last finished epoch, as one folder replaced atomically every epoch:
    progress.json, weights.npz, optimizer.npz, best.npz (early stopping's best epoch), snapshots.npz."""

    def __init__(self, path: str):
        self.path = path

    def load(self):
        from lth_tf.training import Checkpoint, Progress

        if not os.path.isdir(self.path):
            return None
        try:
            progress = Progress(**atomic.read_json(os.path.join(self.path, "progress.json")))
            weights = atomic.read_npz(os.path.join(self.path, WEIGHTS))
            optimizer = atomic.read_npz(os.path.join(self.path, "optimizer.npz"))
            best = os.path.join(self.path, "best.npz")
            packed = atomic.read_npz(os.path.join(self.path, "snapshots.npz"))
        except (FileNotFoundError, DamagedFile, TypeError):
            return None  # a damaged checkpoint only costs the level's finished epochs: start it again
        snapshots: dict[int, dict] = {}
        for key, value in packed.items():
            step, name = key.split("|", 1)
            snapshots.setdefault(int(step), {})[name] = value
        return Checkpoint(progress, weights, [optimizer[f"{i:04d}"] for i in range(len(optimizer))],
                          atomic.read_npz(best) if os.path.exists(best) else None, snapshots)

    def save(self, checkpoint) -> None:
        with atomic.atomic_dir(self.path) as tmp:
            with open(os.path.join(tmp, "progress.json"), "w") as f:
                json.dump(dataclasses.asdict(checkpoint.progress), f, default=atomic.json_default)
            np.savez(os.path.join(tmp, WEIGHTS), **checkpoint.weights)
            np.savez(os.path.join(tmp, "optimizer.npz"), **{f"{i:04d}": v for i, v in enumerate(checkpoint.optimizer)})
            if checkpoint.best_weights is not None:
                np.savez(os.path.join(tmp, "best.npz"), **checkpoint.best_weights)
            np.savez(os.path.join(tmp, "snapshots.npz"), **{f"{step}|{name}": value for step, snap in
                                                             checkpoint.snapshots.items() for name, value in snap.items()})

    def clear(self) -> None:
        atomic.remove_dir(self.path)
