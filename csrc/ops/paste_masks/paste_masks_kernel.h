// Math of mask pasting (detectron2 paste_masks_in_image semantics), shared by the CPU kernel and a future CUDA
// kernel.
//
// Image pixel x (centre x + 0.5) of a box [lo, lo + extent) reads the RoI mask of m cells at
//   u = (x + 0.5 - lo) / extent * m - 0.5,
// which is grid_sample(align_corners=False) at the normalised coordinate 2 * (x + 0.5 - lo) / extent - 1.
// Bilinear interpolation with zero padding makes the sample vanish unless -1 < u < m; positions are kept in
// double because image coordinates reach thousands of pixels while a mask cell can be a fraction of one.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pysalient {

// The two mask cells pixel `pixel` reads along one axis and their weights, already zero for cells outside
// [0, m) (zero padding). Returns false when both weights vanish. Indices are clamped into [0, m) so that a
// zero-weight tap never reads outside the mask.
C10_HOST_DEVICE inline bool paste_tap(int64_t pixel, double lo, double extent, int64_t m, int64_t* i0, int64_t* i1,
                                      double* w0, double* w1) {
  const double u = (static_cast<double>(pixel) + 0.5 - lo) / extent * static_cast<double>(m) - 0.5;
  if (!(u > -1.0 && u < static_cast<double>(m))) {  // also rejects NaN
    *i0 = *i1 = 0;
    *w0 = *w1 = 0.0;
    return false;
  }
  const double base = std::floor(u);
  const double frac = u - base;
  const int64_t cell = static_cast<int64_t>(base);
  *w0 = cell >= 0 ? 1.0 - frac : 0.0;
  *w1 = cell + 1 < m ? frac : 0.0;
  *i0 = cell >= 0 ? cell : 0;
  *i1 = cell + 1 < m ? cell + 1 : m - 1;
  return true;
}

// Conservative pixel range [*first, *end) of one axis outside which every sample is exactly zero, clipped to
// [0, size). With cells wider than a pixel the bilinear tail reaches half a cell beyond the box.
C10_HOST_DEVICE inline void paste_support(double lo, double hi, int64_t m, int64_t size, int64_t* first,
                                          int64_t* end) {
  const double half_cell = 0.5 * (hi - lo) / static_cast<double>(m);
  double a = std::floor(lo - 0.5 - half_cell) - 1.0;
  double b = std::ceil(hi - 0.5 + half_cell) + 2.0;
  const double limit = static_cast<double>(size);
  a = a < 0.0 ? 0.0 : (a > limit ? limit : a);
  b = b < 0.0 ? 0.0 : (b > limit ? limit : b);
  *first = static_cast<int64_t>(a);
  *end = static_cast<int64_t>(b);
}

// Whether a box side is usable: finite ends and a strictly positive extent (else the mask is all zero).
C10_HOST_DEVICE inline bool paste_valid_extent(double lo, double hi) {
  return std::isfinite(lo) && std::isfinite(hi) && hi > lo;
}

}  // namespace pysalient

// ---------------------------------------------------------------------------------------------------------------
// legacy = true: maskrcnn-benchmark's Masker(threshold, padding) (paste_mask_in_image), RDPNET.md §6, in float32 with
// its operation order, so that the masks are bit for bit those of the official evaluation:
//   1. the M x M map is zero-padded to M' = M + 2 padding; the box is enlarged about its centre by
//      scale = float32(M' / M): half_w = (x2 - x1) * 0.5, cx = (x2 + x1) * 0.5, half_w *= scale,
//      x1' = cx - half_w, x2' = cx + half_w (same for y), each operation rounded to float32;
//   2. the corners are truncated toward zero to int32 (not floored), w = max(x2' - x1' + 1, 1), h likewise;
//   3. the padded map is resized to h x w by F.interpolate(mode="bilinear", align_corners=False) and thresholded
//      strictly (> threshold); it is written at rows y1'..y2', columns x1'..x2' (inclusive), clipped to the image.
// Step 3 reproduces torch's CPU upsample_bilinear2d kernel as built for AVX2/AVX512 (which contracts its
// expressions into FMAs): the source index is fma(scale, dst + 0.5, -0.5), and the sample is the 4-tap sum of its
// channels-last kernel when h + w <= 128, the separable 2-tap form of its generic kernel otherwise (the size rule
// by which torch chooses between them). The FMAs are explicit here, so every build and device agrees.

