// Precision, recall, density and coverage (include/taep/coverage.hpp, docs/coverage.md) on
// nanoflann k-d trees.
//
// The trees only propose candidates; every decision compares squared distances computed by one
// function (squared_distance) in a fixed coordinate order. nanoflann prunes a subtree by a lower
// bound on the distance that it accumulates incrementally in floating point, which can come out a
// few ulps above the true distance of a point in it; a search whose threshold sat exactly at that
// point's distance could then drop it. So every search runs against its threshold widened by the
// relative slack kSlack (far above the rounding of a sum of d squares, far below anything a
// distance comparison would notice in cost), and the exact comparison happens in the result sets
// here. The answer is then the one the brute-force loop gives, tie for tie.
#include "taep/coverage.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include <nanoflann.hpp>

#include "taep/error.hpp"

namespace taep {
namespace {

constexpr double kSlack = 1e-9;
// |x| above this could overflow a sum of squared differences in double.
constexpr double kMaxMagnitude = 1e150;

#if defined(NANOFLANN_VERSION) && NANOFLANN_VERSION >= 0x150
using SearchParams = nanoflann::SearchParameters;  // renamed in nanoflann 1.5
#else
using SearchParams = nanoflann::SearchParams;
#endif

double squared_distance(const double* a, const double* b, std::size_t d) {
  double s = 0;
  for (std::size_t c = 0; c < d; ++c) {
    const double t = a[c] - b[c];
    s += t * t;
  }
  return s;
}

double widened(double r2) {
  return r2 < std::numeric_limits<double>::max() / 2 ? r2 + r2 * kSlack : r2;
}

// nanoflann's dataset adaptor over a row-major block.
struct Rows {
  const double* data = nullptr;
  std::size_t n = 0, d = 0;
  const double* row(std::size_t i) const { return data + i * d; }
  std::size_t kdtree_get_point_count() const { return n; }
  double kdtree_get_pt(std::size_t i, std::size_t c) const { return data[i * d + c]; }
  template <class Box>
  bool kdtree_get_bbox(Box&) const { return false; }
};

// nanoflann's metric: the leaf distance is squared_distance itself (no early exit), so the values
// the result sets see are the ones the decisions are defined on.
struct ExactL2 {
  using ElementType = double;
  using DistanceType = double;
  const Rows& rows;
  explicit ExactL2(const Rows& r) : rows(r) {}
  double evalMetric(const double* a, std::size_t b, std::size_t d) const {
    return squared_distance(a, rows.row(b), d);
  }
  template <class U, class V>
  double accum_dist(U a, V b, std::size_t) const {
    const double t = double(a) - double(b);
    return t * t;
  }
};

using Tree = nanoflann::KDTreeSingleIndexAdaptor<ExactL2, Rows, -1, std::size_t>;

std::unique_ptr<Tree> build_tree(const Rows& rows) {
  return std::make_unique<Tree>(int(rows.d), rows, nanoflann::KDTreeSingleIndexAdaptorParams(10));
}

// The m smallest squared distances seen, sorted; reports its worst widened so that pruning never
// loses a point that would enter. Ties at the worst value do not enter (the values are the same).
class SmallestValues {
 public:
  SmallestValues(double* out, std::size_t m) : v_(out), m_(m) {}
  bool full() const { return count_ == m_; }
  std::size_t size() const { return count_; }
  double worstDist() const { return full() ? widened(v_[m_ - 1]) : std::numeric_limits<double>::max(); }
  bool addPoint(double dist, std::size_t) {
    if (full() && !(dist < v_[m_ - 1])) return true;
    std::size_t i = full() ? m_ - 1 : count_++;
    for (; i > 0 && v_[i - 1] > dist; --i) v_[i] = v_[i - 1];
    v_[i] = dist;
    return true;
  }

 private:
  double* v_;
  std::size_t m_, count_ = 0;
};

// Every point strictly inside squared radius r2 of the query: marks it and counts it.
class BallHits {
 public:
  BallHits(double r2, unsigned char* hit) : r2_(r2), search_(widened(r2)), hit_(hit) {}
  bool full() const { return true; }
  double worstDist() const { return search_; }
  bool addPoint(double dist, std::size_t j) {
    if (dist < r2_) {
      hit_[j] = 1;
      ++count_;
    }
    return true;
  }
  std::uint64_t count() const { return count_; }

