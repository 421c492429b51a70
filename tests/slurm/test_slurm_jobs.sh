#!/usr/bin/env bash
# The jobs/*.sbatch scripts submitted for real to a one-node SLURM on this machine (started by
# start-local-slurm.sh unless it already runs; stopped at the end if this test started it):
# a self-requeueing 2-rank `pfcr run` preempted with SIGUSR1 once during pre-training and once
# during fine-tuning (resumes each time, ends with the uninterrupted run's results.json bytes),
# a 3-element array from a manifest, the scaling study (CSV + plot), the mpirun fallback (the
# same run, uninterrupted), the single-experiment job, and scancel --signal=TERM to an srun
# step (exit 75 with a checkpoint). Tiny configs: about a minute.
# Jobs are waited for by polling squeue every 0.2 s: `sbatch --wait` polls at 2 s and backs
# off to 10 s (docs/SLURM-LOCAL.md pitfall 15), which alone would double this test's time.
# Usage: test_slurm_jobs.sh PFCR_BINARY SOURCE_DIR        (exit 77 = skipped: not root)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cli/common.sh"
pfcr=$(readlink -f "$1")
src=$(readlink -f "$2")
export SLURM_LOCAL_DIR=${SLURM_LOCAL_DIR:-/tmp/pfcr-slurm}
export PFCR_BIN=$pfcr PFCR_ROOT=$src
# Only the run-as-root pair (not mpi_test_env): the jobs inherit this environment, and
# oversubscription would hide a wrong slot count in jobs/*.sbatch.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP slurm_jobs: starting slurmd and munged needs root"
    exit 77
