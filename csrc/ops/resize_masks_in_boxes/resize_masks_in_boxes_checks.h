// Input validation of resize_masks_in_boxes shared by the CPU and CUDA kernels (same checks, same messages). The
// CUDA kernel's own limit (sizes below 2^31 - 1 for its 32-bit taps) stays in resize_masks_in_boxes_cuda.cu.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "ops/checks.h"

namespace pysalient {
namespace resize_masks_in_boxes {

inline void check_pair(at::IntArrayRef pair, const char* op, const char* name) {
  TORCH_CHECK(pair.size() == 2, op, ": ", name, " must hold 2 sizes (height, width), got ", pair.size());
}

// probabilities [N, h, w] floating point with h, w >= 1 on the kernel's device (`check_device_type` is check_cpu
// or check_cuda); boxes [N, 4] floating point on the same device; padded_hw >= image_hw >= 1x1 and
// output_hw >= 1x1, each a (height, width) pair; threshold finite in [0, 1).
inline void check_arguments(const at::Tensor& probabilities, const at::Tensor& boxes, at::IntArrayRef padded_hw,
                            at::IntArrayRef image_hw, at::IntArrayRef output_hw, double threshold, const char* op,
                            DeviceTypeCheck check_device_type) {
  check_dim(probabilities, 3, op, "probabilities", "[N, h, w]");
  check_floating(probabilities, op, "probabilities");
  check_device_type(probabilities, op, "probabilities");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op, ": boxes must have shape [N, 4] (x1, y1, x2, y2), got ",
              boxes.sizes());
  check_floating(boxes, op, "boxes");
  check_device(boxes, probabilities, op, "boxes", "probabilities");
  TORCH_CHECK(boxes.size(0) == probabilities.size(0), op, ": probabilities has ", probabilities.size(0),
              " masks but boxes has ", boxes.size(0), " rows");
  check_pair(padded_hw, op, "padded_hw");
  check_pair(image_hw, op, "image_hw");
  check_pair(output_hw, op, "output_hw");
  TORCH_CHECK(probabilities.size(1) >= 1 && probabilities.size(2) >= 1, op,
              ": probabilities must have a non-empty [h, w] map, got shape ", probabilities.sizes());
  TORCH_CHECK(image_hw[0] >= 1 && image_hw[1] >= 1, op, ": image_hw must be at least 1x1, got ", image_hw);
  TORCH_CHECK(padded_hw[0] >= image_hw[0] && padded_hw[1] >= image_hw[1], op, ": padded_hw ", padded_hw,
              " must be at least image_hw ", image_hw, " (the image is the top-left part of the padded input)");
  TORCH_CHECK(output_hw[0] >= 1 && output_hw[1] >= 1, op, ": output_hw must be at least 1x1, got ", output_hw);
  // A pixel outside its box is 0, which must never count as foreground: the test is strict and threshold >= 0.
  TORCH_CHECK(std::isfinite(threshold) && threshold >= 0.0 && threshold < 1.0, op,
              ": threshold must be a finite value in [0, 1), got ", threshold);
}

}  // namespace resize_masks_in_boxes
}  // namespace pysalient
