#!/usr/bin/env bash
# The evidence campaign (issue 17): every real run behind docs/results.md, in priority order, resumable.
#
#   DATA=../shared/data RUNS=/root/lth_runs bash evidence/campaign.sh [restore|save|report|STEP...]
#
# restore  recreate every run recorded in evidence/ under $RUNS (lth_tf.archive); a machine that still has
#          the runs keeps its newer files
# save     write every run under $RUNS back into evidence/ (settings, metrics, ticket masks; no weights);
#          commit evidence/ afterwards: records are how runs outlive a machine
# report   rewrite each run's report, then docs/results.md (evidence/results.sh: the prose in evidence/results/
#          around the report commands' outputs)
# STEP     one of the steps below; with no argument: restore, then every step in order
#
# Every step is a plain lth_tf.main command: rerun it and it resumes where it stopped (finished tasks are
# kept; a task killed mid-level resumes at its last epoch). Stop one with Ctrl-C, or with `kill PID` (SIGTERM)
# when it runs in the background, where the shell has SIGINT ignored. Levels, replicates and branches are not part of
# a run's identity, so step 2 extends step 1's run with replicates 1 and 2. --threads is (float sums depend
# on it): it is pinned so that a machine with another number of cores resumes the same runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding imdb/ and ag_news/ (see ../shared/data/README.md)}
RUNS=${RUNS:?set RUNS to where run directories live (large: weights of every task)}
RUN="nice -n 10 python -m lth_tf.main --output_dir=$RUNS --progress=false"
IMDB_CNN="--flagfile=flags/imdb_cnn.cfg --data_dir=$DATA/imdb --branches=ticket,reinit,random_mask --threads=2"
IMDB_RUN=cnn_imdb_ea3adb8d60  # step 1's run directory (its name is its identity: the same on every machine)
AG_POOLED="--dataset=ag_news --split=pooled --data_dir=$DATA/ag_news --branches=ticket,reinit,random_mask --threads=1"

step() {
  case "$1" in
    1|imdb_cnn_full)        $RUN $IMDB_CNN ;;                                       # 20 levels, replicate 0
    # the scheduler runs the longest chain first (the ticket's levels 11-20): 1a finishes the controls to 10 first
    1a|imdb_cnn_controls)   $RUN $IMDB_CNN --levels=10 ;;
    2|imdb_cnn_replicates)  $RUN $IMDB_CNN --replicates=3 --levels=10 ;;            # replicates 1, 2 to level 10
    3|imdb_cnn_late_rewind) $RUN --flagfile=flags/imdb_cnn_late_rewind.cfg --data_dir=$DATA/imdb \
                              --branches=ticket,reinit,random_mask --threads=2 --levels=10 ;;
    3b|imdb_cnn_finetune)   $RUN --flagfile=flags/imdb_cnn_finetune.cfg --data_dir=$DATA/imdb --branches=ticket \
                              --threads=2 --levels=10 ;;
    4|ag_news_pooled_cnn)   $RUN --flagfile=flags/ag_news_cnn.cfg $AG_POOLED --replicates=3 ;;
    # 4b runs alone (after step 2), so on both cores; the last --threads wins
    4b|ag_news_pooled_lstm) $RUN --flagfile=flags/ag_news_lstm.cfg $AG_POOLED --threads=2 ;;
    # The instruments' runs (docs/instruments.md): strategies at matched sparsity, and a ticket transfer.
    # (run on 2026-12-04 with LEVELS=3 REPLICATES=2; compared with step 4's local run by lth_tf.report.compare)
    5|ag_news_pooled_lamp)  $RUN --flagfile=flags/ag_news_cnn.cfg $AG_POOLED --branches=ticket --strategy=lamp \
                              --replicates=${REPLICATES:-3} --levels=${LEVELS:-10} ;;
    5b|ag_news_pooled_global) $RUN --flagfile=flags/ag_news_cnn.cfg $AG_POOLED --branches=ticket --strategy=global \
                              --global_ranking=no_embedding --replicates=${REPLICATES:-3} --levels=${LEVELS:-10} ;;
    5c|imdb_cnn_lamp)       $RUN $IMDB_CNN --branches=ticket --strategy=lamp --replicates=2 --levels=10 ;;
    # (run on 2026-12-04 with TRANSFER_FROM=$RUNS/cnn_imdb_ea3adb8d60 TRANSFER_LEVEL=5)
    6|transfer_imdb_to_ag)  $RUN --flagfile=flags/ag_news_cnn.cfg $AG_POOLED --levels=1 --replicates=3 \
                              --transfer_from="${TRANSFER_FROM:?set TRANSFER_FROM to the run directory of step 1}" \
                              --transfer_level=${TRANSFER_LEVEL:?the IMDb ticket level to transfer} ;;
    # The instruments on the IMDb CNN run of step 1 (docs/instruments.md sections 5-6; run on 2026-12-04). Step 8's
    # run is its own (--early_bird_steps is part of a run's identity): cnn_imdb_2a4acf22f5, beside step 1's.
    7|imdb_cnn_instability) nice -n 10 python -m lth_tf.instruments.instability --run_dir="$RUNS/$IMDB_RUN" --level=5 \
                              --rewind_steps=0it,110it,1ep --progress=false ;;
    8|imdb_cnn_early_bird)  $RUN $IMDB_CNN \
                              --branches=ticket --levels=0 --early_bird --early_bird_steps=44
                            python -m lth_tf.instruments.early_bird --run_dir="$RUNS/cnn_imdb_2a4acf22f5" ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
}

# A run directory with at least one finished task (a run just started has none: nothing to save or report yet).
has_finished() {
  [ -f "$1/config.json" ] && [ -n "$(find "$1" -name metrics.json -path '*/level_*' -print -quit)" ]
}

case "${1:-all}" in
  restore) for record in evidence/*/; do  # folders without config.json (exports/, comparisons/) are not runs
             if [ -f "$record/config.json" ]; then python -m lth_tf.archive --restore="$record" --output_dir="$RUNS"; fi
           done ;;
  save)    for run in "$RUNS"/*/; do
             if has_finished "$run"; then python -m lth_tf.archive --save="$run" --records=evidence; fi
           done ;;
  report)  for run in "$RUNS"/*/; do
             if has_finished "$run"; then python -m lth_tf.report --run_dir="$run"; fi
           done
           RUNS="$RUNS" bash evidence/results.sh ;;
  all)     "$0" restore; for s in 1 2 3 3b 4 4b 5 5b 5c; do step $s; done ;;
  *)       for s in "$@"; do step "$s"; done ;;
esac