 private:
  double r2_, search_;
  unsigned char* hit_;
  std::uint64_t count_ = 0;
};

// Threads for `queries` searches in d dimensions: one below about 2^16 coordinates of queries, where
// starting a team costs more than it saves (and far more on a loaded machine).
int thread_count(int threads, std::size_t queries, std::size_t d) {
  if (queries * d < (std::size_t(1) << 16)) return 1;
  return threads > 0 ? threads : std::max(1, omp_get_max_threads());
}

void check_samples(const SamplesView& s, const char* field) {
  if (s.n == 0) throw ConfigError(field, "no samples");
  if (s.d < 1) throw ConfigError(field, "d must be at least 1 (got " + std::to_string(s.d) + ")");
  if (s.data == nullptr) throw ConfigError(field, "no data (null pointer)");
  if (s.n > std::numeric_limits<std::size_t>::max() / std::size_t(s.d))
    throw ConfigError(field, "n * d does not fit in memory");
  const std::size_t total = std::size_t(s.n) * std::size_t(s.d);
  for (std::size_t i = 0; i < total; ++i) {
    if (!(std::fabs(s.data[i]) <= kMaxMagnitude))
      throw ConfigError(field, "sample " + std::to_string(i / std::size_t(s.d)) + ", coordinate " +
                                   std::to_string(i % std::size_t(s.d)) +
                                   (std::isfinite(s.data[i]) ? " is above 1e150 in magnitude"
                                                             : " is not finite"));
  }
}

void check_k(int k, std::uint64_t n, const char* which) {
  if (k < 1) throw ConfigError("coverage.k", "must be at least 1 (got " + std::to_string(k) + ")");
  if (std::uint64_t(k) >= n)
    throw ConfigError("coverage.k", "k = " + std::to_string(k) + " needs more than " + std::to_string(k) +
                                        " " + which + " samples (got " + std::to_string(n) + ")");
}

// R of every sample of `rows` against the others of the same set: the (k+1)-th smallest squared
// distance counting the sample itself (always the smallest, 0), which drops it exactly once.
std::vector<double> knn_squared_radii(const Tree& tree, const Rows& rows, int k, int threads) {
  std::vector<double> radii(rows.n);
  const std::size_t m = std::size_t(k) + 1;
  const std::ptrdiff_t n = std::ptrdiff_t(rows.n);
  // Allocated before the team starts: nothing in the parallel region may throw.
  std::vector<double> values(m * std::size_t(threads));
#pragma omp parallel num_threads(threads)
  {
    double* mine = values.data() + m * std::size_t(omp_get_thread_num());
#pragma omp for schedule(dynamic, 64)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      SmallestValues found(mine, m);
      tree.findNeighbors(found, rows.row(std::size_t(i)), SearchParams());
      radii[std::size_t(i)] = mine[m - 1];  // full: k < n was checked
    }
  }
  return radii;
}

// For each query row q with squared radius radii[q] > 0: the points of `tree` strictly inside its
// ball. hit[p] = 1 for every point p inside some ball; inside[q] = how many are inside ball q.
// Each thread marks its own copy of hit; the copies are OR-ed, so nothing depends on the threads.
void ball_hits(const Tree& tree, std::size_t points, const Rows& queries, const std::vector<double>& radii,
               int threads, std::vector<unsigned char>& hit, std::vector<std::uint64_t>* inside) {
  std::vector<std::vector<unsigned char>> hits(std::size_t(threads), std::vector<unsigned char>(points, 0));
  const std::ptrdiff_t n = std::ptrdiff_t(queries.n);
#pragma omp parallel num_threads(threads)
  {
    std::vector<unsigned char>& mine = hits[std::size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 64)
    for (std::ptrdiff_t q = 0; q < n; ++q) {
      const double r2 = radii[std::size_t(q)];
      std::uint64_t count = 0;
      if (r2 > 0) {
        BallHits found(r2, mine.data());
        tree.findNeighbors(found, queries.row(std::size_t(q)), SearchParams());
        count = found.count();
      }
      if (inside) (*inside)[std::size_t(q)] = count;
    }
  }
  hit.assign(points, 0);
  for (const std::vector<unsigned char>& h : hits)
    for (std::size_t p = 0; p < h.size(); ++p) hit[p] |= h[p];
}

std::uint64_t count_set(const std::vector<unsigned char>& v) {
  return std::uint64_t(std::count(v.begin(), v.end(), static_cast<unsigned char>(1)));
}

}  // namespace

