// Input validation of multilevel_roi_align and its backward, shared by the CPU and CUDA kernels (same checks, same
// messages). `check_device_type` is check_cpu or check_cuda: the kernel's own device.
#pragma once

#include <cmath>

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "ops/checks.h"

namespace pysalient {
namespace multilevel_roi_align {

// (out_h, out_w) of each level.
using PooledSizes = std::vector<std::pair<int64_t, int64_t>>;

inline std::string level_name(const char* name, size_t level) {
  return std::string(name) + "[" + std::to_string(level) + "]";
}

// A non-empty list of 4-D floating-point tensors of one dtype on one device, the kernel's device type.
inline void check_levels(at::TensorList tensors, const char* op, const char* name, const char* layout,
                         DeviceTypeCheck check_device_type) {
  TORCH_CHECK(!tensors.empty(), op, ": ", name, " must be a non-empty list of 4-D tensors (one per level)");
  const at::Tensor& first = tensors[0];
  for (size_t l = 0; l < tensors.size(); ++l) {
    const std::string label = level_name(name, l);
    const at::Tensor& t = tensors[l];
    check_dim(t, 4, op, label.c_str(), layout);
    check_floating(t, op, label.c_str());
    TORCH_CHECK(t.scalar_type() == first.scalar_type(), op, ": every level must have one dtype, but ", label,
                " is ", t.scalar_type(), " and ", name, "[0] is ", first.scalar_type());
    check_device(t, first, op, label.c_str(), level_name(name, 0).c_str());
  }
  check_device_type(first, op, level_name(name, 0).c_str());
}

// (out_h, out_w) per level from L square sizes or 2L (height, width) entries.
inline PooledSizes pooled_sizes(at::IntArrayRef output_sizes, int64_t levels, const char* op) {
  const int64_t n = static_cast<int64_t>(output_sizes.size());
  TORCH_CHECK(n == levels || n == 2 * levels, op, ": output_sizes must hold ", levels, " entries (square outputs) or ",
              2 * levels, " entries (out_h, out_w per level) for ", levels, " level(s), got ", n);
  PooledSizes sizes(levels);
  for (int64_t l = 0; l < levels; ++l) {
    sizes[l] = n == levels ? std::make_pair(output_sizes[l], output_sizes[l])
                           : std::make_pair(output_sizes[2 * l], output_sizes[2 * l + 1]);
    TORCH_CHECK(sizes[l].first >= 1 && sizes[l].second >= 1, op, ": output sizes must be >= 1, got ", output_sizes);
  }
  return sizes;
}

// rois [R, 5] with the dtype and device of `reference`, batch indices in [0, batch_size); one scale per level.
inline void check_rois_and_scales(const at::Tensor& rois, const at::Tensor& reference, const char* reference_name,
                                  at::ArrayRef<double> spatial_scales, int64_t levels, int64_t batch_size,
                                  const char* op) {
  check_rois(rois, op);
  TORCH_CHECK(rois.scalar_type() == reference.scalar_type(), op, ": rois must have the dtype of ", reference_name,
              " (", reference.scalar_type(), "), got ", rois.scalar_type());
  check_device(rois, reference, op, "rois", reference_name);
  TORCH_CHECK(static_cast<int64_t>(spatial_scales.size()) == levels, op, ": spatial_scales must hold one scale per ",
              "level (", levels, "), got ", spatial_scales.size());
  for (const double scale : spatial_scales) {
    TORCH_CHECK(std::isfinite(scale) && scale > 0, op, ": spatial_scales must be finite and > 0, got ",
                spatial_scales);
  }
  check_roi_batch_indices(rois, batch_size, op);
}

// Every check of the forward: features [B, C_l, H_l, W_l] per level (one batch size), rois, scales and output
// sizes. Returns (out_h, out_w) per level.
inline PooledSizes check_forward(at::TensorList features, const at::Tensor& rois, at::ArrayRef<double> spatial_scales,
                                 at::IntArrayRef output_sizes, const char* op, DeviceTypeCheck check_device_type) {
  check_levels(features, op, "features", "[B, C, H, W]", check_device_type);
  const int64_t levels = static_cast<int64_t>(features.size()), batch_size = features[0].size(0);
  for (int64_t l = 1; l < levels; ++l) {
    TORCH_CHECK(features[l].size(0) == batch_size, op, ": every level must have the batch size of features[0] (",
                batch_size, "), but features[", l, "] has shape ", features[l].sizes());
  }
  check_rois_and_scales(rois, features[0], "features", spatial_scales, levels, batch_size, op);
  return pooled_sizes(output_sizes, levels, op);
}

// Every check of the backward: grad_outputs [R, C_l, out_h_l, out_w_l] per level, rois, scales, output sizes and
// the (batch_size, heights, widths) of the features. Returns (out_h, out_w) per level.
inline PooledSizes check_backward(at::TensorList grad_outputs, const at::Tensor& rois,
                                  at::ArrayRef<double> spatial_scales, at::IntArrayRef output_sizes, int64_t batch_size,
                                  at::IntArrayRef heights, at::IntArrayRef widths, const char* op,
                                  DeviceTypeCheck check_device_type) {
  check_levels(grad_outputs, op, "grad_outputs", "[R, C, out_h, out_w]", check_device_type);
  const int64_t levels = static_cast<int64_t>(grad_outputs.size());
  TORCH_CHECK(batch_size >= 0, op, ": batch_size must be >= 0, got ", batch_size);
  TORCH_CHECK(static_cast<int64_t>(heights.size()) == levels && static_cast<int64_t>(widths.size()) == levels, op,
              ": heights and widths must hold one size per level (", levels, "), got ", heights.size(), " and ",
              widths.size());
  check_rois_and_scales(rois, grad_outputs[0], "grad_outputs", spatial_scales, levels, batch_size, op);
  PooledSizes pooled = pooled_sizes(output_sizes, levels, op);
  const int64_t num_rois = rois.size(0);
  for (int64_t l = 0; l < levels; ++l) {
    const at::Tensor& g = grad_outputs[l];
    TORCH_CHECK(heights[l] >= 0 && widths[l] >= 0, op, ": heights and widths must be >= 0");
    TORCH_CHECK(g.size(0) == num_rois && g.size(2) == pooled[l].first && g.size(3) == pooled[l].second, op,
                ": grad_outputs[", l, "] must have shape [", num_rois, ", C, ", pooled[l].first, ", ",
                pooled[l].second, "], got ", g.sizes());
  }
  return pooled;
}

}  // namespace multilevel_roi_align
}  // namespace pysalient
