#pragma once
// The fixed shape of every reduction over paths (docs/distributed.md, "One answer at any scale").
// Paths are cut into reduce blocks of kReduceBlock (physics/accumulators.hpp) and blocks into
// segments of kSegmentBlocks: a segment's accumulator is the left fold of its blocks' from empty,
// and the result is the left fold of the segments' in path order. Which process, thread, chunk or
// round computed a block changes nothing: every rank folds the whole segments inside its range
// itself and sends the blocks of the segments it holds only part of, and rank 0 folds what it
// receives in path order. A run of at most one segment is the plain left fold of its blocks.
//
// Block: default-constructible as the empty accumulator, merge(const Block&), trivially copyable
// (it travels between ranks and into checkpoints as bytes).
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "taep/physics/accumulators.hpp"

namespace taep {
namespace detail {

// 256 blocks = 2^20 paths: the default run (10^6 paths) is one segment, and a run of 10^12 paths
// has 10^6 segments, whose accumulators rank 0 folds in well under a second.
constexpr std::uint64_t kSegmentBlocks = 256;
constexpr std::uint64_t kSegmentPaths = kSegmentBlocks * physics::kReduceBlock;

// One item a rank sends: a whole segment's accumulator, or one block's.
template <class Block>
struct FoldItem {
  std::uint64_t block;  // the first block it covers
  std::uint64_t whole;  // 1: a whole segment (block is its first), 0: one block
  Block value;
};

// Rank 0's state: the folded whole segments and the segment in progress.
template <class Block>
struct Fold {
  static_assert(std::is_trivially_copyable<Block>::value, "a Block travels as bytes");
  Block total{};
  Block partial{};
  std::uint64_t blocks = 0;  // blocks folded: the index of the next one

  void add_block(const Block& b) {
    partial.merge(b);
    if (++blocks % kSegmentBlocks == 0) close_segment();
  }
  // A whole segment's accumulator (blocks at a segment boundary).
  void add_segment(const Block& s) {
    total.merge(s);
    blocks += kSegmentBlocks;
  }
  void add(const FoldItem<Block>& item) {
    if (item.whole) add_segment(item.value);
    else add_block(item.value);
  }
  // The result so far: the whole segments, then the one in progress.
  Block result() const {
    Block r = total;
    r.merge(partial);
    return r;
  }

 private:
  void close_segment() {
    total.merge(partial);
    partial = Block{};
  }
};

// What a rank sends for the consecutive blocks first_block, first_block + 1, ... of `blocks`
// (its range in a round, `last_block` the run's last block + 1): the blocks of a segment it holds
// only part of one by one, each whole segment as one accumulator folded here.
template <class Block>
std::vector<FoldItem<Block>> fold_items(std::uint64_t first_block, const std::vector<Block>& blocks) {
  std::vector<FoldItem<Block>> items;
  const std::uint64_t end = first_block + blocks.size();
  for (std::uint64_t b = first_block; b < end;) {
    const std::uint64_t seg_end = (b / kSegmentBlocks + 1) * kSegmentBlocks;
    if (b % kSegmentBlocks == 0 && seg_end <= end) {
      Block s{};
      for (std::uint64_t i = b; i < seg_end; ++i) s.merge(blocks[std::size_t(i - first_block)]);
      items.push_back({b, 1, s});
      b = seg_end;
    } else {
      items.push_back({b, 0, blocks[std::size_t(b - first_block)]});
      ++b;
    }
  }
  return items;
}

}  // namespace detail
}  // namespace taep
