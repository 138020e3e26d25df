// The cost of rank 0's fixed-order merge (docs/distributed.md, "Cost at scale"): the time to fold
// n whole-segment accumulators (what rank 0 receives per 2^20 paths from a rank that holds whole
// segments) and n single-block ones (a rank's partial segments), and the bytes on the wire per item.
// Prints one JSON object per n on stdout.
//   taep_fold_bench [--max N]   (default 10^6: 10^12 paths)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "host/engine/ordered_fold.hpp"

namespace {

using taep::detail::FoldItem;
using taep::physics::PathStats;

PathStats block(std::uint64_t i) {
  PathStats p;
  for (int k = 0; k < 16; ++k) {
    const double s = 0.001 * double((i * 2654435761u + k) % 1000);
    p.add(s, 0.9 * s, true);
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t max = 1000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--max") == 0 && i + 1 < argc) max = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: taep_fold_bench [--max N]\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  for (std::uint64_t n = 1000; n <= max; n *= 10) {
    std::vector<FoldItem<PathStats>> items(n);
    for (std::uint64_t i = 0; i < n; ++i) items[i] = {i * taep::detail::kSegmentBlocks, 1, block(i)};
    taep::detail::Fold<PathStats> fold;
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& it : items) fold.add(it);
    const double seg = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    taep::detail::Fold<PathStats> blocks;
    t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < n; ++i) blocks.add_block(items[i].value);
    const double blk = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile double sink = fold.result().taep.mean + blocks.result().taep.mean;
    (void)sink;
    std::printf("{\"items\": %llu, \"paths_as_segments\": %.4g, \"segment_fold_seconds\": %.4g, "
                "\"block_fold_seconds\": %.4g, \"ns_per_item\": %.3g, \"bytes_per_item\": %zu}\n",
                static_cast<unsigned long long>(n), double(n) * double(taep::detail::kSegmentPaths),
                seg, blk, 1e9 * seg / double(n), sizeof(FoldItem<PathStats>));
  }
  return 0;
}
