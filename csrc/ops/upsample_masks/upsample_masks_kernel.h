// Math of the fused SparseInst mask post-processing, shared by the CPU kernel and a future CUDA kernel.
//
// SparseInst (official inference code) resizes mask probabilities twice with bilinear interpolation
// (align_corners=False): from the decoder resolution to the padded input size, then, after cropping away the
// padding, to the original image size. Both resizes are linear and separable, so along each axis they compose
// into one linear map in which every output sample reads at most 4 input samples (2 taps of the second resize,
// each reading 2 taps of the first). Applying that map directly never materialises the padded-size buffer.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {

constexpr int kUpsampleTaps = 4;

// Source taps of output sample i of a bilinear resize (align_corners=False, no explicit scale factor) from n_in
// to n_out samples, as torch.nn.functional.interpolate computes them: in `index_t` precision (float for
// float/half inputs, double for double), source clamped at 0, the second tap repeating the first at the border.
template <typename index_t>
C10_HOST_DEVICE inline void bilinear_source_taps(int64_t n_in, int64_t n_out, int64_t i, int64_t* i0, int64_t* i1,
                                                 index_t* w0, index_t* w1) {
  const index_t scale = static_cast<index_t>(n_in) / static_cast<index_t>(n_out);
  index_t source = scale * (static_cast<index_t>(i) + static_cast<index_t>(0.5)) - static_cast<index_t>(0.5);
  if (source < static_cast<index_t>(0)) {
    source = static_cast<index_t>(0);
  }
  int64_t index = static_cast<int64_t>(std::floor(source));
  if (index > n_in - 1) {
    index = n_in - 1;
  }
  index_t lambda = source - static_cast<index_t>(index);
  lambda = lambda < static_cast<index_t>(0) ? static_cast<index_t>(0)
                                            : (lambda > static_cast<index_t>(1) ? static_cast<index_t>(1) : lambda);
  *i0 = index;
  *i1 = index < n_in - 1 ? index + 1 : index;
  *w1 = lambda;
  *w0 = static_cast<index_t>(1) - lambda;
}

// The composed taps of output sample o along one axis: n_in (decoder) -> n_padded (first resize), crop to
// n_image, -> n_out (second resize). Weights are products of the two stages' weights, formed in double.
template <typename index_t>
C10_HOST_DEVICE inline void composed_taps(int64_t n_in, int64_t n_padded, int64_t n_image, int64_t n_out, int64_t o,
                                          int64_t index[kUpsampleTaps], double weight[kUpsampleTaps]) {
  int64_t stage[2];
  index_t stage_weight[2];
  bilinear_source_taps<index_t>(n_image, n_out, o, &stage[0], &stage[1], &stage_weight[0], &stage_weight[1]);
  for (int s = 0; s < 2; ++s) {
    int64_t j0 = 0;
    int64_t j1 = 0;
    index_t v0 = 0;
    index_t v1 = 0;
    bilinear_source_taps<index_t>(n_in, n_padded, stage[s], &j0, &j1, &v0, &v1);
    index[2 * s] = j0;
    index[2 * s + 1] = j1;
    weight[2 * s] = static_cast<double>(stage_weight[s]) * static_cast<double>(v0);
    weight[2 * s + 1] = static_cast<double>(stage_weight[s]) * static_cast<double>(v1);
  }
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t mask_sigmoid(acc_t logit) {
  return static_cast<acc_t>(1) / (static_cast<acc_t>(1) + std::exp(-logit));
}

}  // namespace pysalient
