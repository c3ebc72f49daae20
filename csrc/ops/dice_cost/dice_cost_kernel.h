// Math of the dice matching cost shared by the CPU kernel and a future CUDA kernel.
#pragma once

#include <c10/macros/Macros.h>

namespace pysalient {

// SparseInst (Cheng et al., CVPR'22, Sec. 3.3) adds 1e-4 to the whole denominator, after summing both squared
// norms; an all-zero prediction against an empty target therefore scores 0, not NaN.
constexpr double kDiceCostEpsilon = 1e-4;

// dice = 2 <sigmoid(p), t> / (||sigmoid(p)||^2 + ||t||^2 + 1e-4), evaluated in the official operation order
// (2 * dot first, the two squared norms added before the epsilon) so that fp32 results match the reference.
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t dice_coefficient(scalar_t dot, scalar_t pred_squared_norm,
                                                 scalar_t target_squared_norm) {
  const scalar_t numerator = static_cast<scalar_t>(2) * dot;
  const scalar_t denominator = pred_squared_norm + target_squared_norm;
  return numerator / (denominator + static_cast<scalar_t>(kDiceCostEpsilon));
}

}  // namespace pysalient
