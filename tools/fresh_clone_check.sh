#!/usr/bin/env bash
# The newcomer check of issues 25 and 26: the README's commands, taken from README.md and run verbatim on a fresh
# clone in a folder only its owner can read, with a new virtualenv, no pip cache and a fresh model folder.
#   tools/fresh_clone_check.sh [REPO]   (REPO: a path or URL git can clone; default: this checkout)
# Stop any server on 127.0.0.1:8011 first (the live-LLM part serves there). Prints each command's exit code and seconds.
set -u
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
export PIP_NO_CACHE_DIR=1
BASE=$(mktemp -d /tmp/fresh.XXXX); chmod 700 "$BASE"; cd "$BASE"
git clone -q "$REPO" repo && cd repo && git log --oneline -1
TRAIN=$(grep -m1 '^python3 -m venv .venv && .venv/bin/pip install -r requirements.txt ' README.md)
echo "TRAIN=$TRAIN"
TEST=$(sed -n 's/^\(python3 -m venv .venv && .venv\/bin\/pip install -r requirements-dev.txt.*\)$/\1/p' README.md | head -1)
echo "TEST=$TEST"
s=$(date +%s); bash -c "$TRAIN" > ../train.log 2>&1; echo "train rc=$? $(( $(date +%s)-s )) s"; tail -4 ../train.log
rm -rf .venv
s=$(date +%s); bash -c "$TEST" > ../test.log 2>&1; echo "test rc=$? $(( $(date +%s)-s )) s"; tail -3 ../test.log
echo BASE=$BASE
# issue 26: README install, then the section's three commands (a fresh model folder, so serve assembles it)
export LLM4TEACH_MODEL_DIR=$BASE/models
LLMCMDS=$(sed -n '/^### A real LLM on your laptop/,/^## /p' README.md | grep '^\.venv/bin/')
echo "$LLMCMDS"
INSTALL=$(echo "$LLMCMDS" | sed -n 1p); SERVE=$(echo "$LLMCMDS" | sed -n 2p); LIVE=$(echo "$LLMCMDS" | sed -n 3p)
s=$(date +%s); bash -c "$INSTALL" > ../llm_install.log 2>&1; echo "llm install rc=$? $(( $(date +%s)-s )) s"
s=$(date +%s); setsid bash -c "exec $SERVE" > ../serve.log 2>&1 & SPID=$!
UP="NOT up"; for i in $(seq 120); do grep -q "^serving" ../serve.log && UP=up && break; sleep 1; done
echo "serve $UP after $(( $(date +%s)-s )) s"; head -5 ../serve.log
s=$(date +%s); bash -c "$LIVE" > ../live.log 2>&1; echo "live train rc=$? $(( $(date +%s)-s )) s"; tail -3 ../live.log
python3 -c "import json;print('llm', json.load(open('log/ppo/simpledoorkey/gemma/summary.json'))['llm'])"
s=$(date +%s); bash -c "${LIVE/--savedir gemma/--savedir gemma_rerun}" > ../rerun.log 2>&1; echo "rerun rc=$? $(( $(date +%s)-s )) s"
python3 -c "import json;print('rerun llm', json.load(open('log/ppo/simpledoorkey/gemma_rerun/summary.json'))['llm'])"
kill -TERM -- -$SPID; sleep 3; pgrep -af "llama_cpp.server.*$BASE" || echo "server stopped"
