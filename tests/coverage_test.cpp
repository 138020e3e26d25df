// Precision, recall, density and coverage (taep/coverage.hpp) against an O(N^2) loop that applies
// the header's definitions literally: the k-d trees must give the same answer tie for tie.
#include "taep/coverage.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "taep/error.hpp"

namespace {

using taep::CoverageOptions;
using taep::CoverageResult;
using taep::SamplesView;

struct Set {
  std::vector<double> x;
  int d = 0;
  std::uint64_t n() const { return x.size() / std::size_t(d); }
  const double* row(std::size_t i) const { return x.data() + i * std::size_t(d); }
  SamplesView view() const { return SamplesView{x.data(), n(), d}; }
};

double sq(const double* a, const double* b, int d) {
  double s = 0;
  for (int c = 0; c < d; ++c) s += (a[c] - b[c]) * (a[c] - b[c]);
  return s;
}

std::vector<double> brute_radii(const Set& s, int k) {
  std::vector<double> r(s.n()), all(s.n());
  for (std::size_t i = 0; i < s.n(); ++i) {
    for (std::size_t j = 0; j < s.n(); ++j) all[j] = sq(s.row(i), s.row(j), s.d);
    std::sort(all.begin(), all.end());
    r[i] = all[std::size_t(k)];  // all[0] is the sample itself
  }
  return r;
}

CoverageResult brute(const Set& real, const Set& fake, int k) {
  const std::vector<double> rr = brute_radii(real, k), fr = brute_radii(fake, k);
  std::uint64_t precise = 0, recalled = 0, pairs = 0, covered = 0;
  for (std::size_t j = 0; j < fake.n(); ++j) {
    bool any = false;
    for (std::size_t i = 0; i < real.n(); ++i)
      if (sq(fake.row(j), real.row(i), real.d) < rr[i]) {
        any = true;
        ++pairs;
      }
    precise += any;
  }
  for (std::size_t i = 0; i < real.n(); ++i) {
    bool in_fake_ball = false, holds_fake = false;
    for (std::size_t j = 0; j < fake.n(); ++j) {
      const double s = sq(real.row(i), fake.row(j), real.d);
      in_fake_ball = in_fake_ball || s < fr[j];
      holds_fake = holds_fake || s < rr[i];
    }
    recalled += in_fake_ball;
    covered += holds_fake;
  }
  CoverageResult r;
  r.precision = double(precise) / double(fake.n());
  r.recall = double(recalled) / double(real.n());
  r.density = double(pairs) / (double(k) * double(fake.n()));
  r.coverage = double(covered) / double(real.n());
  return r;
}

void expect_same(const CoverageResult& got, const CoverageResult& want, const std::string& what) {
  EXPECT_EQ(got.precision, want.precision) << what;
  EXPECT_EQ(got.recall, want.recall) << what;
  EXPECT_EQ(got.density, want.density) << what;
  EXPECT_EQ(got.coverage, want.coverage) << what;
}

void expect_all(const CoverageResult& got, double value, const std::string& what) {
  CoverageResult want;
  want.precision = want.recall = want.density = want.coverage = value;
  expect_same(got, want, what);
}

// Gaussian rows, a tenth of them exact copies of earlier rows.
Set gaussian(std::size_t n, int d, double shift, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(shift, 1.0);
  Set s{std::vector<double>(n * std::size_t(d)), d};
  for (double& v : s.x) v = normal(rng);
  for (std::size_t i = 1; i < n; i += 10) {
    const std::size_t from = rng() % i;
    std::copy(s.row(from), s.row(from) + d, s.x.begin() + std::ptrdiff_t(i * std::size_t(d)));
  }
  return s;
}

// Small integers: distances tie everywhere, also at the k-th neighbour and at ball boundaries.
Set lattice(std::size_t n, int d, int values, std::mt19937_64& rng) {
  Set s{std::vector<double>(n * std::size_t(d)), d};
  for (double& v : s.x) v = double(rng() % std::uint64_t(values));
  return s;
}

TEST(Coverage, MatchesBruteForceWithDuplicatesAndTies) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    for (int d : {2, 64}) {
      std::mt19937_64 rng(seed * 1000 + std::uint64_t(d));
      const Set real = gaussian(160, d, 0.0, rng);
      Set fake = gaussian(140, d, 0.3, rng);
      // Some fakes are real rows exactly: distance 0 to a ball's centre.
      for (std::size_t j = 0; j < 20; ++j)
        std::copy(real.row(j * 7), real.row(j * 7) + d, fake.x.begin() + std::ptrdiff_t(j * 5 * std::size_t(d)));
      const Set real_grid = lattice(150, d, d == 2 ? 12 : 2, rng);
      const Set fake_grid = lattice(130, d, d == 2 ? 13 : 2, rng);
      for (int k : {1, 3, 5}) {
        const std::string what = "seed " + std::to_string(seed) + " d " + std::to_string(d) + " k " + std::to_string(k);
        const CoverageResult g = taep::coverage_metrics(real.view(), fake.view(), CoverageOptions{k, 0});
        expect_same(g, brute(real, fake, k), what + " gaussian");
        EXPECT_EQ(g.k, k);
        EXPECT_EQ(g.n_real, real.n());
        EXPECT_EQ(g.n_fake, fake.n());
        EXPECT_EQ(g.d, d);
        expect_same(taep::coverage_metrics(real_grid.view(), fake_grid.view(), CoverageOptions{k, 0}),
                    brute(real_grid, fake_grid, k), what + " lattice");
      }
    }
  }
}

