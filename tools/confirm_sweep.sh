#!/usr/bin/env bash
# Runs (or resumes) the confirmation sweep of issue 28, configs/sweeps/confirm.yaml, in parts ordered so the
# paper's claims table fills first: the teacher-guided methods task by task, then the 5x baselines, then the
# long baselines. The order decides only what finishes first; the runs are the file's. Every part resumes:
# finished runs are skipped, a run cut mid-way continues from its checkpoint, a dead owner's lock is taken over.
#   CONFIRM_COMMIT=9f073a8 tools/confirm_sweep.sh [--dry_run]   (default: 9f073a8, the commit the sweep started on;
#                                                                any argument is passed to every part)
# The runs are trained from a clean worktree at COMMIT (so each run's recorded commit is clean) into this
# checkout's log/. The gemma methods need the local server: `python main.py serve` first (their answers are
# mostly cache hits in log/llm_cache.sqlite). Afterwards:
#   python main.py report --name confirm --out docs/results/confirm --label confirmatory \
#       --beside docs/results/gemma --beside_label "exploratory, seeds 0-4"
set -u
MAIN=$(cd "$(dirname "$0")/.." && pwd)
COMMIT=${CONFIRM_COMMIT:-9f073a8}
failed=0
WT=${CONFIRM_WORKTREE:-$(dirname "$MAIN")/confirm_wt}
[ -d "$WT" ] || git -C "$MAIN" worktree add -f --detach "$WT" "$COMMIT" || exit 1
[ "$(git -C "$WT" rev-parse --short=7 HEAD)" = "$(git -C "$MAIN" rev-parse --short=7 "$COMMIT")" ] \
    || { echo "$WT is not at $COMMIT: remove it or set CONFIRM_WORKTREE" >&2; exit 1; }
[ -z "$(git -C "$WT" status --porcelain)" ] || { echo "$WT has changes: the runs' commit would not be clean" >&2; exit 1; }
cd "$WT" || exit 1
PY="$MAIN/.venv/bin/python"
COMMON=(--config configs/sweeps/confirm.yaml --llm_url http://127.0.0.1:8011 --workers 2 --logdir "$MAIN/log")
GUIDED=(hard soft hard_safe oracle adversarial gemma_hard gemma_soft)
for task in SimpleDoorKey LavaDoorKey ColoredDoorKey TwoDoor; do
    "$PY" main.py sweep "${COMMON[@]}" "$@" --tasks "$task" --methods "${GUIDED[@]}" || failed=1
done
for task in SimpleDoorKey LavaDoorKey ColoredDoorKey TwoDoor; do
    "$PY" main.py sweep "${COMMON[@]}" "$@" --tasks "$task" --methods ppo sb3_ppo ppo_task || failed=1
done
"$PY" main.py sweep "${COMMON[@]}" "$@" || failed=1   # what is left: the long baselines
exit $failed   # a part that failed was reported above; the later parts ran anyway
