"""The study report: the study's two results tables side by side with ours, cell by cell.

    python -m lth_tf.report.study --run_dirs=runs/cnn_imdb_<hash>,runs/lstm_imdb_<hash> \\
        [--sweep=runs/sweeps/<name>] [--projection=hours.json] --out=study_report.md

Every run falls in one cell: (dataset, model, mode), mode = ticket (rewind to θ0: the first table),
finetune (prune and fine-tune: what the study's "late rewinding" table did) or late_rewind (true late
rewinding, a separate, marked row of the second table). Runs of one cell whose settings differ only in
--seed are pooled as replicates (one per distinct seed); otherwise the run with the most replicates is
used and the others are named. --projection: a JSON object {"<dataset>/<model>/<mode>": hours} whose
hours are shown in cells not run; no number is ever invented.
"""
from __future__ import annotations

import dataclasses
import os

from absl import flags

from lth_tf import atomic, cli, rundir
from lth_tf.config import RunConfig, _digest
from lth_tf.errors import UserError
from lth_tf.report import protocol, records, set_counts
from lth_tf.report.analysis import Analysis, analyse

FLAGS = flags.FLAGS
SUMMARY = "Write the study's results tables side by side with ours (from run directories or a sweep)."


def define_flags() -> None:
    if "run_dirs" in FLAGS:
        return
    own = {"module_name": "lth_tf.report.study"}
    flags.DEFINE_list("run_dirs", [], "Run directories (comma-separated), e.g. runs/cnn_imdb_<hash>.", **own)
    flags.DEFINE_string("sweep", "", "A sweep's report folder (<output_dir>/sweeps/<name>) or its sweep.json: "
                                     "its runs are added to --run_dirs.", **own)
    flags.DEFINE_string("out", "", "Where to write the report (Markdown), e.g. study_report.md.", **own)
    flags.DEFINE_string("projection", "", "Optional JSON file {\"<dataset>/<model>/<mode>\": hours} (mode: "
                        + ", ".join(protocol.MODES) + "): projected compute of cells not run.", **own)


@dataclasses.dataclass
class Cell:
    """One (dataset, model, mode) of ours: the runs pooled into it and their analysis."""
    dataset: str
    model: str
    mode: str
    cfg: RunConfig
    runs: list[rundir.RunDir]
    an: Analysis
    names: dict[int, str]  # pooled replicate -> 'run r0 (seed 0)'
    seeds: dict[int, int]  # pooled replicate -> its seed (what pairs replicates of two cells)
    notes: list[str]
    differences: list[str]

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.model}/{self.mode}"


def sweep_run_dirs(path: str) -> list[str]:
    """The run directories a sweep's sweep.json lists (found beside the sweep if moved with its output dir)."""
    file = path if path.endswith(".json") else os.path.join(path, "sweep.json")
    if not os.path.isfile(file):
        raise UserError(f"--sweep={path}: no sweep.json there; give <output_dir>/sweeps/<name>")
    try:
        rows = atomic.read_json(file)["runs"]
    except (KeyError, TypeError):
        raise UserError(f"--sweep={path}: {file} lists no runs") from None
    output_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(file))))
    out = []
    for row in rows:
        here = row.get("path", "")
        out.append(here if os.path.isdir(here) else os.path.join(output_dir, row["run"]))
    return out


def _identity_without_seed(cfg: RunConfig) -> str:
    return _digest({k: v for k, v in cfg.identity().items() if k != "experiment.seed"})


