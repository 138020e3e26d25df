#pragma once
// What the engine needs of the job's ranks (docs/distributed.md): gather a byte string from every
// rank to rank 0, broadcast one from rank 0, and the job's rank and size. One implementation with
// MPI (mpi_communicator.cpp), the single-process one otherwise; the engine calls them the same way
// for one rank or many, so one process runs the very code a job of R ranks runs.
#include <string>
#include <vector>

namespace taep {
namespace detail {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks of its node (shared memory).
  virtual int local_rank() const = 0;
  // On rank 0: every rank's `mine`, in rank order; elsewhere: empty.
  virtual std::vector<std::string> gather(const std::string& mine) = 0;
  // Rank 0's `text` on every rank.
  virtual std::string broadcast(const std::string& text) = 0;
  [[noreturn]] virtual void abort(int code) = 0;
};

// The job this process belongs to: the MPI one inside an active MpiSession, else one rank.
Communicator& world();
// The CUDA device of this thread among `count` visible ones: (local_rank() * D + k) % count, for
// the k-th of the D devices this rank drives (a DeviceSlot; k = 0, D = 1 without one).
int job_device(int count);
// While alive, job_device() on this thread answers for device k of D (run.devices).
class DeviceSlot {
 public:
  DeviceSlot(int k, int devices);
  ~DeviceSlot();
  DeviceSlot(const DeviceSlot&) = delete;
  DeviceSlot& operator=(const DeviceSlot&) = delete;

 private:
  int saved_k_, saved_devices_;
};
// Makes device job_device(count) current on the calling thread, for a CUDA backend that thread is
// about to drive (kernels/cuda_device.cu; nothing in a build without CUDA).
void bind_cuda_device();
// While alive, this process is a job of one rank (world() is the single-process communicator),
// so the engine's calls in it meet no other rank: for work a rank does on its own (the
// experiment's training of its models).
class SoloScope {
 public:
  SoloScope();
  ~SoloScope();
  SoloScope(const SoloScope&) = delete;
  SoloScope& operator=(const SoloScope&) = delete;

 private:
  Communicator* saved_;
};
// Set by MpiSession (null: back to one rank).
void set_world(Communicator* c);
// Marks that this rank took part in a collective (job_started()).
void mark_job_started();

// A Communicator over MPI_COMM_WORLD (mpi_communicator.cpp; null in a build without MPI).
Communicator* make_mpi_world(int* argc, char*** argv);
void finalize_mpi_world(Communicator* c);
// Whether the environment shows an MPI launcher (Open MPI, MPICH/Hydra, PMIx, Slurm's srun).
bool launched_by_mpi();

}  // namespace detail
}  // namespace taep
