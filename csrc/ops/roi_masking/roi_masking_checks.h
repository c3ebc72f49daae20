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
  check_roi_batch_indices(rois, batch_size, op);  // range and whole numbers, as every RoI op checks them
}

// roi_masking(features [B, C, H, W], rois [R, 5], ...).
inline void check_forward(const at::Tensor& features, const at::Tensor& rois, double spatial_scale,
                          double expand_ratio, int64_t mode, const char* op, DeviceTypeCheck check_device_type) {
  check_dim(features, 4, op, "features", "[B, C, H, W]");
  check_floating(features, op, "features");
  check_arguments(op, spatial_scale, expand_ratio, mode);
  check_rois_against(rois, features, "features", features.size(0), op, check_device_type);
}

// _roi_masking_backward(grad_output [R, C, H, W], rois [R, 5], ..., batch_size).
inline void check_backward(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale,
                           double expand_ratio, int64_t mode, int64_t batch_size, const char* op,
                           DeviceTypeCheck check_device_type) {
  check_dim(grad_output, 4, op, "grad_output", "[R, C, H, W]");
  check_floating(grad_output, op, "grad_output");
  check_arguments(op, spatial_scale, expand_ratio, mode);
  TORCH_CHECK(batch_size >= 0, op, ": batch_size must be >= 0, got ", batch_size);
  check_rois_against(rois, grad_output, "grad_output", batch_size, op, check_device_type);
  TORCH_CHECK(rois.size(0) == grad_output.size(0), op, ": grad_output has ", grad_output.size(0),
              " RoIs but rois has ", rois.size(0));
}

}  // namespace roi_masking
}  // namespace pysalient
