# CUDA settings of the operator library; included from CMakeLists.txt BEFORE PySalientTorch, because the
# architecture list has to be in place when find_package(Torch) turns it into nvcc -gencode flags.
#
# Architectures: PYSALIENT_CUDA_ARCHS (CMake cache variable, else environment variable), in the format of
# TORCH_CUDA_ARCH_LIST ("7.5;8.0;9.0+PTX" or space separated; "+PTX" also embeds PTX for newer GPUs). The
# default covers Turing (7.5), data-centre Ampere (8.0), consumer Ampere (8.6), Jetson Orin (8.7), Ada (8.9)
# and Hopper (9.0) with PTX of 9.0 so that later GPUs (Blackwell) JIT-compile it; 7.5 is also the oldest
# architecture CUDA 13 can target. TORCH_CUDA_ARCH_LIST itself is overridden on purpose: the list a build
# produces must not depend on the GPU of the build machine (torch's default) or on a stray environment.
# PySalientTorch copies the list into PYSALIENT_CUDA_ARCHS, which pysalient._C reports as `cuda_archs`.
# Nothing here has any effect on CPU-only builds.
set(_pysalient_default_cuda_archs "7.5;8.0;8.6;8.7;8.9;9.0+PTX")
set(PYSALIENT_CUDA_ARCHS "" CACHE STRING
    "CUDA architectures, TORCH_CUDA_ARCH_LIST format (empty: environment PYSALIENT_CUDA_ARCHS, else the default)")
if(PYSALIENT_CUDA_ARCHS)
  set(_pysalient_cuda_archs "${PYSALIENT_CUDA_ARCHS}")
elseif(DEFINED ENV{PYSALIENT_CUDA_ARCHS} AND NOT "$ENV{PYSALIENT_CUDA_ARCHS}" STREQUAL "")
  set(_pysalient_cuda_archs "$ENV{PYSALIENT_CUDA_ARCHS}")
else()
  set(_pysalient_cuda_archs "${_pysalient_default_cuda_archs}")
endif()
# Space separated: torch's parser accepts it, and the string travels unsplit into the PYSALIENT_CUDA_ARCHS
# compile definition of pysalient._C (a ";" list would be cut into several definitions).
string(REGEX REPLACE "[ ,;]+" " " _pysalient_cuda_archs "${_pysalient_cuda_archs}")
string(STRIP "${_pysalient_cuda_archs}" _pysalient_cuda_archs)
set(TORCH_CUDA_ARCH_LIST "${_pysalient_cuda_archs}")

set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
# The shared CUDA runtime that torch itself uses (CMake's default for CUDA targets would be the static one).
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
# Flags of the CUDA sources; tools/cuda_check.py uses the same ones (keep both in sync):
#   -fmad=false: the CPU kernels are built with -ffp-contract=off, and the CUDA kernels evaluate the same shared
#     formulas (csrc/ops/*/*_kernel.h); without contraction into FMAs both give the same bits, which the exact
#     parity tests (Pillow-identical resize taps, RoIAlign sample positions, thresholded masks) rely on.
#     -Xcompiler=-ffp-contract=off does the same for the host code nvcc hands to the C++ compiler.
#   __CUDA_NO_HALF*: c10::Half/BFloat16 arithmetic goes through float (as in torch's own extension builds),
#     never through cuda_fp16.h's operators, whose implicit conversions would make mixed expressions ambiguous.
#   diag 3306 and -Wno-c++20-extensions: torch >= 2.13 headers use C++20 bit-field initialisers.
add_compile_options(
  "$<$<COMPILE_LANGUAGE:CUDA>:-fmad=false;-Xcompiler=-ffp-contract=off;--expt-relaxed-constexpr>"
  "$<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=3306;-Xcompiler=-Wno-c++20-extensions>"
  "$<$<COMPILE_LANGUAGE:CUDA>:-D__CUDA_NO_HALF_OPERATORS__;-D__CUDA_NO_HALF_CONVERSIONS__>"
  "$<$<COMPILE_LANGUAGE:CUDA>:-D__CUDA_NO_BFLOAT16_CONVERSIONS__;-D__CUDA_NO_HALF2_OPERATORS__>")

include(PySalientCudaArchitectures)  # pysalient_cmake_cuda_architectures()