TEST(Coverage, RadiiAreTheKthOtherSample) {
  std::mt19937_64 rng(7);
  const Set real = lattice(150, 3, 4, rng);
  const taep::CoverageReference ref(real.view(), CoverageOptions{4, 0});
  EXPECT_EQ(ref.squared_radii(), brute_radii(real, 4));
  EXPECT_EQ(ref.k(), 4);
  EXPECT_EQ(ref.d(), 3);
  EXPECT_EQ(ref.n(), 150u);
}

TEST(Coverage, SameForAnyThreadCountAndReusedReference) {
  // Large enough (n d >= 2^16) for the searches to run on a team of threads.
  std::mt19937_64 rng(11);
  const Set real = gaussian(18000, 2, 0.0, rng), fake = gaussian(15000, 2, 0.5, rng);
  const taep::CoverageReference ref(real.view(), CoverageOptions{5, 1});
  const CoverageResult one = ref.evaluate(fake.view(), 1);
  expect_same(ref.evaluate(fake.view(), 3), one, "threads 3");
  expect_same(taep::coverage_metrics(real.view(), fake.view(), CoverageOptions{5, 2}), one,
              "fresh reference, threads 2");
}

TEST(Coverage, RealAgainstItselfIsOneEverywhere) {
  // Continuous data: no ties at a k-th distance, no duplicates; with the strict comparison each
  // real ball holds its centre and k - 1 others, so density is exactly 1.
  for (int d : {2, 64}) {
    std::mt19937_64 rng(20 + std::uint64_t(d));
    std::normal_distribution<double> normal;
    Set real{std::vector<double>(300 * std::size_t(d)), d};
    for (double& v : real.x) v = normal(rng);
    for (int k : {1, 5}) {
      const CoverageResult r = taep::coverage_metrics(real.view(), real.view(), CoverageOptions{k, 0});
      expect_all(r, 1.0, "d " + std::to_string(d) + " k " + std::to_string(k));
    }
  }
}

TEST(Coverage, FarAwayFakesScoreZero) {
  std::mt19937_64 rng(5);
  const Set real = gaussian(120, 4, 0.0, rng), fake = gaussian(90, 4, 1e6, rng);
  const CoverageResult r = taep::coverage_metrics(real.view(), fake.view());
  EXPECT_EQ(r.k, 5);
  expect_all(r, 0.0, "far away");
}

