// The one and only TORCH_LIBRARY(pysalient, m) block: every operator schema of the library, nothing else.
// Kernels register themselves per dispatch key in csrc/ops/<op>/<op>_{cpu,cuda}.*; fake kernels and autograd
// live in Python (pysalient/ops/_fake.py, pysalient/ops/_autograd.py). Argument order follows DESIGN.md §3.
#include <torch/library.h>

TORCH_LIBRARY(pysalient, m) {
  // uint8 [H,W,3] or [B,H,W,3] -> uint8 [(B,)out_h,out_w,3]; Pillow-identical bilinear.
  m.def("resize_image(Tensor image, SymInt out_h, SymInt out_w) -> Tensor");

  // features [B,C,H,W], rois [R,5] -> [R,C,H,W]; mode 0 binary, 1 expanded binary, 2 ternary.
  m.def("roi_masking(Tensor features, Tensor rois, float spatial_scale, float expand_ratio, int mode) -> Tensor");
  m.def(
      "_roi_masking_backward(Tensor grad_output, Tensor rois, float spatial_scale, float expand_ratio, int mode, "
      "SymInt batch_size) -> Tensor");

  // score_maps [B,k*k,H,W], windows [R,3] int64 (batch_idx, y0, x0) -> [R,m,m].
  m.def("assemble_instances(Tensor score_maps, Tensor windows, SymInt m, int k) -> Tensor");
  m.def(
      "_assemble_instances_backward(Tensor grad_output, Tensor windows, SymInt m, int k, SymInt batch_size, "
      "SymInt height, SymInt width) -> Tensor");

  // L feature maps [B,C_l,H_l,W_l], rois [R,5] -> L tensors [R,C_l,out_h_l,out_w_l].
  // output_sizes holds L entries (square outputs) or 2L entries (out_h_0, out_w_0, out_h_1, ...).
  m.def(
      "multilevel_roi_align(Tensor[] features, Tensor rois, float[] spatial_scales, SymInt[] output_sizes, "
      "int sampling_ratio, bool aligned) -> Tensor[]");
  m.def(
      "_multilevel_roi_align_backward(Tensor[] grad_outputs, Tensor rois, float[] spatial_scales, "
      "SymInt[] output_sizes, int sampling_ratio, bool aligned, SymInt batch_size, SymInt[] heights, "
      "SymInt[] widths) -> Tensor[]");

  // boxes [N,4] xyxy, scores [N] -> int64 keep indices sorted by decreasing score.
  // legacy: maskrcnn-benchmark's +1 pixel sizes and suppression at IoU >= threshold.
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold, bool legacy=False) -> Tensor");

  // masks [R,M,M] probabilities, boxes [R,4] -> uint8 [R,height,width].
  // legacy: maskrcnn-benchmark's Masker (masks zero-padded by `padding` cells, integer boxes, F.interpolate).
  m.def(
      "paste_masks(Tensor masks, Tensor boxes, SymInt height, SymInt width, float threshold, bool legacy=False, "
      "int padding=1) -> Tensor");

  // mask_logits [N,h,w] -> (uint8 masks [N,Ho,Wo], float boxes [N,4], maskness [N]).
  m.def(
      "upsample_masks(Tensor mask_logits, SymInt[2] padded_hw, SymInt[2] image_hw, SymInt[2] output_hw, "
      "float threshold) -> (Tensor, Tensor, Tensor)");

  // probabilities [N,h,w], boxes [N,4] xyxy in output pixels -> uint8 [N,H,W]; one bilinear resize, inside boxes only.
  m.def(
      "resize_masks_in_boxes(Tensor probabilities, Tensor boxes, SymInt[2] padded_hw, SymInt[2] image_hw, "
      "SymInt[2] output_hw, float threshold) -> Tensor");

  // pred_logits [N,P], targets [K,P] -> [N,K] dice coefficients of sigmoid(pred) against targets.
  m.def("dice_cost(Tensor pred_logits, Tensor targets) -> Tensor");

  // cost [N,K] -> (rows int64 [min(N,K)], cols int64 [min(N,K)]), rows ascending.
  m.def("linear_sum_assignment(Tensor cost, bool maximize) -> (Tensor, Tensor)");
}
