#pragma once
// Running one job over several processes (MPI ranks; docs/distributed.md). Every entry point of
// taep/engine.hpp and taep/sample.hpp spreads its paths over the ranks of the MPI job it runs in and
// gives the very same result (bitwise) as one process: rank 0 folds every rank's accumulators in
// path order and alone holds the result; the other ranks' results are empty (is_root() false).
// Without an MpiSession, or in a build without MPI, a process is a job of one rank.
#include <functional>
#include <string>

namespace taep {

// Checkpoint and resume (run, sample, detailed_ft, train; docs/distributed.md), part of RunOptions
// and TrainOptions. With `checkpoint`, rank 0 puts the state of the run there (atomically) every
// `checkpoint_every` seconds and once more when stop_requested() turns true on any rank, after
// which the run throws Interrupted. With `resume`, the run continues from such a file (refused when
// written for another config) and ends bitwise equal to a run that never stopped, at any number
// of ranks, threads or chunks. Runs checkpoint between rounds, training between log windows.
struct CheckpointOptions {
  std::string checkpoint;
  double checkpoint_every = 600;
  std::string resume;
  // Polled between chunks (may be called often; must be cheap). Null: never stop.
  std::function<bool()> stop_requested;
};

// Whether this build can run under MPI (CMake option TAEP_ENABLE_MPI).
bool built_with_mpi();

// MPI for the lifetime of this object: MPI_Init_thread when the process was started by an MPI
// launcher (mpirun, mpiexec, srun: detected from their environment), nothing otherwise, so a plain
// `taep run` never pays for MPI. At most one per process; the destructor finalizes.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // Whether MPI was started (a launcher is present and the build has MPI).
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

// This process's rank and the job's size (0 and 1 without MPI).
int job_rank();
int job_size();
// Whether this process holds results (rank 0).
inline bool is_root() { return job_rank() == 0; }
// Ends every rank of the job at once with `code` (MPI_Abort); exits this process where the job
// is one rank. For a failure on one rank that the others, waiting for it, cannot see.
[[noreturn]] void abort_job(int code);
// Whether this rank has taken part in a collective of the engine yet (after one, a failure on one
// rank must abort the job: the others would wait for it forever).
bool job_started();

}  // namespace taep