TEST(Coverage, HandCaseOnALine) {
  // k = 1. Real 0, 1, 3, 6: squared radii 1, 1, 4, 9. Fake -1, 2.5, 10, 10.5: squared radii 12.25,
  // 12.25, 0.25, 0.25. Fake -1 sits exactly on the boundary of real 0's ball (not inside), real 6
  // exactly on the boundary of fake 2.5's (not inside); only fake 2.5 is in a real ball (real 3's).
  const Set real{{0, 1, 3, 6}, 1}, fake{{-1, 2.5, 10, 10.5}, 1};
  const taep::CoverageReference ref(real.view(), CoverageOptions{1, 0});
  EXPECT_EQ(ref.squared_radii(), (std::vector<double>{1, 1, 4, 9}));
  const CoverageResult r = ref.evaluate(fake.view());
  EXPECT_EQ(r.precision, 0.25);
  EXPECT_EQ(r.density, 0.25);
  EXPECT_EQ(r.coverage, 0.25);
  EXPECT_EQ(r.recall, 0.75);  // reals 0, 1 in fake -1's ball, 3 in fake 2.5's
  EXPECT_EQ(r.n_real, 4u);
  EXPECT_EQ(r.n_fake, 4u);
  EXPECT_EQ(r.d, 1);
}

TEST(Coverage, RowsWithKCopiesHaveEmptyBalls) {
  // k = 2: each 0 has two identical others, so its ball has radius 0 and holds nothing, not even
  // the fakes at 0; the ball of 5 reaches 0 only on its boundary.
  const Set real{{0, 0, 0, 5}, 1}, fake{{0, 0, 0}, 1};
  const taep::CoverageReference ref(real.view(), CoverageOptions{2, 0});
  EXPECT_EQ(ref.squared_radii(), (std::vector<double>{0, 0, 0, 25}));
  expect_all(ref.evaluate(fake.view()), 0.0, "k 2");
  // k = 1: one identical other is enough for an empty ball; the loop agrees.
  expect_same(taep::coverage_metrics(real.view(), fake.view(), CoverageOptions{1, 0}), brute(real, fake, 1), "k 1");
}

std::string field_of(const SamplesView& real, const SamplesView& fake, int k) {
  try {
    taep::coverage_metrics(real, fake, CoverageOptions{k, 0});
  } catch (const taep::ConfigError& e) {
    return e.field();
  }
  return "(no error)";
}

TEST(Coverage, BadInputNamesTheField) {
  const Set real{{0, 1, 2, 3, 4, 5, 6, 7}, 2}, fake{{0, 1, 2, 3, 4, 5}, 2}, fake3{{0, 1, 2, 3, 4, 5}, 3};
  EXPECT_EQ(field_of(SamplesView{real.x.data(), 0, 2}, fake.view(), 1), "coverage.real");
  EXPECT_EQ(field_of(real.view(), SamplesView{fake.x.data(), 0, 2}, 1), "coverage.fake");
  EXPECT_EQ(field_of(SamplesView{nullptr, 4, 2}, fake.view(), 1), "coverage.real");
  EXPECT_EQ(field_of(SamplesView{real.x.data(), 4, 0}, fake.view(), 1), "coverage.real");
  EXPECT_EQ(field_of(real.view(), fake3.view(), 1), "coverage.fake");  // d 3 against 2
  EXPECT_EQ(field_of(real.view(), fake.view(), 0), "coverage.k");
  EXPECT_EQ(field_of(real.view(), fake.view(), 4), "coverage.k");  // = n_real
  EXPECT_EQ(field_of(real.view(), fake.view(), 3), "coverage.k");  // = n_fake
  EXPECT_EQ(field_of(real.view(), fake.view(), 2), "(no error)");
  Set bad = real;
  bad.x[5] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(field_of(bad.view(), fake.view(), 1), "coverage.real");
  bad = fake;
  bad.x[0] = std::numeric_limits<double>::infinity();
  EXPECT_EQ(field_of(real.view(), bad.view(), 1), "coverage.fake");
  bad.x[0] = 1e200;
  EXPECT_EQ(field_of(real.view(), bad.view(), 1), "coverage.fake");
  try {
    taep::coverage_metrics(real.view(), fake3.view(), CoverageOptions{1, 0});
    ADD_FAILURE() << "d mismatch accepted";
  } catch (const taep::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("d = 3"), std::string::npos) << e.what();
  }
}

}  // namespace
