// Input validation of nms shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace nms {

// boxes [N, 4] (x1, y1, x2, y2) and scores [N], floating point, on one device of the kernel's type.
// `check_device_type` is check_cpu or check_cuda: the kernel's own device.
inline void check_inputs(const at::Tensor& boxes, const at::Tensor& scores, const char* op,
                         DeviceTypeCheck check_device_type) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op, ": boxes must have shape [N, 4] (x1, y1, x2, y2), got ",
              boxes.sizes());
  check_dim(scores, 1, op, "scores", "[N]");
  TORCH_CHECK(boxes.size(0) == scores.size(0), op, ": boxes has ", boxes.size(0), " rows but scores has ",
              scores.size(0), " entries");
  check_floating(boxes, op, "boxes");
  check_floating(scores, op, "scores");
  check_device_type(boxes, op, "boxes");
  check_device(scores, boxes, op, "scores", "boxes");
}

}  // namespace nms
}  // namespace pysalient
