# Locate the libtorch that belongs to the Python interpreter doing the build, so that the op library
# is ABI-compatible with the torch that will load it. Sets:
#   TORCH_LIBRARIES, PYSALIENT_TORCH_VERSION, PYSALIENT_WITH_CUDA, PYSALIENT_CUDA_ARCHS
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import torch; print(torch.utils.cmake_prefix_path); print(torch.__version__); print(int(torch.version.cuda is not None))"
  OUTPUT_VARIABLE _torch_info
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _torch_rc)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "pysalient: 'import torch' failed for ${Python_EXECUTABLE}. Install torch first and build "
                      "with 'pip install --no-build-isolation'.")
endif()
string(REPLACE "\n" ";" _torch_info "${_torch_info}")
list(GET _torch_info 0 _torch_prefix)
list(GET _torch_info 1 PYSALIENT_TORCH_VERSION)
list(GET _torch_info 2 _torch_has_cuda)
list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")

set(PYSALIENT_WITH_CUDA OFF)
set(PYSALIENT_CUDA_ARCHS "")
if(_torch_has_cuda)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(PYSALIENT_WITH_CUDA ON)
  else()
    message(STATUS "pysalient: torch has CUDA but nvcc was not found; building CPU kernels only")
  endif()
endif()

find_package(Torch REQUIRED)
if(PYSALIENT_WITH_CUDA)
  set(PYSALIENT_CUDA_ARCHS "${TORCH_CUDA_ARCH_LIST}")
endif()
message(STATUS "pysalient: torch ${PYSALIENT_TORCH_VERSION}, CUDA kernels: ${PYSALIENT_WITH_CUDA}")
