// The Communicator over MPI_COMM_WORLD (communicator.hpp), compiled with TAEP_ENABLE_MPI; the
// stubs without it are at the end. Byte strings longer than an int holds go in pieces, so a
// round's per-path arrays may exceed 2 GiB.
#include "host/mpi/communicator.hpp"

#include "taep/distributed.hpp"
#include "taep/error.hpp"

#ifdef TAEP_WITH_MPI
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdint>

namespace taep {

bool built_with_mpi() { return true; }

namespace detail {
namespace {

constexpr std::uint64_t kPiece = std::uint64_t(1) << 30;

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(status, text, &n);
  throw Error(std::string(call) + " failed: " + std::string(text, std::size_t(n)));
}

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
    // Errors come back as status codes (and become exceptions) instead of ending the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  std::vector<std::string> gather(const std::string& mine) override {
    mark_job_started();
    const std::uint64_t n = mine.size();
    std::vector<std::uint64_t> sizes(rank_ == 0 ? std::size_t(size_) : 0);
    check(MPI_Gather(&n, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, 0, MPI_COMM_WORLD),
          "MPI_Gather");
    std::vector<std::string> all;
    if (rank_ != 0) {
      for (std::uint64_t off = 0; off < n; off += kPiece)
        check(MPI_Send(mine.data() + off, int(std::min(kPiece, n - off)), MPI_BYTE, 0, 1,
                       MPI_COMM_WORLD),
              "MPI_Send");
      return all;
    }
    all.resize(std::size_t(size_));
    all[0] = mine;
    for (int r = 1; r < size_; ++r) {
      all[std::size_t(r)].resize(sizes[std::size_t(r)]);
      for (std::uint64_t off = 0; off < sizes[std::size_t(r)]; off += kPiece)
        check(MPI_Recv(&all[std::size_t(r)][off], int(std::min(kPiece, sizes[std::size_t(r)] - off)),
                       MPI_BYTE, r, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "MPI_Recv");
    }
    return all;
  }

  std::string broadcast(const std::string& text) override {
    mark_job_started();
    std::uint64_t n = text.size();
    check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    std::string out = rank_ == 0 ? text : std::string(n, '\0');
    for (std::uint64_t off = 0; off < n; off += kPiece)
      check(MPI_Bcast(&out[off], int(std::min(kPiece, n - off)), MPI_BYTE, 0, MPI_COMM_WORLD),
            "MPI_Bcast");
    return out;
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace

Communicator* make_mpi_world(int* argc, char*** argv) {
  int provided = 0;
  // Only the calling thread talks to MPI (the CPU backend's worker threads never do).
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  return new MpiWorld();
}

void finalize_mpi_world(Communicator* c) {
  delete c;
  MPI_Finalize();
}

}  // namespace detail
}  // namespace taep

#else  // without MPI: one rank, always

namespace taep {
bool built_with_mpi() { return false; }
namespace detail {
Communicator* make_mpi_world(int*, char***) { return nullptr; }
void finalize_mpi_world(Communicator*) {}
}  // namespace detail
}  // namespace taep

#endif
