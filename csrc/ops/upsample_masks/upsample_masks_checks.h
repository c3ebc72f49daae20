// Input validation of upsample_masks shared by the CPU and CUDA kernels (same checks, same messages). The CUDA
// kernel's own limit (sizes below 2^31 - 1 for its 32-bit taps and extents) stays in upsample_masks_cuda.cu.
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace upsample_masks {

inline void check_pair(at::IntArrayRef pair, const char* op, const char* name) {
  TORCH_CHECK(pair.size() == 2, op, ": ", name, " must hold 2 sizes (height, width), got ", pair.size());
}

// mask_logits [N, h, w] floating point with h, w >= 1, on the kernel's device (`check_device_type` is check_cpu
// or check_cuda); padded_hw >= image_hw >= 1x1 and output_hw >= 1x1, each a (height, width) pair.
inline void check_arguments(const at::Tensor& mask_logits, at::IntArrayRef padded_hw, at::IntArrayRef image_hw,
                            at::IntArrayRef output_hw, const char* op, DeviceTypeCheck check_device_type) {
  check_dim(mask_logits, 3, op, "mask_logits", "[N, h, w]");
  check_floating(mask_logits, op, "mask_logits");
  check_device_type(mask_logits, op, "mask_logits");
  check_pair(padded_hw, op, "padded_hw");
  check_pair(image_hw, op, "image_hw");
  check_pair(output_hw, op, "output_hw");
  TORCH_CHECK(mask_logits.size(1) >= 1 && mask_logits.size(2) >= 1, op,
              ": mask_logits must have a non-empty [h, w] map, got shape ", mask_logits.sizes());
  TORCH_CHECK(image_hw[0] >= 1 && image_hw[1] >= 1, op, ": image_hw must be at least 1x1, got ", image_hw);
  TORCH_CHECK(padded_hw[0] >= image_hw[0] && padded_hw[1] >= image_hw[1], op, ": padded_hw ", padded_hw,
              " must be at least image_hw ", image_hw, " (the image is cropped out of the padded size)");
  TORCH_CHECK(output_hw[0] >= 1 && output_hw[1] >= 1, op, ": output_hw must be at least 1x1, got ", output_hw);
}

}  // namespace upsample_masks
}  // namespace pysalient
