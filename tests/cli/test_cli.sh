#!/usr/bin/env bash
# Command-line behaviour of the real `pfcr` binary: help, synth -> prepare -> inspect on a
# 256-domain synthetic set, and bad inputs that must exit non-zero with a clear message and
# leave no prepared.h5 (or temp file) behind. Usage: test_cli.sh PFCR_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pfcr=$1
src=$2
make_work

# expect_error NAME REGEX CMD...: CMD must exit non-zero and print REGEX on stderr.
expect_error() {
  local name=$1 regex=$2
  shift 2
  if "$@" >"$work/out" 2>"$work/err"; then failed "$name (exit 0)"; return; fi
  if grep -Eq "$regex" "$work/err"; then pass "$name"; else failed "$name: stderr was: $(cat "$work/err")"; fi
}

"$pfcr" --help | grep -q "prepare" && pass "help lists subcommands" || failed "help"
"$pfcr" prepare --help | grep -q -- "--set" && pass "prepare --help" || failed "prepare --help"

# 256 small synthetic domains go through prepare and inspect.
"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.n_domains=256 --set synth.output="$work/syn" \
  --set synth.users_min=20 --set synth.users_max=60 --set synth.items_min=20 --set synth.items_max=40 >"$work/synth.out"
grep -q "synth: 256 domains" "$work/synth.out" && pass "synth 256 domains" || failed "synth: $(cat "$work/synth.out")"
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/run" >"$work/prep.out"
grep -q "prepared: .*(256 domains" "$work/prep.out" && pass "prepare 256 domains" || failed "prepare: $(cat "$work/prep.out")"
"$pfcr" inspect "$work/run/prepared.h5" >"$work/inspect.out" && grep -q "schema: valid" "$work/inspect.out" \
  && pass "inspect valid" || failed "inspect: $(cat "$work/inspect.out")"
# The h5py reader of docs/formats.md reads the same file with Python alone.
"$py" "$src/analysis/prepared_summary.py" --json "$work/run/prepared.h5" >"$work/py.json" \
  && "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['domains'])==256" "$work/py.json" \
  && pass "h5py reader (analysis/prepared_summary.py)" || failed "h5py reader"
[ -f "$work/run/config.resolved.yaml" ] && pass "config.resolved.yaml written" || failed "no config.resolved.yaml"

# Single-domain training (local only) is reproducible bit for bit and thread-count independent.
for t in 1 2; do
  "$pfcr" finetune -q -t "$t" -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/run" \
    --set "finetune.domains=[synth000, synth001]" --set epochs=2 --set output_dir="$work/ft$t" \
    --set data.prepared="$work/run/prepared.h5" >"$work/ft$t.out"
done
grep -q "finetune: mode full, 2 domains" "$work/ft1.out" && pass "finetune runs" || failed "finetune: $(cat "$work/ft1.out")"
cmp -s "$work/ft1/results.json" "$work/ft2/results.json" && pass "finetune results identical with 1 and 2 threads" \
  || failed "finetune results differ between 1 and 2 threads"
# Both prompt-tuning heads run end to end, identically with 1 and 2 threads.
for m in prompt-light prompt-full; do
  for t in 1 2; do
    "$pfcr" finetune -q -t "$t" -c "$src/configs/tiny.yaml" --mode "$m" --set epochs=1 \
      --set finetune.n_prompts=32 --set "finetune.domains=[synth000, synth001]" \
      --set data.prepared="$work/run/prepared.h5" --set output_dir="$work/ft-$m$t" >"$work/ft-$m$t.out"
  done
  grep -q "finetune: mode $m, 2 domains" "$work/ft-${m}1.out" && pass "finetune --mode $m runs" \
    || failed "finetune $m: $(cat "$work/ft-${m}1.out")"
  cmp -s "$work/ft-${m}1/results.json" "$work/ft-${m}2/results.json" \
    && pass "finetune $m identical with 1 and 2 threads" || failed "finetune $m differs between 1 and 2 threads"
done
expect_error "finetune prompt_heads must divide hidden_size" "must divide hidden_size" \
  "$pfcr" finetune -q -c "$src/configs/tiny.yaml" --mode prompt-light --set finetune.prompt_heads=5 --set data.prepared="$work/run/prepared.h5" --set output_dir="$work/ftp"
expect_error "finetune code_dim mismatch" "items were coded with code_dim = 4" \
  "$pfcr" finetune -q -c "$src/configs/tiny.yaml" --set code_dim=8 --set data.prepared="$work/run/prepared.h5" --set output_dir="$work/ftp"

# Bad inputs: non-zero exit, message naming the key/file, nothing left behind.
bad="$work/bad"
expect_error "unknown command lists the commands" \
  "unknown command 'prepaer'; the commands are: synth, prepare, pretrain, finetune, run, evaluate, inspect, config-keys" \
  "$pfcr" prepaer -c "$src/configs/tiny.yaml"
expect_error "no command lists the commands" "a command is required; the commands are: synth, prepare" "$pfcr"
expect_error "negative -t is refused, not taken as all cores" "Value -5 not in range 0 to 4096" \
  "$pfcr" prepare -t -5 -c "$src/configs/tiny.yaml"
expect_error "unknown key suggests" "unknown key 'n_layer' — did you mean 'n_layers'" \
  "$pfcr" prepare -q -c "$src/configs/tiny.yaml" --set n_layer=3 --set output_dir="$bad"
expect_error "out of range" "hidden_dropout_prob = 1.5 is out of range" \
  "$pfcr" prepare -q --set hidden_dropout_prob=1.5 --set output_dir="$bad"
expect_error "missing domain" "nope: domain folder not found" \
  "$pfcr" prepare -q -c "$src/configs/tiny.yaml" --set data.path="$work/syn" --set "data.domains=[synth000, nope]" --set output_dir="$bad"
cp -r "$work/syn/synth001" "$work/broken"
sed -i '3s/\t[0-9]*$/\tx7/' "$work/broken/synth001.train.inter"
mkdir -p "$work/brokenroot" && mv "$work/broken" "$work/brokenroot/synth001"
expect_error "non-integer target" "synth001.train.inter:3: item id 'x7' is not an integer" \
  "$pfcr" prepare -q -c "$src/configs/tiny.yaml" --set data.path="$work/brokenroot" --set "data.domains=[synth001]" --set output_dir="$bad"
if [ -e "$bad/prepared.h5" ] || ls "$bad"/*.tmp.* >/dev/null 2>&1; then failed "partial output left in $bad"; else pass "no partial prepared.h5"; fi

# inspect rejects non-HDF5 and truncated files.
echo "hello" >"$work/not.h5"
expect_error "inspect non-hdf5" "not an HDF5 file" "$pfcr" inspect "$work/not.h5"
head -c 20000 "$work/run/prepared.h5" >"$work/trunc.h5"
expect_error "inspect truncated" "error|INVALID" "$pfcr" inspect "$work/trunc.h5"
expect_error "inspect missing" "no such file" "$pfcr" inspect "$work/absent.h5"

finish cli
