#!/usr/bin/env bash
# docs/results.md from the runs under $RUNS: the prose in evidence/results/ around the outputs of the project's
# report commands (every table and verdict is a command's output; nothing in them is typed by hand).
#
#   RUNS=/path/to/runs bash evidence/results.sh      (also the last part of `evidence/campaign.sh report`)
#
# The runs are those of evidence/campaign.sh, found by name (a run's name is its identity: the same on every
# machine). Runs of steps 3 and 3b (late rewinding, fine-tuning) join the study tables and verdicts when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3  # TensorFlow loads for the reports: keep its start-up chatter out of the way
RUNS=${RUNS:?set RUNS to the folder of the campaign runs}
IMDB=$RUNS/cnn_imdb_ea3adb8d60     # campaign steps 1-2
AG=$RUNS/cnn_ag_news_1af3a9d64d    # campaign step 4
rewinding_runs() {  # the IMDb runs that differ from the θ0 run only in how they restart (rewind step, fine-tuning)
  python - "$@" <<'PY'
import os, sys
from lth_tf.rundir import RunDir
runs, base = sys.argv[1:]
restart = ("experiment.late_rewind", "experiment.finetune", "experiment.rewind_step")
identity = lambda path: RunDir.open(path).config().identity()
same = lambda i: {k: v for k, v in i.items() if k not in restart} == identity(base)
found = [os.path.join(runs, n) for n in sorted(os.listdir(runs)) if os.path.isfile(os.path.join(runs, n, "config.json"))]
print(",".join(r for r in found if set(identity(r)) & set(restart) and same(identity(r))))
PY
}
REWINDING=$(rewinding_runs "$RUNS" "$IMDB")
lstm_run() {  # campaign step 4b's run (AG News pooled BiLSTM) once it has a finished task; none: empty
  python - "$@" <<'PY'
import os, sys
from lth_tf.rundir import RunDir
runs, cnn = sys.argv[1:]
same_rows = ("data.dataset", "data.split")  # the AG News CNN run's rows (its vocabulary is the CNN's own)
cnn_identity = RunDir.open(cnn).config().identity()
want = {k: cnn_identity.get(k) for k in same_rows}
for name in sorted(os.listdir(runs)):
    path = os.path.join(runs, name)
    if not os.path.isfile(os.path.join(path, "config.json")):
        continue
    run = RunDir.open(path)
    cfg = run.config()
    identity = cfg.identity()
    data = {k: identity.get(k) for k in same_rows}
    if cfg.model.model == "lstm" and data == want and not cfg.experiment.late_rewind and not cfg.experiment.finetune \
            and any(True for _ in run.finished()):
        print(path)
        break
PY
}
AG_LSTM=$(lstm_run "$RUNS" "$AG")
finished() {  # what has finished, per run, branch and replicate: the highest level done and its sparsity
  python - "$@" <<'PY'
import sys
from lth_tf.rundir import RunDir
print("| run | branch | replicate: highest finished level (sparsity) |\n|---|---|---|")
for path in sys.argv[1:]:
    run = RunDir.open(path)
    top = {}
    for task in run.finished():
        if task.level and task.level >= top.get((task.branch, task.replicate), (0, 0))[0]:
            top[(task.branch, task.replicate)] = (task.level, run.read_metrics(task)["sparsity"])
    for branch in dict.fromkeys(b for b, _ in sorted(top, key=lambda k: (k[0] != "ticket", k))):
        cells = [f"r{r}: level {lvl} ({100 * s:.1f}%)" for (b, r), (lvl, s) in sorted(top.items()) if b == branch]
        print(f"| `{run.name}` | {branch} | {'; '.join(cells)} |")
PY
}
left() {  # the campaign's unfinished steps: tasks left, priced from the finished tasks' own seconds
  python - "$@" <<'PY'
import sys
from benchmarks.projection import CONFIGS
from lth_tf.lottery.makespan import duration_models
from lth_tf.lottery.tasks import plan
from lth_tf.rundir import RunDir
imdb, ag = RunDir.open(sys.argv[1]), RunDir.open(sys.argv[2])
lstm = RunDir.open(sys.argv[3]) if sys.argv[3] else None
rewinding = [RunDir.open(p) for p in sys.argv[4:]]
late = [r for r in rewinding if r.config().experiment.late_rewind]
branches = ["ticket", "reinit", "random_mask"]
imdb_cnn = duration_models([imdb, *late])["cnn_imdb"]  # the same network and data: one pool of seconds
ag_cnn = duration_models([ag])["cnn_ag_news"]
lstm_factor = CONFIGS["ag_news_lstm"][0] / CONFIGS["ag_news_cnn"][0]
steps = [("2: replicates 1-2 to level 10", imdb, plan(10, branches, 3), imdb_cnn, 1.0,
          "each (branch, level)'s measured seconds in this run"),
         *[("3: true late rewinding to level 10, with controls", r, plan(10, branches, 1), imdb_cnn, 1.0,
            "the IMDb runs' measured seconds per (branch, level)") for r in late],
         ("4b: AG News pooled BiLSTM, 20 levels, 1 replicate", lstm, plan(20, branches, 1), ag_cnn, lstm_factor,
          f"the AG News pooled CNN run's seconds x {lstm_factor:.0f} (BiLSTM / CNN per epoch, benchmarks.projection)")]
print("| campaign step | tasks left | projected, one task at a time on this machine | priced from |")
print("|---|---:|---:|---|")
for name, run, tasks, model, factor, source in steps:
    done = set(run.finished()) if run else set()
    todo = [t for t in tasks if t not in done]
    if not todo:  # a finished step did fit
        continue
    hours = factor * sum(model.seconds(t) for t in todo) / 3600
    print(f"| {name} | {len(todo)} of {len(tasks)} | {hours:.1f} h | {source} |")
PY
}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

