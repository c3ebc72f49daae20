// The pass plan of resize_image shared by the CPU and CUDA kernels: which separable passes run, in which order,
// through which intermediate buffer. Each kernel supplies its two passes:
//   rows(input, output, rows, width, out_width, channels):              [rows, width, C] -> [rows, out_width, C]
//   columns(input, output, batch, height, out_height, row_length):      [batch, height, L] -> [batch, out_height, L]
// (input const at::Tensor&, output at::Tensor&, uint8 and contiguous; L = row length in bytes).
#pragma once

#include <ATen/ATen.h>

#include "ops/resize_image/resize_image_kernel.h"

namespace pysalient {
namespace resize_image {

// image: uint8 [H, W, C] or [B, H, W, C] (validated by the caller); returns the resized image of the same rank.
template <typename RowPass, typename ColumnPass>
at::Tensor run_passes(const at::Tensor& image, int64_t out_h, int64_t out_w, RowPass rows, ColumnPass columns) {
  const bool batched = image.dim() == 4;
  const at::Tensor images = (batched ? image : image.unsqueeze(0)).contiguous();
  const int64_t batch = images.size(0);
  const int64_t height = images.size(1);
  const int64_t width = images.size(2);
  const int64_t channels = images.size(3);

  at::Tensor output = batched ? at::empty({batch, out_h, out_w, channels}, images.options())
                              : at::empty({out_h, out_w, channels}, images.options());
  if (batch == 0) {
    return output;
  }
  const bool horizontal = out_w != width;
  const bool vertical = out_h != height;
  if (!horizontal && !vertical) {
    output.copy_(image);
  } else if (horizontal && vertical && resize_vertical_first(height, width, out_h, out_w)) {
    // Pillow shrinks a much taller than wide change vertically first (see resize_vertical_first).
    at::Tensor rows_first = at::empty({batch, out_h, width, channels}, images.options());
    columns(images, rows_first, batch, height, out_h, width * channels);
    rows(rows_first, output, batch * out_h, width, out_w, channels);
  } else {
    at::Tensor current = images;
    if (horizontal) {
      current = vertical ? at::empty({batch, height, out_w, channels}, images.options()) : output;
      rows(images, current, batch * height, width, out_w, channels);
    }
    if (vertical) {
      columns(current, output, batch, height, out_h, out_w * channels);
    }
  }
  return output;
}

}  // namespace resize_image
}  // namespace pysalient
