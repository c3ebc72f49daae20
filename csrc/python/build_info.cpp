// pysalient._C: what was built, for `pysalient env` and for checks at import time. It holds no operators
// (those live in libpysalient_ops.so and are registered with the PyTorch dispatcher).
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_C, module) {
  module.doc() = "pysalient build information";
  module.attr("__version__") = PYSALIENT_VERSION;
  module.attr("torch_version") = PYSALIENT_TORCH_VERSION;
  module.attr("with_cuda") = static_cast<bool>(PYSALIENT_WITH_CUDA);
  module.attr("cuda_archs") = PYSALIENT_CUDA_ARCHS;
}
