// Input validation of roi_masking shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "ops/checks.h"
#include "ops/roi_masking/roi_masking_kernel.h"

namespace pysalient {
namespace roi_masking {

inline void check_arguments(const char* op, double spatial_scale, double expand_ratio, int64_t mode) {
  TORCH_CHECK(mode == roi_masking::kBinary || mode == roi_masking::kExpandedBinary || mode == roi_masking::kTernary,
              op, ": mode must be 0 (binary), 1 (expanded binary) or 2 (ternary), got ", mode);
  TORCH_CHECK(std::isfinite(spatial_scale) && spatial_scale > 0, op, ": spatial_scale must be finite and > 0, got ",
              spatial_scale);
  TORCH_CHECK(std::isfinite(expand_ratio) && expand_ratio >= 0, op, ": expand_ratio must be finite and >= 0, got ",
              expand_ratio);
}

inline void check_rois_against(const at::Tensor& rois, const at::Tensor& reference, const char* reference_name,
                               int64_t batch_size, const char* op,
                               DeviceTypeCheck check_device_type) {
  check_rois(rois, op);
  check_device_type(reference, op, reference_name);
  check_device(rois, reference, op, "rois", reference_name);
  TORCH_CHECK(rois.scalar_type() == reference.scalar_type(), op, ": rois must have the dtype of ", reference_name,
              " (", reference.scalar_type(), "), got ", rois.scalar_type());
  check_roi_batch_indices(rois, batch_size, op);
  if (rois.size(0) > 0) {
    const at::Tensor index = rois.select(1, 0);
    TORCH_CHECK(at::equal(index, index.floor()), op, ": rois[:, 0] must hold integral batch indices");
  }
}

}  // namespace roi_masking
}  // namespace pysalient
