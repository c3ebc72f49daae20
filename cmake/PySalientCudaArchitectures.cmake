# pysalient_cmake_cuda_architectures(<arch list> <out var>): a TORCH_CUDA_ARCH_LIST-format list ("7.5 8.7 9.0+PTX")
# as CMake's CUDA_ARCHITECTURES ("75-real;87-real;90"): "-real" is machine code only, a bare number machine code
# plus PTX. torch's CMake config (Caffe2/public/cuda.cmake) sets CMAKE_CUDA_ARCHITECTURES to OFF and instead turns
# TORCH_CUDA_ARCH_LIST into -gencode flags, which it appends to CMAKE_CUDA_FLAGS (as of torch 2.13); pysalient
# removes those (PySalientTorch.cmake) so that the target's CUDA_ARCHITECTURES is the only source of architectures.
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