fi
for f in "$src"/jobs/*.sbatch "$src"/jobs/common.sh "$src"/tests/slurm/*.sh; do
    bash -n "$f" || failed "bash -n $f"
done

make_work /tmp/pfcr-slurm-test.XXXXXX
jobs=()
started=
at_exit '[ ${#jobs[@]} -eq 0 ] || scancel "${jobs[@]}" 2>/dev/null'
at_exit '[ -z "$started" ] || bash "$src/tests/slurm/stop-local-slurm.sh"'

# --- SLURM: reuse a cluster of an earlier start, else start one (and stop it at the end)
if ! { [ -s "$SLURM_LOCAL_DIR/started.pids" ] &&
       SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf sinfo -h >/dev/null 2>&1; }; then
    started=1
fi
eval "$(bash "$src/tests/slurm/start-local-slurm.sh")"
[ -n "${SLURM_CONF:-}" ] || { echo "FAIL no SLURM_CONF from start-local-slurm.sh"; exit 1; }

# submit LOG SBATCH_ARGS...: submits, records the job id in $id (and for cleanup).
submit() {
    local log=$1
    shift
    id=$(sbatch --parsable -o "$log" "$@")
    id=${id%%;*}
    jobs+=("$id")
}
# wait_job ID: until squeue no longer lists it (array: any element); then $states holds
# "JobState ExitCode" of each element.
wait_job() {
    for _ in $(seq 1500); do
        [ -n "$(squeue -h -j "$1" 2>/dev/null)" ] || break
        sleep 0.2
    done
    states=$(scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]* \|ExitCode=[0-9:]*' | paste -d' ' - - | sort)
}
completed() { ! grep -qv 'JobState=COMPLETED  *ExitCode=0:0' <<<"$states" && [ -n "$states" ]; }
rounds_ok() { # metrics.jsonl N: round lines are 0..N-1, each exactly once, in order
    "$py" -c 'import json, sys
r = [d["round"] for d in map(json.loads, open(sys.argv[1])) if d.get("event") == "round"]
sys.exit(0 if r == list(range(int(sys.argv[2]))) else 1)' "$1" "$2"
}

cd "$work"
"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/prep" >/dev/null
data=(-c "$work/syn/synth.yaml" --set data.prepared="$work/prep/prepared.h5")
tiny=$src/configs/tiny.yaml

# --- submit everything; SLURM runs the jobs one after another on the node's 2 CPUs
# 1. the self-requeueing pfcr run: 150 rounds (~10 s), then 4 clients x $epochs epochs without
#    early stopping; preempted below after >= 3 rounds, and again during fine-tuning
rounds=150
epochs=150
run_args=(--set federation.rounds=$rounds --set checkpoint.every=0 --set epochs=$epochs
          --set stopping_step=$epochs)
submit "$work/requeue.log" "$src/jobs/requeue.sbatch" run "$tiny" "${data[@]}" "${run_args[@]}" \
    --set output_dir="$work/rq"
requeue_id=$id
# 2. a 3-element array of tiny pretrains (one on 1 rank) from a test manifest
cat >"$work/manifest.txt" <<'M'
# name [-n ranks] command args    (blank and comment lines do not count)
fedavg-s1   pretrain --set federation.algorithm=fedavg --set seed=1

pfcr-s2     pretrain --set seed=2
central-s1  -n 1 pretrain --set federation.algorithm=centralized --set seed=1
M
submit "$work/array-%a.log" --array=1-3 "$src/jobs/array.sbatch" "$work/manifest.txt" "$work/runs" \
    -c "$tiny" "${data[@]}" --set federation.rounds=2
array_id=$id
# 3. the scaling study at 1 and 2 ranks, 3 rounds each
submit "$work/scaling.log" --ntasks=2 --export=ALL,SCALING_RANKS="1 2" "$src/jobs/scaling.sbatch" \
    "$work/scaling" "$tiny" "${data[@]}" --set federation.rounds=3
scaling_id=$id
# 4. the mpirun fallback: requeue.sbatch's normal path (no signal, exit 0), the same run
#    uninterrupted: its results must equal the twice preempted + requeued run's
submit "$work/mpirun.log" --export=ALL,PFCR_LAUNCHER=mpirun "$src/jobs/requeue.sbatch" run "$tiny" \
    "${data[@]}" "${run_args[@]}" --set output_dir="$work/mpirun"
mpirun_id=$id
# 5. the single experiment (pfcr run)
submit "$work/run.log" "$src/jobs/run.sbatch" "$tiny" "${data[@]}" --set federation.rounds=2 \
    --set epochs=1 --set output_dir="$work/run"
run_id=$id

# --- preempt the requeue job: SIGUSR1 to its batch shell, as --signal=B:USR1@T would; once
#     during pre-training, once (after the requeue) during fine-tuning
for _ in $(seq 600); do
    [ -s "$work/rq/pretrain/metrics.jsonl" ] &&
        [ "$(grep -c '"event": "round"' "$work/rq/pretrain/metrics.jsonl")" -ge 3 ] && break
    sleep 0.1
done
scancel --signal=USR1 --batch "$requeue_id"
for _ in $(seq 1500); do
    grep -q "finetune: .* epoch 2/$epochs" "$work/requeue.log" 2>/dev/null && break
    sleep 0.1
done
scancel --signal=USR1 --batch "$requeue_id"

wait_job "$requeue_id"
restarts=$(scontrol -o show job "$requeue_id" | grep -o 'Restarts=[0-9]*')
preempted=$(grep -m1 -o 'pretrain: preempted after [0-9]* of' "$work/requeue.log" || true)
resumed=$(grep -o '^requeue: resumed from .*' "$work/requeue.log" | tail -1 || true)
if completed && [ "$restarts" = Restarts=2 ] && [ -n "$preempted" ] && [ -n "$resumed" ] &&
   [ "$(grep -c "requeueing job $requeue_id" "$work/requeue.log")" = 2 ] &&
   grep -q "finetune: stopped by a signal" "$work/requeue.log" &&
   grep -q "continuing [0-9]* clients from" "$work/requeue.log" &&
   grep -q "requeue: pfcr run complete" "$work/requeue.log"; then
    pass "requeue.sbatch run: SIGUSR1 in pre-training ($preempted $rounds) and in fine-tuning -> requeued twice -> COMPLETED 0"
else
    failed "requeue.sbatch run: $states $restarts '$preempted' '$resumed'"; tail -30 "$work/requeue.log"
fi
n_ckpt=$(printf 'round_%06d.h5' $rounds)
rounds_ok "$work/rq/pretrain/metrics.jsonl" $rounds && [ -e "$work/rq/pretrain/ckpt/$n_ckpt" ] &&
    [ "$(grep -c '"event": "end"' "$work/rq/pretrain/metrics.jsonl")" = 1 ] &&
    pass "requeue.sbatch run: pretrain metrics.jsonl has rounds 0..$((rounds - 1)) exactly once, $n_ckpt written" ||
    failed "requeue.sbatch run: metrics rounds $(grep -c '"event": "round"' "$work/rq/pretrain/metrics.jsonl"), ckpt $(ls "$work/rq/pretrain/ckpt")"

wait_job "$array_id"
ok=1
for name in fedavg-s1 pfcr-s2 central-s1; do
    grep -q '"event": "end"' "$work/runs/$name/metrics.jsonl" 2>/dev/null && rounds_ok "$work/runs/$name/metrics.jsonl" 2 || ok=
done
if completed && [ "$(wc -l <<<"$states")" = 3 ] && [ -n "$ok" ] &&
   grep -q '1 ranks' "$work/array-3.log" && grep -q '"algorithm": "fedavg"\|algorithm: "fedavg"' "$work/runs/fedavg-s1/config.resolved.yaml"; then
    pass "array: 3 elements COMPLETED 0, runs/{fedavg-s1,pfcr-s2,central-s1} each with 2 rounds (central-s1 on 1 rank)"
else
    failed "array: $states; $(ls "$work/runs" 2>&1)"; tail -5 "$work"/array-*.log
fi

wait_job "$scaling_id"
csv=$work/scaling/scaling.csv
if completed && [ -s "$csv" ] && "$py" - "$csv" <<'EOF_PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
want = {("strong", "1"), ("strong", "2"), ("weak", "1"), ("weak", "2")}
ok = {(r["mode"], r["ranks"]) for r in rows} == want and len(rows) == 4
ok = ok and all(float(r["seconds_per_round"]) > 0 and r["rounds"] == "3" for r in rows)
share = lambda r: sum(float(r[k]) for k in ("local_share", "aggregate_share", "communicate_share", "server_share"))
ok = ok and all(abs(share(r) - 1) < 1e-3 for r in rows)
clients = {(r["mode"], r["ranks"]): int(r["clients"]) for r in rows}
ok = ok and clients[("strong", "1")] == clients[("strong", "2")] and clients[("weak", "2")] == 2 * clients[("weak", "1")]
ok = ok and all(float(r["efficiency"]) == 1 for r in rows if r["ranks"] == "1")
sys.exit(0 if ok else 1)
EOF_PY
then
    pass "scaling: scaling.csv has strong/weak x 1/2 ranks, shares sum to 1, weak doubles the clients"
else
    failed "scaling: $states"; cat "$csv" 2>/dev/null; tail -5 "$work/scaling.log"
fi
if "$py" -c 'import pandas, matplotlib' 2>/dev/null; then
    "$py" "$src/analysis/scaling_plot.py" "$csv" -o "$work/scaling.png" --markdown >"$work/plot.out" 2>&1 &&
        [ "$(head -c 4 "$work/scaling.png" | od -An -c | tr -d ' ')" = "211PNG" ] &&
        pass "scaling_plot.py: PNG written, Markdown table $(grep -c '^| [sw]' "$work/plot.out") rows" ||
        failed "scaling_plot.py: $(tail -3 "$work/plot.out")"
else
    failed "scaling_plot.py: python3-pandas / python3-matplotlib missing (scripts/install-deps.sh)"
fi

wait_job "$mpirun_id"
completed && grep -q "launcher mpirun" "$work/mpirun.log" && grep -q "pfcr run complete" "$work/mpirun.log" &&
    rounds_ok "$work/mpirun/pretrain/metrics.jsonl" $rounds && grep -q "clients on 2 ranks, rounds 0..$((rounds - 1))" "$work/mpirun.log" &&
    pass "PFCR_LAUNCHER=mpirun: 2 ranks from the allocation, $rounds rounds, exit 0" ||
    { failed "mpirun fallback: $states"; tail -5 "$work/mpirun.log"; }
end_sum() { grep -o '"state_sum": [-0-9.e+]*' "$1"; }
[ -n "$(end_sum "$work/rq/pretrain/metrics.jsonl")" ] &&
    [ "$(end_sum "$work/rq/pretrain/metrics.jsonl")" = "$(end_sum "$work/mpirun/pretrain/metrics.jsonl")" ] &&
    pass "preempted + requeued pre-training ends in the uninterrupted run's state ($(end_sum "$work/rq/pretrain/metrics.jsonl"))" ||
    failed "requeued state $(end_sum "$work/rq/pretrain/metrics.jsonl") != uninterrupted $(end_sum "$work/mpirun/pretrain/metrics.jsonl")"
untimed() { sed 's/, "time": {[^}]*}//' "$1"; }
[ -s "$work/rq/results.json" ] && cmp -s "$work/rq/results.json" "$work/mpirun/results.json" &&
    cmp -s <(untimed "$work/rq/finetune/metrics.jsonl") <(untimed "$work/mpirun/finetune/metrics.jsonl") &&
    pass "twice preempted + requeued pfcr run: results.json identical to the uninterrupted run's, fine-tuning metrics too" ||
    failed "requeued run results differ: $(diff "$work/rq/results.json" "$work/mpirun/results.json" 2>&1 | head -3)"

wait_job "$run_id"
completed && grep -q '"mean_test"' "$work/run/results.json" && [ -s "$work/run/finetune/metrics.jsonl" ] &&
    grep -q "^run: pfcr + finetune full" "$work/run.log" &&
    pass "run.sbatch: pfcr run COMPLETED 0, results.json + table written" ||
    { failed "run.sbatch: $states"; tail -5 "$work/run.log"; }

# --- the paper matrix in the array format: unique names, no explicit command (= pfcr run),
#     every config file exists
"$py" - "$src" <<'EOF_PY' && pass "configs/paper/matrix.txt: array-ready run lines" || failed "configs/paper/matrix.txt malformed"
import os, sys
src = sys.argv[1]
lines = [l.split() for l in open(os.path.join(src, "configs/paper/matrix.txt")) if l.strip() and not l.lstrip().startswith("#")]
names = [w[0] for w in lines]
configs = [w[i + 1] for w in lines for i in range(len(w) - 1) if w[i] == "-c"]
ok = len(lines) >= 27 and len(set(names)) == len(names) and all(w[1] == "-c" for w in lines)
sys.exit(0 if ok and all(os.path.exists(os.path.join(src, c)) for c in configs) else 1)
EOF_PY

# --- last, alone on the node (it would hold the CPUs the requeued job waits for):
#     SIGTERM to the tasks of an srun step (scancel --signal=TERM, as a scheduler's pre-emption
#     does): every rank saves, srun and the job exit 75 (rounds: more than it can ever run)
submit "$work/term.log" "$src/jobs/run.sbatch" "$tiny" "${data[@]}" --set federation.rounds=1000000 \
    --set checkpoint.every=0 --set output_dir="$work/term"
term_id=$id
for _ in $(seq 1500); do
    [ -s "$work/term/pretrain/metrics.jsonl" ] &&
        [ "$(grep -c '"event": "round"' "$work/term/pretrain/metrics.jsonl")" -ge 3 ] && break
    sleep 0.1
done
scancel --signal=TERM "$term_id" || true
wait_job "$term_id"
grep -q 'ExitCode=75:0' <<<"$states" && grep -q "pretrain: preempted after" "$work/term.log" &&
    [ -n "$(ls "$work/term/pretrain/ckpt" 2>/dev/null)" ] &&
    pass "scancel --signal=TERM to an srun step: every rank saves, exit 75 ($(ls "$work/term/pretrain/ckpt"))" ||
    { failed "SIGTERM to srun tasks: $states"; tail -5 "$work/term.log"; }


finish "slurm jobs"
