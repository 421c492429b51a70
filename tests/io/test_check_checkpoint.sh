#!/usr/bin/env bash
# Checkpoints as users see them: a file written at 2 ranks by checkpoint_tool passes
# analysis/check_checkpoint.py and `pfcr inspect`; each of several corruptions (made with
# h5py) fails both with a message; a process killed in the middle of a checkpoint write
# (PFCR_TEST_KILL_DURING_CHECKPOINT) leaves the previous checkpoint intact and only a *.tmp,
# which the next write removes.
# Usage: test_check_checkpoint.sh CHECKPOINT_TOOL PFCR SOURCE_DIR MPIEXEC
set -uo pipefail
tool=$1
pfcr=$2
src=$3
mpiexec=$4
py=/usr/bin/python3
check="$src/analysis/check_checkpoint.py"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=detect_leaks=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "ok   $1"; }
failed() { echo "FAIL $1"; fails=$((fails + 1)); }

"$mpiexec" -n 2 --oversubscribe "$tool" "$work/ck" 3 12 >"$work/tool.out" 2>&1 || { cat "$work/tool.out"; exit 1; }
good="$work/ck/round_000003.h5"
if out=$("$py" "$check" "$good") && [ "$(echo "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"valid pfcr-checkpoint 1.0"* ]]; then
  pass "validator accepts a 2-rank checkpoint: $out"
else
  failed "validator on a good file: $out"
fi
if out=$("$pfcr" inspect "$good") && [[ "$out" == *"schema: valid"* ]] && [[ "$out" == *"round 3"* ]] \
   && [[ "$out" == *"trm_encoder.layer.1.feed_forward.dense_2.weight"* ]]; then
  pass "pfcr inspect accepts it"
else
  failed "pfcr inspect on a good file: $out"
fi

# corrupt NAME EXPECTED_MESSAGE PYTHON: runs PYTHON with `f` = the copy opened r+.
corrupt() {
  local name=$1 want=$2 code=$3 bad="$work/bad_$1.h5"
  cp "$good" "$bad"
  "$py" -c "import h5py, numpy as np
with h5py.File('$bad', 'r+') as f:
$code" || { failed "$name: could not corrupt"; return; }
  local out rc
  out=$("$py" "$check" "$bad"); rc=$?
  if [ $rc -eq 1 ] && [[ "$out" == *"$want"* ]]; then pass "validator rejects $name"; else failed "validator on $name (rc $rc): $out"; fi
  out=$("$pfcr" inspect "$bad" 2>&1); rc=$?
  if [ $rc -eq 1 ] && [[ "$out" == *"$want"* ]]; then pass "inspect rejects $name"; else failed "inspect on $name (rc $rc): $out"; fi
}
corrupt nan "contains NaN or Inf" "    d = f['clients/5/model/LayerNorm.weight']; x = d[()]; x[2] = np.nan; d[...] = x"
corrupt missing_attr "attribute 'rng_counter' missing" "    del f['clients/3'].attrs['rng_counter']"
corrupt wrong_shape "shape [9], expected [8]" "    del f['clients/7/model/LayerNorm.bias']; f['clients/7/model/LayerNorm.bias'] = np.zeros(9, np.float32)"
corrupt float64 "dtype float64, expected float32" "    x = f['server/pq_code_embedding.weight'][()]; del f['server/pq_code_embedding.weight']; f['server/pq_code_embedding.weight'] = x.astype(np.float64)"
corrupt missing_moment "optim/position_embedding.weight/v" "    del f['clients/11/optim/position_embedding.weight/v']"
corrupt version "format_version '2.0', expected '1.0'" "    f.attrs['format_version'] = '2.0'"

# Crash safety: the write of round 5 is killed half-way (every rank SIGKILLs itself).
"$mpiexec" -n 2 --oversubscribe "$tool" "$work/crash" 4 12 >/dev/null 2>&1
PFCR_TEST_KILL_DURING_CHECKPOINT=5 "$mpiexec" -n 2 --oversubscribe -x PFCR_TEST_KILL_DURING_CHECKPOINT \
  "$tool" "$work/crash" 5 12 >"$work/kill.out" 2>&1
rc=$?
listing=$(cd "$work/crash" && ls | tr '\n' ' ')
# (the space reservation of the metadata, round_000005.h5.reserve, is gone only if the kill came
# after the close had begun)
if [ $rc -ne 0 ] && [[ "$listing" =~ ^round_000004\.h5\ (round_000005\.h5\.reserve\ )?round_000005\.h5\.tmp\ $ ]]; then
  pass "killed write leaves round 4 and temp files ($listing)"
else
  failed "killed write: rc $rc, files: $listing"
fi
"$py" "$check" "$work/crash/round_000004.h5" >/dev/null && pass "round 4 still valid after the crash" \
  || failed "round 4 damaged by the crash"
"$mpiexec" -n 2 --oversubscribe "$tool" "$work/crash" 5 12 >/dev/null 2>&1
listing=$(cd "$work/crash" && ls | tr '\n' ' ')
[ "$listing" = "round_000004.h5 round_000005.h5 " ] && pass "next write removes the stale temp files" \
  || failed "after rewrite: $listing"

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
echo "all checks passed"
