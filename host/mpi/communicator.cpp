// The job's ranks (communicator.hpp, taep/distributed.hpp): the single-process communicator, the
// global world, and MpiSession, which swaps in the MPI one.
#include "host/mpi/communicator.hpp"

#include <atomic>
#include <cstdlib>

#include "taep/distributed.hpp"

namespace taep {
namespace detail {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::vector<std::string> gather(const std::string& mine) override { return {mine}; }
  std::string broadcast(const std::string& text) override { return text; }
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

SingleProcess g_single;
std::atomic<Communicator*> g_world{&g_single};
std::atomic<bool> g_started{false};

}  // namespace

Communicator& world() { return *g_world.load(); }
void set_world(Communicator* c) { g_world.store(c ? c : &g_single); }
void mark_job_started() { g_started.store(true); }
SoloScope::SoloScope() : saved_(&world()) { g_world.store(&g_single); }
SoloScope::~SoloScope() { g_world.store(saved_); }

namespace {
thread_local int t_slot = 0, t_devices = 1;
}
int job_device(int count) {
  return count > 0 ? (world().local_rank() * t_devices + t_slot) % count : 0;
}
DeviceSlot::DeviceSlot(int k, int devices) : saved_k_(t_slot), saved_devices_(t_devices) {
  t_slot = k;
  t_devices = devices;
}
DeviceSlot::~DeviceSlot() {
  t_slot = saved_k_;
  t_devices = saved_devices_;
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                        "MPI_LOCALNRANKS", "SLURM_STEP_ID"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace detail

MpiSession::MpiSession(int* argc, char*** argv) {
  if (!detail::launched_by_mpi()) return;
  detail::Communicator* c = detail::make_mpi_world(argc, argv);
  if (!c) return;
  detail::set_world(c);
  active_ = true;
}

MpiSession::~MpiSession() {
  if (!active_) return;
  detail::Communicator* c = &detail::world();
  detail::set_world(nullptr);
  detail::finalize_mpi_world(c);
}

int job_rank() { return detail::world().rank(); }
int job_size() { return detail::world().size(); }
void abort_job(int code) {
  detail::world().abort(code);
  std::_Exit(code);  // not reached: abort() does not return
}
bool job_started() { return detail::g_started.load(); }

}  // namespace taep
