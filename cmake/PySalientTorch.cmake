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
    # torch's config finds the toolkit again with its own copy of FindCUDA, which ignores CMAKE_CUDA_COMPILER and
    # takes the first nvcc on PATH (a wrapper script in /usr/local/bin made it look in /usr/local): point it at the
    # toolkit of the compiler just enabled, or the two can disagree ("Found two conflicting CUDA versions").
    if(NOT CUDA_TOOLKIT_ROOT_DIR AND CMAKE_CUDA_COMPILER_TOOLKIT_ROOT)
      set(CUDA_TOOLKIT_ROOT_DIR "${CMAKE_CUDA_COMPILER_TOOLKIT_ROOT}" CACHE PATH "CUDA toolkit for torch's FindCUDA")
    endif()
  else()
    message(STATUS "pysalient: torch has CUDA but nvcc was not found; building CPU kernels only")
  endif()
endif()

find_package(Torch REQUIRED)
if(PYSALIENT_WITH_CUDA)
  set(PYSALIENT_CUDA_ARCHS "${TORCH_CUDA_ARCH_LIST}")
  # torch's config copies its -gencode flags (made from the same TORCH_CUDA_ARCH_LIST) into CMAKE_CUDA_FLAGS. The
  # target's CUDA_ARCHITECTURES (CMakeLists.txt) is the one place the architectures come from: drop torch's copy so
  # that nvcc sees each architecture once and the two spellings can never disagree.
  string(REGEX REPLACE "-gencode[ =]+arch=[^ ]+" "" CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS}")
endif()
message(STATUS "pysalient: torch ${PYSALIENT_TORCH_VERSION}, CUDA kernels: ${PYSALIENT_WITH_CUDA}")