for run in "$IMDB" "$AG" $AG_LSTM; do python -m lth_tf.report --run_dir="$run" > /dev/null; done
python -m benchmarks.projection --run_dir="$IMDB" --out="$WORK/projection.json" > "$WORK/projection.txt"
python -m lth_tf.report.study --run_dirs="$IMDB,$AG${AG_LSTM:+,$AG_LSTM}${REWINDING:+,$REWINDING}" --projection="$WORK/projection.json" \
  --out="$WORK/study.md" > /dev/null
cp "$IMDB/accuracy_vs_sparsity.png" docs/img/imdb_cnn_accuracy_vs_sparsity.png
cp "$IMDB/sparsity_per_tensor.png" docs/img/imdb_cnn_sparsity_per_tensor.png
cp "$AG/accuracy_vs_sparsity.png" docs/img/ag_news_pooled_cnn_accuracy_vs_sparsity.png

result_of() {  # a run's report from its "## Result" on, one heading level down
  sed -n '/^## Result/,$p' "$1/summary.md" | sed 's/^## /### /'
}
{
  cat evidence/results/header.md
  echo
  echo "## What has finished"
  echo
  finished "$IMDB" "$AG" $AG_LSTM ${REWINDING//,/ }
  echo
  echo "## The study's tables beside ours (\`python -m lth_tf.report.study\`)"
  echo
  sed -n '/^## Without late rewinding/,/^## Every replicate at the chosen level/p' "$WORK/study.md" | sed '$d' \
    | sed 's/^## /### /'
  cat evidence/results/interpretation.md
  echo
  echo "## What did not fit, and what it would take (\`python -m benchmarks.projection\`)"
  echo
  echo "The campaign's steps not finished (evidence/campaign.sh), priced from the seconds of its finished tasks"
  echo "(which include stretches when other jobs shared the 2 cores, so these are upper estimates):"
  echo
  left "$IMDB" "$AG" "$AG_LSTM" ${REWINDING//,/ }
  echo
  echo "The study's full grid (4 configurations x 3 modes, 3 replicates x (level 0 + 20 levels x 3 branches) each), projected"
  echo "from the IMDb run's own seconds per epoch on this machine, per run on one worker and for N workers"
  echo "(longest-chain-first scheduling; docs/scaling.md):"
  echo
  sed 's/^/    /' "$WORK/projection.txt"
  echo
  echo "## IMDb + CNN: the run's report (\`python -m lth_tf.report\`)"
  echo
  result_of "$IMDB"
  echo
  echo '![accuracy vs sparsity](img/imdb_cnn_accuracy_vs_sparsity.png)'
  echo
  echo '![sparsity per tensor by level](img/imdb_cnn_sparsity_per_tensor.png)'
  echo
  # the restart modes beside the θ0 ticket, over the levels all of them finished (one section and one figure)
  RESTARTED=$(python - "$REWINDING" <<'PY'
import sys
from lth_tf.rundir import RunDir
paths = [p for p in sys.argv[1].split(",") if p]
print(",".join(p for p in paths if any(t.level for t in RunDir.open(p).finished())))  # a pruned level to compare
PY
)
  if [ -n "$RESTARTED" ]; then
    python -m lth_tf.report.compare --run_dirs="$IMDB,$RESTARTED" --replicates=0 --out="$WORK/compare.md" > /dev/null
    cp "$WORK/compare.png" docs/img/imdb_cnn_restart_modes.png
    echo "## IMDb + CNN: the θ0 ticket, fine-tuning (the study's \"late rewinding\", step 3b) and true late rewinding (step 3), level by level (\`python -m lth_tf.report.compare\`)"
    echo
    sed '1,/^$/d' "$WORK/compare.md"
    echo
    echo '![the three ways to restart survivors, by level](img/imdb_cnn_restart_modes.png)'
    echo
  fi
  cat evidence/results/ag_news.md
  echo
  result_of "$AG"
  echo
  echo '![accuracy vs sparsity](img/ag_news_pooled_cnn_accuracy_vs_sparsity.png)'
  if [ -n "$AG_LSTM" ]; then
    cp "$AG_LSTM/accuracy_vs_sparsity.png" docs/img/ag_news_pooled_lstm_accuracy_vs_sparsity.png
    echo
    cat evidence/results/ag_news_lstm.md
    echo
    result_of "$AG_LSTM"
    echo
    echo '![accuracy vs sparsity](img/ag_news_pooled_lstm_accuracy_vs_sparsity.png)'
  fi
} | sed "s#$RUNS/#RUNS/#g" > "$WORK/results.md"
mv "$WORK/results.md" docs/results.md
echo "docs/results.md written from $IMDB, $AG${AG_LSTM:+, $AG_LSTM}${REWINDING:+, $REWINDING}"
