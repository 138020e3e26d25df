#pragma once
// Mergeable accumulators (docs/physics.md section 6; docs/architecture.md principle 9). Each has add() for one
// value and merge() for another accumulator; merge is exact up to floating-point rounding and
// associative in exact arithmetic, so chunks, devices and ranks combine the same way. The engine also
// fixes the ORDER of every add and merge (see reduce_block below), which makes results bitwise
// independent of chunk size and thread count.
#include <cstdint>

#include "taep/physics/hd.hpp"

namespace taep {
namespace physics {

// Count, mean and central moment sums M2..M4 (Pebay 2008; Chan et al. pairwise update).
struct Moments {
  double n = 0.0;
  double mean = 0.0;
  double m2 = 0.0;
  double m3 = 0.0;
  double m4 = 0.0;

  TAEP_HD void add(double x) {
    const double n1 = n;
    n += 1.0;
    const double delta = x - mean;
    const double delta_n = delta / n;
    const double delta_n2 = delta_n * delta_n;
    const double term1 = delta * delta_n * n1;
    mean += delta_n;
    m4 += term1 * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * m2 - 4.0 * delta_n * m3;
    m3 += term1 * delta_n * (n - 2.0) - 3.0 * delta_n * m2;
    m2 += term1;
  }

  TAEP_HD void merge(const Moments& o) {
    if (o.n == 0.0) return;
    if (n == 0.0) {
      *this = o;
      return;
    }
    const double na = n, nb = o.n, nt = na + nb;
    const double delta = o.mean - mean;
    const double d_n = delta / nt;
    const double d2 = delta * delta, d3 = d2 * delta, d4 = d3 * delta;
    const double new_m4 = m4 + o.m4 + d4 * na * nb * (na * na - na * nb + nb * nb) / (nt * nt * nt) +
                          6.0 * d2 * (na * na * o.m2 + nb * nb * m2) / (nt * nt) +
                          4.0 * delta * (na * o.m3 - nb * m3) / nt;
    const double new_m3 = m3 + o.m3 + d3 * na * nb * (na - nb) / (nt * nt) +
                          3.0 * delta * (na * o.m2 - nb * m2) / nt;
    m2 = m2 + o.m2 + d2 * na * nb / nt;
    m3 = new_m3;
    m4 = new_m4;
    mean += d_n * nb;
    n = nt;
  }

  TAEP_HD double variance() const { return n > 1.0 ? m2 / (n - 1.0) : 0.0; }  // unbiased
  TAEP_HD double skewness() const {
    return m2 > 0.0 ? sqrt_(n) * m3 / (m2 * sqrt_(m2)) : 0.0;
  }
  TAEP_HD double excess_kurtosis() const { return m2 > 0.0 ? n * m4 / (m2 * m2) - 3.0 : 0.0; }
  // Standard error of variance(): Var(s^2) = mu4/n - sigma^4 (n - 3)/(n (n - 1)) with mu4 = M4/n
  // and sigma^2 = s^2 (docs/physics.md section 6); 0 below 4 values.
  TAEP_HD double variance_stderr() const {
    if (n < 4.0) return 0.0;
    const double s2 = variance();
    const double v = m4 / (n * n) - s2 * s2 * (n - 3.0) / (n * (n - 1.0));
    return v > 0.0 ? sqrt_(v) : 0.0;
  }
  // Root mean square of the values, sqrt(<x^2>) = sqrt(mean^2 + m2 / n) (0 when empty): for S - R,
  // the per-path discretization error about zero rather than about its mean.
  TAEP_HD double rms() const { return n > 0.0 ? sqrt_(mean * mean + m2 / n) : 0.0; }
};

// Log-sum-exp accumulator of the weights w = exp(-S) for the integral fluctuation theorem:
// holds shift = max(-S) and the scaled sums sum exp(-S - shift), sum exp(-2S - 2 shift).
struct LogSumExp {
  double n = 0.0;
  double shift = 0.0;
  double sum = 0.0;   // sum w / exp(shift)
  double sum2 = 0.0;  // sum w^2 / exp(2 shift)

  TAEP_HD void add(double s) {
    const double a = -s;
    if (n == 0.0) {
      shift = a;
      sum = 1.0;
      sum2 = 1.0;
    } else if (a > shift) {
      const double r = exp_(shift - a);
      sum = sum * r + 1.0;
      sum2 = sum2 * r * r + 1.0;
      shift = a;
    } else {
      const double r = exp_(a - shift);
      sum += r;
      sum2 += r * r;
    }
    n += 1.0;
  }

