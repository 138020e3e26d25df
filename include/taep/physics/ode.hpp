#pragma once
// The probability-flow ODE of the forward SDE and its two integrators (docs/likelihood.md).
//
// The state is y = (x_1..x_d, l) with dx/dt = v(x, t) = -a(t) x - g2(t)/2 s(x, t) and
// dl/dt = div v = -a(t) d - g2(t)/2 div s(x, t), carried from t_min to t_max; then
// log q(x(t_min)) = log pi(x(t_max)) + l(t_max) (docs/likelihood.md section 1). The integrators
// know nothing of scores: they take a right-hand side rhs(t, y, dy) over n values. The schedule
// (VP or VE) enters only through its drift rate a(t) and g(t)^2 (physics/schedule.hpp).
#include "taep/physics/hd.hpp"
#include "taep/physics/schedule.hpp"

namespace taep {
namespace physics {

// The PF-ODE's right-hand side from the score s and its divergence at (x, t): dy[0..d) the
// velocity, dy[d] its divergence.
template <class S>
TAEP_HD void pf_ode_rhs(const Schedule& sched, double t, int d, const double* x, const S* score,
                        double div_score, double* dy) {
  const double a = sched.drift_rate(t), half_g2 = 0.5 * sched.g2(t);
  for (int i = 0; i < d; ++i) dy[i] = -a * x[i] - half_g2 * double(score[i]);
  dy[d] = -a * d - half_g2 * div_score;
}

// How a solve ended.
struct OdeStats {
  bool ok = false;   // reached t1 with a finite state
  int nfe = 0;       // right-hand-side evaluations
  int accepted = 0;  // steps taken (RK4: all of them)
  int rejected = 0;  // DoPri steps refused by the error test
};

// Fixed-step classical RK4 from t0 to t1 in `steps` equal steps, y (n values) in place. N: storage
// for n (n <= N).
template <int N, class Rhs>
TAEP_HD OdeStats rk4_solve(Rhs&& rhs, int n, double* y, double t0, double t1, int steps) {
  OdeStats st;
  const double h = (t1 - t0) / steps;
  double k1[N], k2[N], k3[N], k4[N], tmp[N];
  for (int s = 0; s < steps; ++s) {
    const double t = t0 + s * h;  // from the index, so no drift accumulates in t
    rhs(t, y, k1);
    for (int i = 0; i < n; ++i) tmp[i] = y[i] + 0.5 * h * k1[i];
    rhs(t + 0.5 * h, tmp, k2);
    for (int i = 0; i < n; ++i) tmp[i] = y[i] + 0.5 * h * k2[i];
    rhs(t + 0.5 * h, tmp, k3);
    for (int i = 0; i < n; ++i) tmp[i] = y[i] + h * k3[i];
    rhs(t + h, tmp, k4);
    for (int i = 0; i < n; ++i) y[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    st.nfe += 4;
    ++st.accepted;
  }
  st.ok = true;
  for (int i = 0; i < n; ++i) st.ok = st.ok && isfinite_(y[i]);
  return st;
}

// Dormand-Prince 5(4) with the step-size control of scipy's RK45 (which the score-SDE reference
// implementation calls through solve_ivp): the error of the embedded 4th-order solution in the RMS
// norm scaled by atol + rtol max(|y|, |y_new|), steps grown by at most 10 and shrunk by at most 5
// with safety 0.9, no growth right after a rejection, the first step by Hairer's rule. FSAL: an
// accepted step's last stage is the next step's first. Fails (ok false) on a non-finite state, a
// step below 10 ulp of t, or more than max_steps attempted steps.
template <int N, class Rhs>
TAEP_HD OdeStats dopri5_solve(Rhs&& rhs, int n, double* y, double t0, double t1, double rtol,
                              double atol, int max_steps) {
  // Butcher tableau (Dormand and Prince 1980) and scipy's error weights E = b5 - b4.
  constexpr double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
  constexpr double a21 = 1.0 / 5;
  constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
  constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
  constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561,
                   a54 = -212.0 / 729;
  constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176,
                   a65 = -5103.0 / 18656;
  constexpr double b1 = 35.0 / 384, b3 = 500.0 / 1113, b4 = 125.0 / 192, b5 = -2187.0 / 6784,
                   b6 = 11.0 / 84;
  constexpr double e1 = -71.0 / 57600, e3 = 71.0 / 16695, e4 = -71.0 / 1920,
                   e5 = 17253.0 / 339200, e6 = -22.0 / 525, e7 = 1.0 / 40;
  constexpr double kSafety = 0.9, kMinFactor = 0.2, kMaxFactor = 10.0;

  OdeStats st;
  double k1[N], k2[N], k3[N], k4[N], k5[N], k6[N], k7[N], tmp[N], ynew[N];
  const auto rms = [n](const double* v) {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += v[i] * v[i];
    return sqrt_(s / n);
  };
  const auto finite = [n](const double* v) {
    for (int i = 0; i < n; ++i)
      if (!isfinite_(v[i])) return false;
    return true;
  };
  const double span = t1 - t0;
  rhs(t0, y, k1);
  ++st.nfe;
  if (!finite(k1)) return st;

  // Initial step (Hairer, Norsett and Wanner, II.4; scipy's select_initial_step, order 4).
  double h;
  {
    for (int i = 0; i < n; ++i) tmp[i] = y[i] / (atol + abs_(y[i]) * rtol);
    const double d0 = rms(tmp);
    for (int i = 0; i < n; ++i) tmp[i] = k1[i] / (atol + abs_(y[i]) * rtol);
    const double d1 = rms(tmp);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    if (h0 > span) h0 = span;
    for (int i = 0; i < n; ++i) tmp[i] = y[i] + h0 * k1[i];
    rhs(t0 + h0, tmp, k2);
    ++st.nfe;
    for (int i = 0; i < n; ++i) tmp[i] = (k2[i] - k1[i]) / (atol + abs_(y[i]) * rtol);
    const double d2 = rms(tmp) / h0;
    const double dm = d1 > d2 ? d1 : d2;
    const double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? (h0 * 1e-3 > 1e-6 ? h0 * 1e-3 : 1e-6)
                                                    : ::pow(0.01 / dm, 1.0 / 5.0);
    h = 100 * h0 < h1 ? 100 * h0 : h1;
    if (h > span) h = span;
    if (!isfinite_(h) || !(h > 0)) return st;
  }

  double t = t0;
  int attempts = 0;
  while (t < t1) {
    bool rejected = false;
    for (;;) {
      if (++attempts > max_steps) return st;
      const double min_step = 10.0 * (::nextafter(t, t1 + span) - t);
      if (h < min_step) return st;
      double t_new = t + h;
      if (t_new >= t1) t_new = t1;
      const double hs = t_new - t;
      for (int i = 0; i < n; ++i) tmp[i] = y[i] + hs * a21 * k1[i];
      rhs(t + c2 * hs, tmp, k2);
      for (int i = 0; i < n; ++i) tmp[i] = y[i] + hs * (a31 * k1[i] + a32 * k2[i]);
      rhs(t + c3 * hs, tmp, k3);
      for (int i = 0; i < n; ++i) tmp[i] = y[i] + hs * (a41 * k1[i] + a42 * k2[i] + a43 * k3[i]);
      rhs(t + c4 * hs, tmp, k4);
      for (int i = 0; i < n; ++i)
        tmp[i] = y[i] + hs * (a51 * k1[i] + a52 * k2[i] + a53 * k3[i] + a54 * k4[i]);
      rhs(t + c5 * hs, tmp, k5);
      for (int i = 0; i < n; ++i)
        tmp[i] = y[i] + hs * (a61 * k1[i] + a62 * k2[i] + a63 * k3[i] + a64 * k4[i] + a65 * k5[i]);
      rhs(t_new, tmp, k6);
      for (int i = 0; i < n; ++i)
        ynew[i] = y[i] + hs * (b1 * k1[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i] + b6 * k6[i]);
      rhs(t_new, ynew, k7);
      st.nfe += 6;
      for (int i = 0; i < n; ++i) {
        const double err = hs * (e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i] +
                                 e7 * k7[i]);
        const double ay = abs_(y[i]), an = abs_(ynew[i]);
        tmp[i] = err / (atol + (ay > an ? ay : an) * rtol);
      }
      const double err_norm = rms(tmp);
      if (!isfinite_(err_norm) || !finite(k7)) return st;
      if (err_norm < 1.0) {
        double factor = err_norm == 0.0 ? kMaxFactor : kSafety * ::pow(err_norm, -0.2);
        if (factor > kMaxFactor) factor = kMaxFactor;
        if (rejected && factor > 1.0) factor = 1.0;
        h = hs * factor;
        t = t_new;
        for (int i = 0; i < n; ++i) {
          y[i] = ynew[i];
          k1[i] = k7[i];
        }
        ++st.accepted;
        break;
      }
      const double factor = kSafety * ::pow(err_norm, -0.2);
      h = hs * (factor > kMinFactor ? factor : kMinFactor);
      rejected = true;
      ++st.rejected;
    }
  }
  st.ok = finite(y);
  return st;
}

}  // namespace physics
}  // namespace taep
