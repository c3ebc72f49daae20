// Input validation of resize_image shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace resize_image {

// image uint8 [H, W, C] or [B, H, W, C] with H, W, C >= 1, on the kernel's device (`check_device_type` is
// check_cpu or check_cuda); an output of at least 1x1.
inline void check_arguments(const at::Tensor& image, int64_t out_h, int64_t out_w, const char* op,
                            DeviceTypeCheck check_device_type) {
  TORCH_CHECK(image.dim() == 3 || image.dim() == 4, op,
              ": image must be a 3-D [H, W, C] or 4-D [B, H, W, C] tensor, got shape ", image.sizes());
  TORCH_CHECK(image.scalar_type() == at::kByte, op, ": image must be a uint8 tensor, got ", image.scalar_type());
  check_device_type(image, op, "image");
  TORCH_CHECK(out_h >= 1 && out_w >= 1, op, ": output size must be at least 1x1, got out_h=", out_h,
              ", out_w=", out_w);
  // The last three dimensions are (H, W, C) in both layouts.
  TORCH_CHECK(image.size(-3) >= 1 && image.size(-2) >= 1 && image.size(-1) >= 1, op,
              ": image must have at least one row, column and channel, got shape ", image.sizes());
}

}  // namespace resize_image
}  // namespace pysalient
