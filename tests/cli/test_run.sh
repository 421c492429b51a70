#!/usr/bin/env bash
# `pfcr run` end to end on a tiny synthetic dataset under mpirun: prepare -> pretrain ->
# finetune -> results.json; a second run reuses prepared.h5 (up to date) and the finished
# pre-training (resumed, nothing to do) and gives the same results; a changed data key makes
# prepared.h5 stale; algorithm local skips pre-training; `pfcr evaluate` of its checkpoints
# reproduces results.json; a prepare error on rank 0 ends both ranks cleanly; SIGUSR1 to mpirun
# during fine-tuning stops it with 75, and the same command on 1 rank finishes with the
# uninterrupted run's results.json bytes.
# Usage: test_run.sh PFCR SRC [MPIEXEC]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_test_setup "$@"
"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
run() { "$mpiexec" -n 2 --oversubscribe "$pfcr" run -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" \
          --set federation.rounds=2 --set epochs=3 "$@"; }

run --set output_dir="$work/r" >"$work/r1.out" 2>"$work/r1.err"
[ -f "$work/r/prepared.h5" ] && [ -f "$work/r/pretrain/ckpt/round_000002.h5" ] && [ -f "$work/r/finetune/results.json" ] \
  && grep -q '"mean_test"' "$work/r/results.json" && grep -q '"algorithm": "pfcr"' "$work/r/results.json" \
  && pass "run: prepared.h5, pretrain checkpoint, finetune results, run results.json" || failed "run: $(tail -5 "$work/r1.err")"
grep -q "^run: pfcr + finetune full" "$work/r1.out" && grep -q "synth000" "$work/r1.out" && pass "run prints the table and a summary line" \
  || failed "run output: $(tail -3 "$work/r1.out")"
"$py" -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/r/results.json" && pass "results.json is valid JSON" \
  || failed "results.json invalid"
cp "$work/r/results.json" "$work/first.json"
run --set output_dir="$work/r" >"$work/r2.out" 2>"$work/r2.err"
grep -q "is up to date" "$work/r2.err" && grep -q "all federation.rounds done" "$work/r2.err" \
  && pass "second run: prepared.h5 up to date, pre-training already complete" || failed "second run: $(head -5 "$work/r2.err")"
cmp -s <(grep -o '"domains".*"mean_test"[^}]*}' "$work/first.json") <(grep -o '"domains".*"mean_test"[^}]*}' "$work/r/results.json") \
  && pass "second run: same test results" || failed "second run results differ"
# The format's names are one schema: analysis/check_checkpoint.py (h5py) and `pfcr inspect`
# accept the pre-training and the fine-tuning checkpoints the binary wrote (incl. prompt-full
# below).
for ck in "$work/r/pretrain/ckpt/round_000002.h5" "$(ls "$work/r/finetune/ckpt"/round_*.h5)"; do
  "$py" "$src/analysis/check_checkpoint.py" "$ck" >"$work/cc.out" 2>&1 && "$pfcr" inspect "$ck" >/dev/null 2>&1 \
    && pass "check_checkpoint.py and inspect accept $(basename "$(dirname "$(dirname "$ck")")")/$(basename "$ck")" \
    || failed "validator on $ck: $(tail -3 "$work/cc.out")"
done
# `pfcr evaluate`: a fine-tuning checkpoint's best state on test gives results.json's numbers bit
# for bit, on 2 ranks and on 1.
tests_of() { grep -o '"test": {[^}]*}\|"mean_test": {[^}]*}' "$1"; }
evaluate() { "$mpiexec" -n "$1" --oversubscribe "$pfcr" evaluate -q "${@:2}"; }
evaluate 2 "$work/r/finetune/ckpt" --json "$work/e2.json" >"$work/e2.out" 2>&1 || true
evaluate 1 "$work/r/finetune/ckpt" --json "$work/e1.json" >/dev/null 2>&1 || true
[ "$(tests_of "$work/r/finetune/results.json" | wc -l)" -ge 2 ] \
  && cmp -s <(tests_of "$work/r/finetune/results.json") <(tests_of "$work/e2.json") \
  && cmp -s <(tests_of "$work/e1.json") <(tests_of "$work/e2.json") && grep -q "^mean " "$work/e2.out" \
  && pass "evaluate: best state on test = results.json bit for bit (1 and 2 ranks)" || failed "evaluate: $(tail -3 "$work/e2.out")"
# analysis/compare_ties.py re-evaluates the run under the other tie rules: the bounds hold
# (pessimistic <= expected <= optimistic for every row of its table).
PFCR="$pfcr" MPIRUN="$mpiexec" "$py" "$src/analysis/compare_ties.py" "$work/r" >"$work/ties.out" 2>&1 \
  && [ "$(grep -c '^| mean | recall@10 |' "$work/ties.out")" = 3 ] \
  && "$py" - "$work/ties.out" <<'EOF_PY' && pass "compare_ties.py: 3 rules, pessimistic <= expected <= optimistic" \
  || failed "compare_ties.py: $(tail -3 "$work/ties.out")"
import sys
rule, rows = None, {}
for line in open(sys.argv[1]):
    if line.startswith("expected vs "):
        rule = line.split()[2]
    elif line.startswith("| ") and rule and not line.startswith("| domain"):
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        rows.setdefault((c[0], c[1]), {})["expected"] = float(c[2])
        rows[(c[0], c[1])][rule] = float(c[3])
ok = len(rows) > 0 and all(r["pessimistic"] <= r["expected"] + 1e-12 <= r["optimistic"] + 2e-12
                           for r in rows.values())
sys.exit(0 if ok else 1)
EOF_PY
# prompt-full at a learning rate where some client's best epoch is not its last: the best and
# the final state on valid equal metrics.jsonl's valid lines of the best and the last epoch.
"$mpiexec" -n 2 --oversubscribe "$pfcr" finetune -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set epochs=4 \
  --set learning_rate=0.01 --set data.prepared="$work/r/prepared.h5" --set output_dir="$work/pf" --mode prompt-full \
  --from "$work/r/pretrain/ckpt" >/dev/null 2>&1 || true
ck=$(ls "$work/pf/ckpt"/round_*.h5)
"$py" "$src/analysis/check_checkpoint.py" "$ck" >"$work/cc.out" 2>&1 && "$pfcr" inspect "$ck" >/dev/null 2>&1 \
  && pass "check_checkpoint.py and inspect accept the prompt-full checkpoint" \
  || failed "validator on prompt-full $ck: $(tail -3 "$work/cc.out")"
evaluate 2 "$work/pf/ckpt" --json "$work/epf.json" >"$work/epf.out" 2>&1 || true
[ "$(tests_of "$work/pf/results.json" | wc -l)" -ge 2 ] && cmp -s <(tests_of "$work/pf/results.json") <(tests_of "$work/epf.json") \
  && pass "evaluate: prompt-full checkpoint = its results.json" || failed "evaluate prompt-full: $(tail -3 "$work/epf.out")"
evaluate 2 "$work/pf/ckpt" --split valid --json "$work/epf-best.json" >/dev/null 2>&1 || true
evaluate 2 "$work/pf/ckpt" --split valid --state final --json "$work/epf-final.json" >/dev/null 2>&1 || true
"$py" - "$work/pf/results.json" "$work/pf/metrics.jsonl" "$work/epf-best.json" "$work/epf-final.json" <<'PY' \
  && pass "evaluate --state best|final on valid = metrics.jsonl of the best|last epoch" || failed "evaluate --state"
import json, sys
res, best, final = (json.load(open(sys.argv[i])) for i in (1, 3, 4))
epochs = [e for e in map(json.loads, open(sys.argv[2])) if e["event"] == "epoch"]
differ = 0
for dom, r in res["domains"].items():
    mine = [e for e in epochs if e["domain"] == dom]
    b = r["best_epoch"][0]
    assert best["domains"][dom]["valid"] == [e for e in mine if e["epoch"] == b][0]["valid"], dom
    assert final["domains"][dom]["valid"] == mine[-1]["valid"], dom
    differ += b != mine[-1]["epoch"]
assert differ > 0, "no client's best epoch differs from its last: the test needs one (raise learning_rate)"
PY
evaluate 2 "$work/r/pretrain/ckpt" --split valid --json "$work/ep2.json" >/dev/null 2>&1 || true
evaluate 1 "$work/r/pretrain/ckpt" --split valid --json "$work/ep1.json" >/dev/null 2>&1 || true
grep -q '"stage": "pretrain", "round": 2, "state": "final", "split": "valid"' "$work/ep2.json" \
  && grep -q '"mean_valid"' "$work/ep2.json" && cmp -s "$work/ep1.json" "$work/ep2.json" \
  && pass "evaluate: pre-training checkpoint on valid, same bytes on 1 and 2 ranks" || failed "evaluate pretrain: $(head -c 300 "$work/ep2.json")"
evaluate 2 "$work/r/finetune/ckpt" --set hidden_size=64 >"$work/bad.out" 2>&1 && failed "evaluate accepted another hidden_size" \
  || { grep -q "config key 'hidden_size' is 32 in the checkpoint but 64 now (--set hidden_size=64)" "$work/bad.out" \
       && ! grep -q MPI_ABORT "$work/bad.out" && pass "evaluate: changed model key is a clean error naming it" \
       || failed "evaluate bad key: $(head -3 "$work/bad.out")"; }
evaluate 1 "$work/r/pretrain/ckpt" --state best >"$work/bad2.out" 2>&1 && failed "evaluate --state best on pretrain" \
  || { grep -q "needs a fine-tuning checkpoint" "$work/bad2.out" && pass "evaluate: --state best needs a fine-tuning checkpoint" \
       || failed "evaluate --state: $(head -3 "$work/bad2.out")"; }
run --set output_dir="$work/r" --set data.text_ngrams=1 >/dev/null 2>"$work/r3.err" || true
grep -q "config key 'data.text_ngrams' changed" "$work/r3.err" && pass "changed data key: prepared.h5 is rebuilt" \
  || failed "stale prepared.h5 not detected: $(head -3 "$work/r3.err")"
run --set output_dir="$work/local" --set federation.algorithm=local >"$work/l.out" 2>&1
[ ! -d "$work/local/pretrain" ] && grep -q '"from": ""' "$work/local/finetune/results.json" \
  && pass "algorithm local: no pre-training, fine-tuning from scratch" || failed "local: $(tail -3 "$work/l.out")"
# --- prepare failing on rank 0 (a malformed line), 2 ranks: rank 1 waits asleep in
#     quiet_barrier, then both agree on rank 0's error; printed once, non-zero exit, no hang.
cp -r "$work/syn" "$work/bad"
sed -i "s#$work/syn#$work/bad#" "$work/bad/synth.yaml"
printf 'garbage line\n' >>"$work/bad/synth001/synth001.test.inter"
rc=0
timeout 120 "$mpiexec" -n 2 --oversubscribe "$pfcr" run -c "$src/configs/tiny.yaml" -c "$work/bad/synth.yaml" \
  --set output_dir="$work/badrun" >/dev/null 2>"$work/badrun.err" || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$(grep -c 'synth001.test.inter:[0-9]*: expected 3 tab-separated columns' "$work/badrun.err")" = 1 ] &&
  ! grep -q MPI_ABORT "$work/badrun.err" && [ ! -e "$work/badrun/prepared.h5" ] &&
  pass "run: a prepare error on rank 0 ends both ranks, printed once, no prepared.h5" ||
  failed "prepare error under 2 ranks: rc $rc; $(head -3 "$work/badrun.err")"
# --- pre-emption during fine-tuning, through mpirun (which forwards SIGUSR1 to every rank):
#     each rank ends its epoch, saves its client's progress, all exit 75; the same command on
#     1 rank continues and ends with the uninterrupted run's bytes. 150 epochs: a few seconds.
long=(--set epochs=150 --set stopping_step=150 --set checkpoint.every=0)
run --set output_dir="$work/whole" "${long[@]}" >/dev/null 2>&1
"$mpiexec" -n 2 --oversubscribe "$pfcr" run -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" \
  --set federation.rounds=2 "${long[@]}" --set output_dir="$work/cut" >"$work/cut.out" 2>"$work/cut.err" &
pid=$!
for _ in $(seq 300); do grep -q "finetune: .* epoch 2/150" "$work/cut.err" && break; sleep 0.05; done
kill -USR1 "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 75 ] && grep -q "finetune: stopped by a signal" "$work/cut.err" && [ ! -e "$work/cut/results.json" ] &&
  [ -n "$(ls "$work/cut/finetune/ckpt/progress")" ] &&
  pass "SIGUSR1 to mpirun during fine-tuning: exit 75, progress saved, no results.json" ||
  failed "fine-tuning pre-emption: rc $rc; $(tail -3 "$work/cut.err")"
"$mpiexec" -n 1 "$pfcr" run -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set federation.rounds=2 \
  "${long[@]}" --set output_dir="$work/cut" >"$work/cut2.out" 2>"$work/cut2.err" || true
untimed() { sed 's/, "time": {[^}]*}//' "$1"; }
grep -q "continuing [0-9]* clients from" "$work/cut2.err" && [ -s "$work/cut/results.json" ] &&
  cmp -s "$work/cut/results.json" "$work/whole/results.json" &&
  cmp -s <(untimed "$work/cut/finetune/metrics.jsonl") <(untimed "$work/whole/finetune/metrics.jsonl") &&
  [ ! -e "$work/cut/finetune/ckpt/progress" ] &&
  pass "resumed on 1 rank: results.json and fine-tuning metrics identical to the uninterrupted run" ||
  failed "resumed run differs: $(diff "$work/cut/results.json" "$work/whole/results.json" 2>&1 | head -3; tail -2 "$work/cut2.err")"
# --- refused before anything is written: more ranks than clients, a checkpoint directory
#     under a file
rc=0
"$mpiexec" -n 6 --oversubscribe "$pfcr" run -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" \
  --set output_dir="$work/toomany" >/dev/null 2>"$work/toomany.err" || rc=$?
[ "$rc" = 1 ] && grep -q "6 ranks but only 4 clients" "$work/toomany.err" && [ ! -e "$work/toomany" ] \
  && [ "$(grep -c 'error:' "$work/toomany.err")" = 1 ] \
  && pass "run with more ranks than clients: one error, exit 1, nothing written" \
  || failed "too many ranks: rc $rc, $(head -2 "$work/toomany.err"), $(ls "$work/toomany" 2>&1)"
touch "$work/afile"
rc=0
run --set output_dir="$work/badck" --set checkpoint.dir="$work/afile/ckpt" >/dev/null 2>"$work/badck.err" || rc=$?
[ "$rc" = 1 ] && grep -q "checkpoint.dir = .*afile/ckpt: cannot be created: .*afile is not a directory" "$work/badck.err" \
  && [ ! -e "$work/badck/pretrain" ] \
  && pass "checkpoint.dir under a file: refused at start-up, no stage output" \
  || failed "bad checkpoint.dir: rc $rc, $(head -2 "$work/badck.err"), $(ls "$work/badck" 2>&1)"
finish run