def pool(runs: list[tuple[rundir.RunDir, RunConfig]]) -> Cell:
    """One cell from the runs of one (dataset, model, mode): runs differing only in --seed are pooled (one
    replicate per distinct seed); of other settings, the group with the most seeds is used."""
    groups: dict[str, list] = {}
    for run, cfg in runs:
        groups.setdefault(_identity_without_seed(cfg), []).append((run, cfg))
    metrics_of = {run.path: run.finished_metrics() for run, _ in runs}
    seeds = {k: {m.get("seed", cfg.experiment.seed + m["replicate"]) for run, cfg in g for m in metrics_of[run.path]}
             for k, g in groups.items()}
    best = max(groups, key=lambda k: len(seeds[k]))
    group, notes = groups[best], []
    for k, g in groups.items():
        if k != best:
            notes += [f"{run.name}: not pooled (settings differ from {group[0][0].name} beyond --seed)" for run, _ in g]
    recs, names, index = [], {}, {}
    for run, cfg in group:
        for m, rec in zip(metrics_of[run.path], records(metrics_of[run.path])):
            seed = m.get("seed", cfg.experiment.seed + m["replicate"])
            origin = (run.path, m["replicate"])
            if seed not in index:
                index[seed] = (len(index), origin)
                names[index[seed][0]] = (f"{run.name} " if len(group) > 1 else "") + f"r{m['replicate']} (seed {seed})"
            elif index[seed][1] != origin:
                if f"seed {seed}" not in " ".join(notes):
                    notes.append(f"{run.name} r{m['replicate']}: seed {seed} already counted from another run; "
                                 f"not counted twice")
                continue
            recs.append(dict(rec, replicate=index[seed][0]))
    run0, cfg0 = group[0]
    counts = set_counts(run0) or {}
    an = analyse(recs, counts.get("valid"), counts.get("test"))
    n = an.dense.n if an.dense else 0
    candidates = an.candidates  # a derived property: computed once here
    chosen_among = (candidates, an.ticket[candidates[0]].n if candidates else 0)
    seeds_of = {i: seed for seed, (i, _) in index.items()}
    return Cell(cfg0.data.dataset, cfg0.model.model, protocol.mode(cfg0), cfg0, [r for r, _ in group], an, names,
                seeds_of, notes, protocol.differences(cfg0, counts or None, an.top_level, n, chosen_among))


def collect(paths: list[str]) -> list[Cell]:
    by_cell: dict[tuple, list] = {}
    for path in dict.fromkeys(os.path.normpath(p) for p in paths):
        run = rundir.RunDir.open(path, flag="--run_dirs")
        cfg = run.config()
        by_cell.setdefault((cfg.data.dataset, cfg.model.model, protocol.mode(cfg)), []).append((run, cfg))
    return [pool(runs) for _, runs in sorted(by_cell.items())]


def read_projection(path: str) -> dict[str, float]:
    if not path:
        return {}
    try:
        data = atomic.read_json(path)
    except FileNotFoundError:
        raise UserError(f"--projection={path}: no such file") from None
    valid = {f"{d}/{m}/{mode}" for d, m in protocol.CONFIGURATIONS for mode in protocol.MODES}
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in data.values()):
        raise UserError(f"--projection={path}: write a JSON object of hours, e.g. {{\"imdb/lstm/ticket\": 40}}")
    unknown = sorted(set(data) - valid)
    if unknown:
        raise UserError(f"--projection={path}: unknown keys {unknown}; keys are <dataset>/<model>/<mode> such as "
                        f"imdb/cnn/ticket (modes: {', '.join(protocol.MODES)})")
    return {k: float(v) for k, v in data.items()}


def main() -> int:
    from lth_tf.report import study_tables

    if not FLAGS.out:
        raise UserError("--out is required: the Markdown file to write, e.g. --out=study_report.md")
    paths = list(FLAGS.run_dirs) + (sweep_run_dirs(FLAGS.sweep) if FLAGS.sweep else [])
    if not paths:
        raise UserError("give --run_dirs=A,B,... and/or --sweep=<output_dir>/sweeps/<name>")
    projection = read_projection(FLAGS.projection)
    text = study_tables.render(collect(paths), projection)
    atomic.write_text(FLAGS.out, text)
    print(f"study report: {FLAGS.out}", flush=True)
    return 0


def run() -> None:
    define_flags()
    cli.run_command("lth_tf.report.study", SUMMARY, main)


if __name__ == "__main__":
    run()