struct CoverageReference::Impl {
  std::vector<double> data;
  Rows rows;
  std::unique_ptr<Tree> tree;
  std::vector<double> radii;
  int k = 0, threads = 0;
};

CoverageReference::CoverageReference(SamplesView real, const CoverageOptions& options)
    : impl_(std::make_unique<Impl>()) {
  check_samples(real, "coverage.real");
  check_k(options.k, real.n, "real");
  Impl& m = *impl_;
  m.data.assign(real.data, real.data + std::size_t(real.n) * std::size_t(real.d));
  m.rows = Rows{m.data.data(), std::size_t(real.n), std::size_t(real.d)};
  m.tree = build_tree(m.rows);
  m.k = options.k;
  m.threads = options.threads;
  m.radii = knn_squared_radii(*m.tree, m.rows, m.k, thread_count(m.threads, m.rows.n, m.rows.d));
}

CoverageReference::~CoverageReference() = default;
CoverageReference::CoverageReference(CoverageReference&&) noexcept = default;
CoverageReference& CoverageReference::operator=(CoverageReference&&) noexcept = default;

int CoverageReference::k() const { return impl_->k; }
int CoverageReference::d() const { return int(impl_->rows.d); }
std::uint64_t CoverageReference::n() const { return impl_->rows.n; }
const std::vector<double>& CoverageReference::squared_radii() const { return impl_->radii; }

CoverageResult CoverageReference::evaluate(SamplesView fake, int threads) const {
  const Impl& m = *impl_;
  check_samples(fake, "coverage.fake");
  if (std::size_t(fake.d) != m.rows.d)
    throw ConfigError("coverage.fake", "d = " + std::to_string(fake.d) + " but the real samples have d = " +
                                           std::to_string(m.rows.d));
  check_k(m.k, fake.n, "fake");
  const int t = thread_count(threads > 0 ? threads : m.threads, std::size_t(fake.n) + m.rows.n, m.rows.d);
  const Rows rows{fake.data, std::size_t(fake.n), std::size_t(fake.d)};
  const std::unique_ptr<Tree> tree = build_tree(rows);
  const std::vector<double> fake_radii = knn_squared_radii(*tree, rows, m.k, t);

  // Real balls against the fakes: precision (fakes hit), density (hits counted), coverage.
  std::vector<unsigned char> fake_hit;
  std::vector<std::uint64_t> inside(m.rows.n);
  ball_hits(*tree, rows.n, m.rows, m.radii, t, fake_hit, &inside);
  // Fake balls against the reals: recall.
  std::vector<unsigned char> real_hit;
  ball_hits(*m.tree, m.rows.n, rows, fake_radii, t, real_hit, nullptr);

  std::uint64_t pairs = 0, covered = 0;
  for (std::uint64_t c : inside) {
    pairs += c;
    covered += c > 0;
  }
  CoverageResult r;
  r.k = m.k;
  r.n_real = m.rows.n;
  r.n_fake = rows.n;
  r.d = int(rows.d);
  r.precision = double(count_set(fake_hit)) / double(r.n_fake);
  r.recall = double(count_set(real_hit)) / double(r.n_real);
  r.density = double(pairs) / (double(r.k) * double(r.n_fake));
  r.coverage = double(covered) / double(r.n_real);
  return r;
}

CoverageResult coverage_metrics(SamplesView real, SamplesView fake, const CoverageOptions& options) {
  return CoverageReference(real, options).evaluate(fake);
}

}  // namespace taep
