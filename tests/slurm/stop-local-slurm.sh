#!/usr/bin/env bash
# Stops exactly the daemons that tests/slurm/start-local-slurm.sh started (the PIDs it recorded
# in $SLURM_LOCAL_DIR/started.pids), in the order slurmd (ends running job steps), slurmctld,
# munged: SIGTERM, up to 20 s, then SIGKILL. Never kills by name; daemons it did not start (a
# munged that was already running) are left alone. The directory's logs are kept.
set -euo pipefail
dir=${SLURM_LOCAL_DIR:-/tmp/pfcr-slurm}
list=$dir/started.pids
[ -e "$list" ] || { echo "stop-local-slurm: nothing recorded in $dir"; exit 0; }

# Alive = /proc entry, not a zombie (PID 1 reaps lazily here), and the recorded command name.
alive() { # pid comm
    local stat state
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r state _ <<<"${stat##*)}" # the field after "(comm)"
    [ "$state" != Z ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

for name in slurmd slurmctld munged; do
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$list")
    [ -n "$pid" ] || continue
    if ! alive "$pid" "$name"; then
        echo "stop-local-slurm: $name ($pid) not running"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 200); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then
        echo "stop-local-slurm: $name ($pid) ignored SIGTERM for 20 s; SIGKILL"
        kill -KILL "$pid" || true
    fi
    echo "stop-local-slurm: stopped $name ($pid)"
done
rm -f "$list" "$dir"/{slurmd,slurmctld,munged}.pid
