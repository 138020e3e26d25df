#pragma once
// One Euler-Maruyama step of the TAEP sum (docs/physics.md section 4), for any score model:
//   dS = g^2/2 [l_theta - l_*] h + g (s_theta - s_*) . dW,   l = |s|^2 + 2 div s,
// everything evaluated at the start of the step with the same dW that moves x (Ito).
// T is float, or a packet of floats with one path per lane (hd.hpp, "Lane types").
#include "taep/physics/hd.hpp"

namespace taep {
namespace physics {

// s_model/s_target: d components; div_*: divergences. Returns the float increment (S is summed in
// double by the caller).
template <class T>
TAEP_HD T taep_increment(int d, float half_g2, float h, float sqrt_g2, const T* s_model,
                         const T& div_model, const T* s_target, const T& div_target, const T* dw) {
  T noise = 0.f;
  T l_diff = 2.f * (div_model - div_target);
  for (int i = 0; i < d; ++i) {
    noise += (s_model[i] - s_target[i]) * dw[i];
    l_diff += s_model[i] * s_model[i] - s_target[i] * s_target[i];
  }
  return half_g2 * h * l_diff + sqrt_g2 * noise;
}

// x_{k+1} = (1 - a h) x_k + g dW (decay = 1 - a h).
template <class T>
TAEP_HD void euler_maruyama_step(int d, float decay, float sqrt_g2, const T* dw, T* x) {
  for (int i = 0; i < d; ++i) x[i] = decay * x[i] + sqrt_g2 * dw[i];
}

}  // namespace physics
}  // namespace taep
