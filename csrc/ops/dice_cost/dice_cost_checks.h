// Input validation of dice_cost shared by the CPU and CUDA kernels (same checks, same messages).
#pragma once

#include <ATen/ATen.h>

#include "ops/checks.h"

namespace pysalient {
namespace dice_cost {

// pred_logits [N, P] floating point and targets [K, P] floating point, bool or uint8, on one device of the kernel's
// type. `check_device_type` is check_cpu or check_cuda: the kernel's own device.
inline void check_inputs(const at::Tensor& pred_logits, const at::Tensor& targets, const char* op,
                         DeviceTypeCheck check_device_type) {
  check_dim(pred_logits, 2, op, "pred_logits", "[N, P]");
  check_dim(targets, 2, op, "targets", "[K, P]");
  TORCH_CHECK(pred_logits.size(1) == targets.size(1), op, ": pred_logits has P=", pred_logits.size(1),
              " pixels per mask but targets has P=", targets.size(1));
  check_floating(pred_logits, op, "pred_logits");
  const auto target_type = targets.scalar_type();
  TORCH_CHECK(at::isFloatingType(target_type) || target_type == at::kBool || target_type == at::kByte, op,
              ": targets must be a floating-point, bool or uint8 (0/1) tensor, got ", target_type);
  check_device_type(pred_logits, op, "pred_logits");
  check_device(targets, pred_logits, op, "targets", "pred_logits");
}

}  // namespace dice_cost
}  // namespace pysalient
