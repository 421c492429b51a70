# Sourced by every jobs/*.sbatch (not a job itself): finds the pfcr binary, takes the thread
# count from SLURM, and builds the command that starts one MPI job step. It does not pick
# resources; the #SBATCH lines and the sbatch command line do that.
#
# Environment: PFCR_BIN     the binary (default build/release/bin/pfcr, relative to the
#                           working directory, which is the directory you ran sbatch in)
#              PFCR_LAUNCHER  srun (default: srun --mpi=pmix) or mpirun (Open MPI's mpirun,
#                           which reads the SLURM allocation itself)
#              PFCR_MPIRUN_ARGS  extra mpirun arguments, e.g. "--oversubscribe"

PFCR_BIN=${PFCR_BIN:-build/release/bin/pfcr}
[ -x "$PFCR_BIN" ] || { echo "error: PFCR_BIN=$PFCR_BIN is not an executable (build it, or set PFCR_BIN)" >&2; exit 2; }
# oneTBB threads per rank = the CPUs SLURM gave each task; passed to pfcr as -t.
threads=${SLURM_CPUS_PER_TASK:-1}
# faiss (pfcr prepare) and OpenBLAS use OpenMP: no more threads than the task's CPUs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads}
# Open MPI refuses to run as root (containers, CI); on a cluster you are not root.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# pfcr_launcher N: sets the array `launcher` to the command that starts N ranks as one job
# step, each with $threads CPUs. Use it as  "${launcher[@]}" "$PFCR_BIN" pretrain ...
pfcr_launcher() {
    local n=$1
    case "${PFCR_LAUNCHER:-srun}" in
        srun)
            # --mpi=pmix: Debian's (and most) Open MPI builds speak PMIx, not PMI2.
            # --cpus-per-task again: since SLURM 22.05 srun does not inherit it from sbatch.
            launcher=(srun --mpi=pmix --ntasks="$n" --cpus-per-task="$threads" --kill-on-bad-exit=1) ;;
        mpirun)
            # No binding: the default (one core per rank) would confine a rank's threads.
            # shellcheck disable=SC2206
            launcher=(mpirun -n "$n" --bind-to none ${PFCR_MPIRUN_ARGS:-}) ;;
        *)
            echo "error: PFCR_LAUNCHER=$PFCR_LAUNCHER (expected srun or mpirun)" >&2
            exit 2 ;;
    esac
}

# Where and what: one line at the top of every job log.
echo "job ${SLURM_JOB_ID:-none} on $(hostname -s): ${SLURM_NTASKS:-1} tasks x $threads CPUs," \
     "launcher ${PFCR_LAUNCHER:-srun}, binary $PFCR_BIN ($("$PFCR_BIN" --version 2>/dev/null || echo '?'))," \
     "cwd $PWD, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
