#pragma once
// Fidelity and diversity of a set of generated ("fake") samples against real ones: precision,
// recall, density and coverage of Naeem et al. 2020, "Reliable fidelity and diversity metrics for
// generative models" (ICML), on k-nearest-neighbour balls. docs/coverage.md has the formulas, the
// cost and the digits data set (tools/export_digits.py).
//
// Balls. The ball of a real sample x_i has the squared radius R_i = the squared distance from x_i
// to its k-th nearest other real sample (x_i itself is left out once; an identical row is another
// sample and counts, at distance 0). Fake samples get balls the same way from the fakes alone.
//
// Inside means strictly inside: |y - x_i|^2 < R_i. That is the comparison of Naeem et al.'s code
// (`distance < radius`), and it is the one under which the real set scored against itself has
// density exactly 1 (each real ball then holds its centre and k - 1 others, not k + 1) and precision,
// recall and coverage exactly 1, whenever no sample has a tie at its k-th distance and no sample
// has k or more identical copies (a ball of radius 0 holds nothing).
//
// Squared distances are sum_c (a_c - b_c)^2 in double, summed in coordinate order c = 0 .. d-1, and
// every decision compares these squared values, so the result is exact for that arithmetic: it
// equals an O(N^2) loop written the same way, and does not depend on the thread count or on how
// the k-d trees (nanoflann) split the data.
#include <cstdint>
#include <memory>
#include <vector>

namespace taep {

// A row-major n x d block of samples; not owned.
struct SamplesView {
  const double* data = nullptr;
  std::uint64_t n = 0;
  int d = 0;
};

struct CoverageOptions {
  int k = 5;        // neighbours per ball; needs 1 <= k < n for both sets
  int threads = 0;  // 0: all (OpenMP's default)
};

struct CoverageResult {
  double precision = 0;  // fraction of fakes inside at least one real ball
  double recall = 0;     // fraction of reals inside at least one fake ball
  double density = 0;    // (1 / (k n_fake)) sum over fakes of the number of real balls holding it
  double coverage = 0;   // fraction of real balls holding at least one fake
  int k = 0;
  std::uint64_t n_real = 0, n_fake = 0;
  int d = 0;
};

// The real side, built once (a k-d tree and every real ball) and scored against any number of fake
// sets: the same real data along a training run. Copies the samples. Throws ConfigError naming
// "coverage.real" (empty, d < 1, a null pointer, a non-finite value or one above 1e150 in magnitude,
// where squared distances could overflow) or "coverage.k" (k < 1 or k >= n).
class CoverageReference {
 public:
  CoverageReference(SamplesView real, const CoverageOptions& options = {});
  ~CoverageReference();
  CoverageReference(CoverageReference&&) noexcept;
  CoverageReference& operator=(CoverageReference&&) noexcept;

  // The four metrics of `fake` against these real samples, with this reference's k. Throws
  // ConfigError naming "coverage.fake" (as for the real set, or its d differs) or "coverage.k"
  // (k >= fake.n: a fake ball needs k other fakes). threads: 0 is options.threads.
  CoverageResult evaluate(SamplesView fake, int threads = 0) const;

  int k() const;
  int d() const;
  std::uint64_t n() const;
  // R_i of every real sample, in input order.
  const std::vector<double>& squared_radii() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CoverageReference(real, options).evaluate(fake).
CoverageResult coverage_metrics(SamplesView real, SamplesView fake, const CoverageOptions& options = {});

}  // namespace taep