// a * b, a + b, a - b rounded to float32 each, never contracted (explicit on the device, where nvcc contracts).
C10_HOST_DEVICE inline float legacy_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline float legacy_add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
C10_HOST_DEVICE inline float legacy_sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
C10_HOST_DEVICE inline float legacy_fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// The integer box of one RoI: inclusive corners (x0, y0)..(x1, y1) and the resize size w x h.
struct LegacyBox {
  int64_t x0, y0, x1, y1, w, h;
};

// One corner pair (lo, hi) of a box enlarged by `scale` and truncated; false when a corner is not finite or does
// not fit int32 (where the Masker's conversion is undefined): such boxes paste nothing.
C10_HOST_DEVICE inline bool legacy_expand(float lo, float hi, float scale, int64_t* first, int64_t* last) {
  float half = legacy_mul(legacy_sub(hi, lo), 0.5f);
  const float center = legacy_mul(legacy_add(hi, lo), 0.5f);
  half = legacy_mul(half, scale);
  const float a = legacy_sub(center, half);
  const float b = legacy_add(center, half);
  constexpr float kLimit = 2147483520.0f;  // the largest float32 below 2^31
  if (!(a > -kLimit && a < kLimit && b > -kLimit && b < kLimit)) {  // also rejects NaN
    return false;
  }
  *first = static_cast<int32_t>(a);  // truncation toward zero, as Tensor.to(torch.int32)
  *last = static_cast<int32_t>(b);
  return true;
}

C10_HOST_DEVICE inline bool legacy_box(const float* box, float scale, LegacyBox* out) {
  if (!legacy_expand(box[0], box[2], scale, &out->x0, &out->x1) ||
      !legacy_expand(box[1], box[3], scale, &out->y0, &out->y1)) {
    return false;
  }
  const int64_t w = out->x1 - out->x0 + 1;
  const int64_t h = out->y1 - out->y0 + 1;
  out->w = w > 1 ? w : 1;
  out->h = h > 1 ? h : 1;
  return true;
}

// Source taps of output index `index` of a linear resize from `in_size` to `out_size` (align_corners=False), as
// torch's compute_source_index_and_lambda<float> with the FMA of its AVX2 build.
struct LegacyTap {
  int64_t i0, i1;
  float l0, l1;
};

C10_HOST_DEVICE inline LegacyTap legacy_tap(int64_t index, int64_t in_size, int64_t out_size) {
  if (in_size == out_size) {
    return LegacyTap{index, index, 1.0f, 0.0f};
  }
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  float source = legacy_fma(scale, legacy_add(static_cast<float>(index), 0.5f), -0.5f);
  source = source < 0.0f ? 0.0f : source;
  int64_t i0 = static_cast<int64_t>(floorf(source));
  i0 = i0 < in_size - 1 ? i0 : in_size - 1;
  float lambda = legacy_sub(source, static_cast<float>(i0));
  lambda = lambda < 0.0f ? 0.0f : (lambda > 1.0f ? 1.0f : lambda);
  const int64_t i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
  return LegacyTap{i0, i1, legacy_sub(1.0f, lambda), lambda};
}

// The resized value from the four source values v<row><column> (rows ty.i0/i1, columns tx.i0/i1). `four_tap`:
// torch's channels-last kernel (h + w <= 128); otherwise its generic separable kernel.
C10_HOST_DEVICE inline float legacy_sample(float v00, float v01, float v10, float v11, const LegacyTap& ty,
                                           const LegacyTap& tx, bool four_tap) {
  if (four_tap) {
    const float w00 = legacy_mul(ty.l0, tx.l0);
    const float w01 = legacy_mul(ty.l0, tx.l1);
    const float w10 = legacy_mul(ty.l1, tx.l0);
    const float w11 = legacy_mul(ty.l1, tx.l1);
    float value = legacy_fma(v00, w00, legacy_mul(v01, w01));
    value = legacy_fma(v10, w10, value);
    return legacy_fma(v11, w11, value);
  }
  const float top = legacy_fma(v00, tx.l0, legacy_mul(v01, tx.l1));
  const float bottom = legacy_fma(v10, tx.l0, legacy_mul(v11, tx.l1));
  return legacy_fma(top, ty.l0, legacy_mul(bottom, ty.l1));
}

// The Masker's enlargement factor float32((M + 2 padding) / M), computed in double as Python does.
inline float legacy_scale(int64_t mask_size, int64_t padding) {
  return static_cast<float>(static_cast<double>(mask_size + 2 * padding) / static_cast<double>(mask_size));
}
