// Math of greedy NMS shared by the CPU and CUDA kernels: box areas, the IoU and the suppression test, in both
// conventions.
//
//  - torchvision (legacy = false): areas (x2 - x1) * (y2 - y1), intersections without +1, a box is suppressed
//    when IoU > threshold (strict, so the NaN IoU of two zero-area boxes never suppresses).
//  - maskrcnn-benchmark (legacy = true, the official code of RDPNet and the FCOS family): the "+1 pixel" sizes
//    (x2 - x1 + 1) * (y2 - y1 + 1) and intersections max(0, min(x2) - max(x1) + 1), suppression at IoU >=
//    threshold (its CPU kernel; its CUDA kernel uses > and differs only at exact equality).
// Both evaluate in the operand order of the reference C++ code, and every product is rounded on its own
// (__fmul_rn on the device), so that the CPU and CUDA kernels take the same decisions bit for bit.
#pragma once

#include <c10/macros/Macros.h>

namespace pysalient {
namespace nms {

// std::min(a, b) and std::max(a, b) exactly (which operand wins when one is NaN matters for parity).
template <typename T>
C10_HOST_DEVICE inline T min_of(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
C10_HOST_DEVICE inline T max_of(T a, T b) {
  return a < b ? b : a;
}

// a * b rounded to T, never contracted into an FMA with a neighbouring addition.
C10_HOST_DEVICE inline float product(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline double product(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// Area of box (x1, y1, x2, y2); with `legacy` the +1 pixel convention.
template <typename T>
C10_HOST_DEVICE inline T box_area(T x1, T y1, T x2, T y2, bool legacy) {
  const T one = legacy ? static_cast<T>(1) : static_cast<T>(0);
  return product(x2 - x1 + one, y2 - y1 + one);
}

// Whether kept box a (the higher score) suppresses candidate b, given both areas (box_area).
template <typename T>
C10_HOST_DEVICE inline bool suppresses(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b,
                                       T threshold, bool legacy) {
  const T zero = static_cast<T>(0);
  const T one = legacy ? static_cast<T>(1) : zero;
  const T w = max_of(zero, min_of(ax2, bx2) - max_of(ax1, bx1) + one);
  const T h = max_of(zero, min_of(ay2, by2) - max_of(ay1, by1) + one);
  const T inter = product(w, h);
  const T iou = inter / (area_a + area_b - inter);
  return legacy ? iou >= threshold : iou > threshold;
}

}  // namespace nms
}  // namespace pysalient
