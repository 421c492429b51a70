// Graceful stop on SIGTERM / SIGUSR1 (SLURM's pre-emption warning, `scancel --signal`) and on
// the first SIGINT (a second one ends the process at once; through scripts/pfcr-mpirun every
// SIGINT arrives as SIGUSR1): the
// handler only records the request; pre-training polls it at the end of every round (agreed
// across ranks, then a checkpoint), fine-tuning after every epoch of a client (that client's
// progress saved; the ranks agree at the stage's end); both exit with exit_code_preempted, so
// that a batch script can requeue the job and resume. The flag is process-global by nature (a
// signal handler has no context); nothing else in pfcr is.
#pragma once

namespace pfcr {

// Exit status of a run that stopped on a signal after writing a complete checkpoint
// (EX_TEMPFAIL: "try again later"). Documented in README.md; jobs/ scripts test for it.
inline constexpr int exit_code_preempted = 75;

// Installs the SIGTERM, SIGUSR1 and (one-shot) SIGINT handlers (idempotent).
void install_stop_handlers();
// True once SIGTERM, SIGUSR1 or SIGINT has arrived.
bool stop_requested();
// Forgets an earlier request: for a process that runs several stages one after another (the
// driver tests do).
void clear_stop_request();

} // namespace pfcr
