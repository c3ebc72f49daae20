# pysalient_cmake_cuda_architectures(<arch list> <out var>): a TORCH_CUDA_ARCH_LIST-format list ("7.5 8.7 9.0+PTX")
# as CMake's CUDA_ARCHITECTURES ("75-real;87-real;90"): "-real" is machine code only, a bare number machine code
# plus PTX. It is needed because torch's CMake config (Caffe2/public/cuda.cmake) turns TORCH_CUDA_ARCH_LIST into
# -gencode flags in CUDA_NVCC_FLAGS, a FindCUDA variable that CMake's CUDA language never reads, and sets
# CMAKE_CUDA_ARCHITECTURES to OFF: left alone, the kernels would be built for nvcc's default architecture only.
function(pysalient_cmake_cuda_architectures arch_list out_var)
  set(result "")
  string(REGEX REPLACE "[ ,;]+" ";" items "${arch_list}")
  foreach(item IN LISTS items)
    if(item STREQUAL "")
      continue()
    endif()
    if(NOT item MATCHES "^([0-9]+)\\.([0-9]+)([a-z]?)(\\+PTX)?$")
      message(FATAL_ERROR "pysalient: cannot read CUDA architecture '${item}' in '${arch_list}' "
                          "(expected entries like 8.6, 9.0a or 9.0+PTX)")
    endif()
    set(number "${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
    if(CMAKE_MATCH_4)
      list(APPEND result "${number}")
    else()
      list(APPEND result "${number}-real")
    endif()
  endforeach()
  if(NOT result)
    message(FATAL_ERROR "pysalient: the CUDA architecture list '${arch_list}' is empty")
  endif()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()