  TAEP_HD void merge(const LogSumExp& o) {
    if (o.n == 0.0) return;
    if (n == 0.0) {
      *this = o;
      return;
    }
    if (o.shift > shift) {
      const double r = exp_(shift - o.shift);
      sum = sum * r + o.sum;
      sum2 = sum2 * r * r + o.sum2;
      shift = o.shift;
    } else {
      const double r = exp_(o.shift - shift);
      sum += o.sum * r;
      sum2 += o.sum2 * r * r;
    }
    n += o.n;
  }

  // log <exp(-S)>
  TAEP_HD double log_mean() const { return shift + log_(sum / n); }
  // Effective sample size (sum w)^2 / sum w^2.
  TAEP_HD double ess() const { return n > 0.0 ? sum * sum / sum2 : 0.0; }
  // Standard error of <exp(-S)> (delta method on the sample mean of w), unbiased sample variance.
  TAEP_HD double stderr_of_mean() const {
    if (n < 2.0) return 0.0;
    const double scale = exp_(shift);
    const double mean_w = sum / n;                                // / scale
    const double var_w = (sum2 / n - mean_w * mean_w) * n / (n - 1.0);  // / scale^2
    return scale * sqrt_(var_w > 0.0 ? var_w / n : 0.0);
  }
};

// Everything reduced from the per-path values of one block of paths.
struct PathStats {
  Moments taep;        // S over finite paths
  LogSumExp ift;       // exp(-S) over finite paths
  Moments reference;   // closed form R over finite paths (exact-score models)
  Moments error;       // S - R over finite paths (exact-score models)
  Moments aux;         // a per-path side value: the Hutchinson probe-noise variance of S (mlp)
  double nonfinite = 0.0;  // paths whose S (or R) is not finite: counted, excluded from the rest

  // r (with_reference) and a (with_aux) are optional per-path companions of S.
  TAEP_HD void add(double s, double r, bool with_reference, double a = 0.0, bool with_aux = false) {
    if (!isfinite_(s) || (with_reference && !isfinite_(r))) {
      nonfinite += 1.0;
      return;
    }
    taep.add(s);
    ift.add(s);
    if (with_reference) {
      reference.add(r);
      error.add(s - r);
    }
    if (with_aux) aux.add(a);
  }
  TAEP_HD void merge(const PathStats& o) {
    taep.merge(o.taep);
    ift.merge(o.ift);
    reference.merge(o.reference);
    error.merge(o.error);
    aux.merge(o.aux);
    nonfinite += o.nonfinite;
  }
};

// The fixed reduction order shared by the CPU and CUDA backends: paths are cut into blocks of
// kReduceBlock consecutive path ids; within a block lane j (0..kReduceLanes-1) adds paths
// j*kLaneSpan .. j*kLaneSpan+kLaneSpan-1 in order, then lanes merge by a halving tree; blocks merge
// in increasing order on the host. Chunks are whole blocks, so the result does not depend on them.
constexpr int kReduceLanes = 256;
constexpr int kLaneSpan = 16;
constexpr int kReduceBlock = kReduceLanes * kLaneSpan;  // 4096 paths

// Whether bins over [lo, hi] can be used: a positive finite width hi - lo (so lo and hi are finite
// and lo < hi) and a finite bins / width, histogram_bin's inv_width. The one rule for a configured
// range (validate) and an automatic one (the engine).
TAEP_HD bool histogram_range_usable(double lo, double hi, int bins) {
  const double width = hi - lo;
  return width > 0.0 && isfinite_(width) && isfinite_(bins / width);
}

// Histogram bin of s on [lo, hi) with `bins` bins; -1 underflow, bins overflow. Always within
// [-1, bins], for any s, lo and inv_width: a NaN f (s or lo NaN, or 0 * inf from a zero-width bin)
// goes to overflow rather than through int(NaN), which is undefined and gave INT_MIN. Values with f
// in [0, bins) take int(f) exactly as before, so valid runs keep their counts.
TAEP_HD int histogram_bin(double s, double lo, double inv_width, int bins) {
  if (s < lo) return -1;
  const double f = (s - lo) * inv_width;
  if (f >= 0.0 && f < double(bins)) return int(f);
  return f < 0.0 ? -1 : bins;
}

// The histogram slot of a path's value v in the layout [underflow, bin 0 .. bin bins-1, overflow],
// i.e. histogram_bin + 1, or -1 when the path is left out of the statistics: v not finite or, when
// with_other, its companion `other` not finite (the test of PathStats::add, so a histogram counts
// exactly the paths in the moments). S is binned with its closed form R as companion, R with S.
TAEP_HD int histogram_slot(double v, double other, bool with_other, double lo, double inv_width,
                           int bins) {
  if (!isfinite_(v) || (with_other && !isfinite_(other))) return -1;
  return histogram_bin(v, lo, inv_width, bins) + 1;
}

}  // namespace physics
}  // namespace taep
