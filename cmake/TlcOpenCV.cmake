# OpenCV's core, imgproc and imgcodecs as imported targets (opencv_core, opencv_imgproc, opencv_imgcodecs) and
# OpenCV_LIBS. Through OpenCV's own CMake package when it is installed; else from the headers and libraries of
# Debian's per-module packages (libopencv-{core,imgproc,imgcodecs}-dev): OpenCVConfig.cmake comes only with
# libopencv-dev, which pulls every OpenCV module and ~150 more packages (VTK, GDAL, ...) that tlc does not use.
find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs)
if(NOT OpenCV_FOUND)
  find_path(TLC_OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
  set(OpenCV_LIBS)
  foreach(_m core imgproc imgcodecs)
    find_library(TLC_OPENCV_${_m}_LIBRARY opencv_${_m})
    if(NOT TLC_OPENCV_INCLUDE_DIR OR NOT TLC_OPENCV_${_m}_LIBRARY)
      message(FATAL_ERROR "OpenCV ${_m} not found: install libopencv-${_m}-dev (Debian/Ubuntu; scripts/setup.sh does) "
                          "or point OpenCV_DIR at an OpenCV with core, imgproc and imgcodecs")
    endif()
    if(NOT TARGET opencv_${_m})
      add_library(opencv_${_m} UNKNOWN IMPORTED)
      set_target_properties(opencv_${_m} PROPERTIES IMPORTED_LOCATION "${TLC_OPENCV_${_m}_LIBRARY}"
                                                    INTERFACE_INCLUDE_DIRECTORIES "${TLC_OPENCV_INCLUDE_DIR}")
    endif()
    list(APPEND OpenCV_LIBS opencv_${_m})
  endforeach()
  set(OpenCV_FOUND TRUE)
  message(STATUS "tlc: OpenCV core/imgproc/imgcodecs from ${TLC_OPENCV_INCLUDE_DIR} (no OpenCVConfig.cmake)")
endif()
