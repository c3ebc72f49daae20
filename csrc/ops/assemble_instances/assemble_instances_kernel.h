// Index arithmetic of InstanceFCN's assembling module (Dai et al., "Instance-sensitive Fully Convolutional
// Networks", ECCV 2016, §3.1), shared by the CPU and CUDA kernels. An m x m window is cut into k x k sub-windows;
// sub-window (a, b) copies its cells from score map a * k + b at the same position.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

namespace pysalient {
namespace assemble_instances {

// Sub-window (along one axis) that cell i of an m-cell window belongs to: floor(i * k / m). With m not divisible
// by k the sub-windows differ in size by one cell; with m < k some sub-windows (and their maps) are never used.
C10_HOST_DEVICE inline int64_t sub_window(int64_t i, int64_t m, int64_t k) { return i * k / m; }

// First cell (along one axis) of sub-window a: the number of cells i with floor(i * k / m) < a, i.e. ceil(a*m/k).
// Sub-window a covers [band_begin(a), band_begin(a + 1)).
C10_HOST_DEVICE inline int64_t band_begin(int64_t a, int64_t m, int64_t k) { return (a * m + k - 1) / k; }

// Score map that window cell (i, j) is copied from.
C10_HOST_DEVICE inline int64_t score_channel(int64_t i, int64_t j, int64_t m, int64_t k) {
  return sub_window(i, m, k) * k + sub_window(j, m, k);
}

// A window offset clamped to [-m, size]: windows starting at or beyond either bound are entirely off the map
// both before and after clamping, and offset + cell can no longer overflow.
C10_HOST_DEVICE inline int64_t clamp_offset(int64_t offset, int64_t m, int64_t size) {
  return offset < -m ? -m : (offset > size ? size : offset);
}

}  // namespace assemble_instances
}  // namespace pysalient
