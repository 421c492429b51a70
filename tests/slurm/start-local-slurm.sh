#!/usr/bin/env bash
# Starts a real one-node SLURM cluster on this machine, without systemd: installs Debian's
# slurm-wlm packages if missing, writes slurm.conf (this machine's CPUs and memory,
# MpiDefault=pmix, fast scheduling) into a private directory, runs munged, slurmctld and slurmd
# as background daemons, waits until the node is idle and records the PIDs it started.
# It does not touch /etc/slurm, does not do multi-node or accounting (see
# docs/SLURM-LOCAL.md for the pitfalls each step below avoids).
#
# Usage: source <(tests/slurm/start-local-slurm.sh)   or   eval "$(tests/slurm/start-local-slurm.sh)"
#   stdout is one line, `export SLURM_CONF=<dir>/slurm.conf`, which client commands (sbatch,
#   squeue, scontrol) need; progress goes to stderr. Idempotent: if the daemons of a previous
#   start are alive it only prints that line. Stop with tests/slurm/stop-local-slurm.sh.
# Environment: SLURM_LOCAL_DIR (default /tmp/pfcr-slurm), SLURM_LOCAL_CPUS (advertise more CPUs
#   than the machine has, e.g. 4 on a 2-core VM to run 4 ranks oversubscribed),
#   SLURM_LOCAL_PORT (slurmctld port, slurmd uses +1; default 6817), SLURM_LOCAL_CRED_EXPIRE
#   (seconds a requeued job waits before it may start again; SLURM's default 120, here 10).
set -euo pipefail
dir=${SLURM_LOCAL_DIR:-/tmp/pfcr-slurm}
port=${SLURM_LOCAL_PORT:-6817}
conf=$dir/slurm.conf
say() { echo "start-local-slurm: $*" >&2; }

# A PID is ours and alive if /proc says so, not a zombie, with the expected command name.
alive() { # pidfile comm
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    local stat state
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    read -r state _ <<<"${stat##*)}" # the field after "(comm)"
    [ "$state" != Z ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

node_ready() {
    local out
    out=$(SLURM_CONF=$conf sinfo -h -N -o '%T' 2>/dev/null) || return 1
    case "$out" in idle*|mixed*|allocated*) return 0 ;; *) return 1 ;; esac
}

if alive "$dir/slurmctld.pid" slurmctld && alive "$dir/slurmd.pid" slurmd && node_ready; then
    say "already running ($dir)"
    echo "export SLURM_CONF=$conf"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { say "must run as root (it starts slurmd and munged)"; exit 1; }

# --- packages (pitfalls 4 and 21: no service starts during install, wait for the dpkg lock)
pkgs=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    policy_added=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    for attempt in 1 2 3; do
        apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 && break
        [ "$attempt" -eq 3 ] && exit 1
        sleep 5
    done
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >&2
    if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- a stale start (daemons killed or crashed): stop what is left of it, then start fresh
if [ -e "$dir/started.pids" ]; then
    say "stale state in $dir: stopping leftovers first"
    SLURM_LOCAL_DIR=$dir bash "$(dirname "$0")/stop-local-slurm.sh" >&2 || true
fi
mkdir -p "$dir"/{state,spool,log}
chmod 755 "$dir"
: >"$dir/started.pids"

# --- munge (pitfalls 1, 3): reuse a working munged, else start one as user munge
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create >&2 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "using the munged that is already running"
else
    rm -f /run/munge/munge.socket.2.lock
    nohup setpriv --reuid=munge --regid=munge --init-groups munged -F --force \
        </dev/null >>"$dir/log/munged.stdout" 2>&1 &
    echo "munged $!" >>"$dir/started.pids"
    echo $! >"$dir/munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || { say "munged did not start (log: $dir/log/munged.stdout)"; exit 1; }
fi

# --- slurm.conf for this machine (pitfalls 5-10, 12, 14, 17, 22)
host=$(hostname -s)
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
hw=$(slurmd -C | head -1)
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
mem=$(field RealMemory)
if [ -n "${SLURM_LOCAL_CPUS:-}" ]; then
    node="CPUs=$SLURM_LOCAL_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$SLURM_LOCAL_CPUS ThreadsPerCore=1"
    overrides="SlurmdParameters=config_overrides"
else
    node="CPUs=$(field CPUs) Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore)"
    overrides=
fi
cat >"$dir/task_prolog.sh" <<'PROLOG'
#!/bin/sh
# TaskProlog: lines "export K=V" go into every task's environment (batch step included).
# Open MPI refuses root without these (pitfall 11); keep MPI traffic on loopback (pitfall 22).
if [ "$(id -u)" = 0 ]; then
  echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
  echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
fi
[ -n "$OMPI_MCA_oob_tcp_if_include" ] || echo "export OMPI_MCA_oob_tcp_if_include=lo"
[ -n "$OMPI_MCA_btl_tcp_if_include" ] || echo "export OMPI_MCA_btl_tcp_if_include=lo"
PROLOG
chmod 755 "$dir/task_prolog.sh"
cat >"$conf" <<CONF
# Written by tests/slurm/start-local-slurm.sh: one node ($host), no systemd, no cgroups.
ClusterName=pfcrlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again only after its old credential expires (default 120 s).
AuthInfo=cred_expire=${SLURM_LOCAL_CRED_EXPIRE:-10}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.daemon.pid
SlurmdPidFile=$dir/slurmd.daemon.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MpiDefault=pmix
TaskProlog=$dir/task_prolog.sh
SchedulerType=sched/backfill
# Start jobs within ~1 s (pitfall 14); the main scheduler every 2 s also starts a requeued job
# once it is eligible again (nothing else wakes the scheduler then).
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_min_interval=0,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=300
KillWait=10
MailProg=/bin/true
CommunicationParameters=NoInAddrAny
$overrides
NodeName=$host NodeAddr=127.0.0.1 $node RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# --- daemons in the foreground, in the background, stdio redirected (pitfalls 1, 2, 9)
mkdir -p /run/slurm
nohup slurmctld -D -c -f "$conf" </dev/null >>"$dir/log/slurmctld.stdout" 2>&1 &
echo $! >"$dir/slurmctld.pid"
echo "slurmctld $!" >>"$dir/started.pids"
for _ in $(seq 50); do SLURM_CONF=$conf scontrol ping >/dev/null 2>&1 && break; sleep 0.1; done
nohup slurmd -D -f "$conf" </dev/null >>"$dir/log/slurmd.stdout" 2>&1 &
echo $! >"$dir/slurmd.pid"
echo "slurmd $!" >>"$dir/started.pids"

for _ in $(seq 150); do node_ready && break; sleep 0.2; done
if ! node_ready; then
    out=$(SLURM_CONF=$conf sinfo -h -N -o '%T %E' 2>&1 || true)
    case "$out" in
        down*|drain*) SLURM_CONF=$conf scontrol update nodename="$host" state=resume >&2 || true ;;
    esac
    for _ in $(seq 50); do node_ready && break; sleep 0.2; done
fi
node_ready || { say "node not idle: $(SLURM_CONF=$conf sinfo -h -N 2>&1); logs in $dir/log"; exit 1; }
say "ready: node $host, $(SLURM_CONF=$conf sinfo -h -N -o '%c CPUs, %m MB'), config $conf, pids $(awk '{print $1"="$2}' "$dir/started.pids" | tr '\n' ' ')"
echo "export SLURM_CONF=$conf"
