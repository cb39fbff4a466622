#!/usr/bin/env bash
# Runs (or resumes) the confirmation sweep of issue 28, configs/sweeps/confirm.yaml: every run that neither
# this checkout's log/ index nor the committed report docs/results/confirm/runs.csv holds (run folders go with
# the machine that trained them; `main.py report --archive docs/results/confirm` reports those runs from the
# committed CSVs). The left runs are listed by tools/confirm_left.py in the order that fills the paper's claims
# table first (guided methods task by task, the 5x baselines, the long baselines); each is one
# `main.py sweep --tasks T --methods M --seeds S --workers 1` invocation, two at a time. The order decides only
# what finishes first; the runs are the file's. A `ppo` run cut mid-way continues from its checkpoint while the
# log is still there, a cut `sb3_ppo` run starts over, and a dead owner's lock is taken over.
#   tools/confirm_sweep.sh             trains what is left
#   tools/confirm_sweep.sh --dry_run   lists it and trains nothing
#   CONFIRM_COMMIT (default 9f073a8, the commit the sweep started on), CONFIRM_WORKTREE (default ../confirm_wt)
# The runs are trained from a clean worktree at COMMIT (so each run's recorded commit is clean) into this
# checkout's log/. The gemma methods need the local server: `python main.py serve` first. Afterwards:
#   python main.py report --name confirm --archive docs/results/confirm --out docs/results/confirm \
#       --label confirmatory --beside docs/results/gemma --beside_label "exploratory, seeds 0-4"
set -u
MAIN=$(cd "$(dirname "$0")/.." && pwd)
COMMIT=${CONFIRM_COMMIT:-9f073a8}
WT=${CONFIRM_WORKTREE:-$(dirname "$MAIN")/confirm_wt}
PY="$MAIN/.venv/bin/python"
LOG="$MAIN/log"
ARCHIVE="$MAIN/docs/results/confirm"
[ -x "$PY" ] || { echo "no $PY: make the virtualenv first (README, Install)" >&2; exit 1; }
LEFT=$(cd "$MAIN" && "$PY" -m tools.confirm_left --config configs/sweeps/confirm.yaml --logdir "$LOG" \
       --archive "$ARCHIVE") || exit 1
echo "confirmation sweep: $(printf '%s' "$LEFT" | grep -c .) runs left (log $LOG, archive $ARCHIVE)"
if [ "${1:-}" = --dry_run ]; then
    [ -n "$LEFT" ] && printf '%s\n' "$LEFT" | sed 's/^/  /'
    exit 0
fi
[ -n "$LEFT" ] || exit 0
[ -d "$WT" ] || git -C "$MAIN" worktree add -f --detach "$WT" "$COMMIT" || exit 1
[ "$(git -C "$WT" rev-parse --short=7 HEAD)" = "$(git -C "$MAIN" rev-parse --short=7 "$COMMIT")" ] \
    || { echo "$WT is not at $COMMIT: remove it or set CONFIRM_WORKTREE" >&2; exit 1; }
[ -z "$(git -C "$WT" status --porcelain)" ] || { echo "$WT has changes: the runs' commit would not be clean" >&2; exit 1; }
INDEX_DIR="$LOG/sweeps/confirm"
if [ ! -f "$INDEX_DIR/sweep.json" ] && [ -f "$ARCHIVE/sweep.json" ]; then
    # a new machine: the same sweep goes on, so it keeps its commits and the ways its file was run
    mkdir -p "$INDEX_DIR" && cp "$ARCHIVE/sweep.json" "$INDEX_DIR/sweep.json" || exit 1
fi
cd "$WT" || exit 1
# xargs hands the next run to whichever of the two slots frees first; it exits non-zero if any run failed
printf '%s\n' "$LEFT" | xargs -P 2 -L 1 sh -c 'exec "$0" main.py sweep --config configs/sweeps/confirm.yaml \
    --llm_url http://127.0.0.1:8011 --workers 1 --logdir "$1" --tasks "$2" --methods "$3" --seeds "$4"' "$PY" "$LOG"
