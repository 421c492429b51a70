#!/usr/bin/env bash
# `pfcr run` end to end on a tiny synthetic dataset under mpirun: prepare -> pretrain ->
# finetune -> results.json; a second run reuses prepared.h5 (up to date) and the finished
# pre-training (resumed, nothing to do) and gives the same results; a changed data key makes
# prepared.h5 stale; algorithm local skips pre-training. Usage: test_run.sh PFCR SRC MPIEXEC
set -euo pipefail
pfcr=$1
src=$2
mpiexec=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=detect_leaks=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "ok   $1"; }
failed() { echo "FAIL $1"; fails=$((fails + 1)); }
"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
run() { "$mpiexec" -n 2 --oversubscribe "$pfcr" run -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" \
          --set federation.rounds=2 --set epochs=3 "$@"; }

run --set output_dir="$work/r" >"$work/r1.out" 2>"$work/r1.err"
[ -f "$work/r/prepared.h5" ] && [ -f "$work/r/pretrain/ckpt/round_000002.h5" ] && [ -f "$work/r/finetune/results.json" ] \
  && grep -q '"mean_test"' "$work/r/results.json" && grep -q '"algorithm": "pfcr"' "$work/r/results.json" \
  && pass "run: prepared.h5, pretrain checkpoint, finetune results, run results.json" || failed "run: $(tail -5 "$work/r1.err")"
grep -q "^run: pfcr + finetune full" "$work/r1.out" && grep -q "synth000" "$work/r1.out" && pass "run prints the table and a summary line" \
  || failed "run output: $(tail -3 "$work/r1.out")"
/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/r/results.json" && pass "results.json is valid JSON" \
  || failed "results.json invalid"
cp "$work/r/results.json" "$work/first.json"
run --set output_dir="$work/r" >"$work/r2.out" 2>"$work/r2.err"
grep -q "is up to date" "$work/r2.err" && grep -q "all federation.rounds done" "$work/r2.err" \
  && pass "second run: prepared.h5 up to date, pre-training already complete" || failed "second run: $(head -5 "$work/r2.err")"
cmp -s <(grep -o '"domains".*"mean_test"[^}]*}' "$work/first.json") <(grep -o '"domains".*"mean_test"[^}]*}' "$work/r/results.json") \
  && pass "second run: same test results" || failed "second run results differ"
run --set output_dir="$work/r" --set data.text_ngrams=1 >/dev/null 2>"$work/r3.err" || true
grep -q "config key 'data.text_ngrams' changed" "$work/r3.err" && pass "changed data key: prepared.h5 is rebuilt" \
  || failed "stale prepared.h5 not detected: $(head -3 "$work/r3.err")"
run --set output_dir="$work/local" --set federation.algorithm=local >"$work/l.out" 2>&1
[ ! -d "$work/local/pretrain" ] && grep -q '"from": ""' "$work/local/finetune/results.json" \
  && pass "algorithm local: no pre-training, fine-tuning from scratch" || failed "local: $(tail -3 "$work/l.out")"
echo "run: $fails failures"
[ "$fails" -eq 0 ]
