# Torch's CMake picks CUDA architectures by probing a GPU, which fails on machines without one; ours are set
# below per target. Torch ignores CMAKE_CUDA_ARCHITECTURES and reads this list instead.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
# `pip install .` (scikit-build-core, SKBUILD): the Torch of the Python that builds the package, which must
# be the one that will import it (hence --no-build-isolation).
if(SKBUILD AND NOT Torch_DIR)
  execute_process(COMMAND "${Python_EXECUTABLE}" -c "import torch; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _tlc_skbuild_torch OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _tlc_rc)
  if(NOT _tlc_rc EQUAL 0)
    message(FATAL_ERROR "pip install .: torch is not importable by ${Python_EXECUTABLE}; install torch in that "
                        "environment first and build with `pip install --no-build-isolation .`")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_tlc_skbuild_torch}")
endif()
# Every Torch library comes from the Torch found here (the venv's wheel). TorchConfig.cmake looks its libraries
# up with find_library(... PATHS <torch>/lib), which searches the system first: with Debian's libtorch-dev
# installed (python3-torch pulls it) that put Debian's libc10.so (torch 1.13) on the link line beside the
# wheel's. So the libraries are looked up in the wheel's lib folder alone first, and checked after.
if(NOT Torch_DIR)
  find_path(TLC_TORCH_CMAKE_DIR TorchConfig.cmake PATH_SUFFIXES Torch share/cmake/Torch NO_CMAKE_SYSTEM_PATH
            NO_SYSTEM_ENVIRONMENT_PATH NO_CMAKE_INSTALL_PREFIX)
  if(TLC_TORCH_CMAKE_DIR)
    set(Torch_DIR "${TLC_TORCH_CMAKE_DIR}")
  endif()
endif()
if(Torch_DIR)
  get_filename_component(_tlc_torch_prefix "${Torch_DIR}/../../.." ABSOLUTE)
  foreach(_pair c10_LIBRARY:c10 C10_CUDA_LIBRARY:c10_cuda TORCH_LIBRARY:torch CAFFE2_NVRTC_LIBRARY:caffe2_nvrtc
                kineto_LIBRARY:kineto)
    string(REPLACE ":" ";" _pair "${_pair}")
    list(GET _pair 0 _var)
    list(GET _pair 1 _name)
    find_library(${_var} ${_name} PATHS "${_tlc_torch_prefix}/lib" NO_DEFAULT_PATH)
  endforeach()
endif()
find_package(Torch REQUIRED)
get_filename_component(_tlc_torch_prefix "${Torch_DIR}/../../.." ABSOLUTE)
foreach(_lib IN LISTS TORCH_LIBRARIES)
  string(FIND "${_lib}" "${_tlc_torch_prefix}/" _at)
  if(IS_ABSOLUTE "${_lib}" AND _lib MATCHES "(torch|c10|kineto)[^/]*$" AND NOT _at EQUAL 0)
    message(FATAL_ERROR "Torch library ${_lib} is not from the Torch at ${_tlc_torch_prefix} (another LibTorch, "
                        "e.g. Debian's libtorch-dev, is installed); remove the build folder's CMakeCache.txt and configure again")
  endif()
endforeach()
