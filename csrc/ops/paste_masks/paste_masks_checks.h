// Input validation of paste_masks shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace paste_masks {

// masks [R, Mh, Mw] (at least 1x1; square with `legacy`) and boxes [R, 4] floating point on one device of the
// kernel's type, a non-negative image size, a threshold in (0, 1] ([0, 1] with `legacy`, whose test is strict) and a
// non-negative padding. `check_device_type` is check_cpu or check_cuda.
inline void check_inputs(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                         double threshold, bool legacy, int64_t padding, const char* op,
                         DeviceTypeCheck check_device_type) {
  check_dim(masks, 3, op, "masks", "[R, Mh, Mw]");
  check_floating(masks, op, "masks");
  check_device_type(masks, op, "masks");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op, ": boxes must have shape [R, 4] (x1, y1, x2, y2), got ",
              boxes.sizes());
  check_floating(boxes, op, "boxes");
  check_device(boxes, masks, op, "boxes", "masks");
  TORCH_CHECK(boxes.size(0) == masks.size(0), op, ": masks has ", masks.size(0), " RoIs but boxes has ",
              boxes.size(0), " rows");
  TORCH_CHECK(masks.size(1) >= 1 && masks.size(2) >= 1, op, ": masks must be at least 1x1 per RoI, got shape ",
              masks.sizes());
  TORCH_CHECK(height >= 0 && width >= 0, op, ": height and width must be non-negative, got ", height, "x", width);
  TORCH_CHECK(padding >= 0, op, ": padding must be non-negative, got ", padding);
  if (legacy) {
    TORCH_CHECK(masks.size(1) == masks.size(2), op, ": legacy (Masker) pasting needs square masks [R, M, M], got ",
                masks.sizes());
    TORCH_CHECK(threshold >= 0.0 && threshold <= 1.0, op, ": threshold must be in [0, 1] with legacy=True, got ",
                threshold);
    return;
  }
  // A sample of 0 (everywhere outside the box) must never count as foreground, hence threshold > 0.
  TORCH_CHECK(threshold > 0.0 && threshold <= 1.0, op, ": threshold must be in (0, 1], got ", threshold);
}

}  // namespace paste_masks
}  // namespace pysalient
