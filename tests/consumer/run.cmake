# ctest Package.FindPackageConsumer: installs the built tlc into a temporary prefix, configures and builds
# tests/consumer against it with find_package(tlc), and runs the result. Variables: BINARY_DIR (tlc's build),
# SOURCE_DIR, WORK (a scratch folder), TORCH_PREFIX (cmake prefix), TORCH_ROOT (Torch itself), GENERATOR, BACKBONE.
file(REMOVE_RECURSE "${WORK}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${WORK}/prefix" RESULT_VARIABLE rc
                OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK}/build" -G "${GENERATOR}"
                        "-DCMAKE_PREFIX_PATH=${WORK}/prefix;${TORCH_PREFIX}" -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed:\n${out}\n${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}/build" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "building the consumer failed:\n${out}\n${err}")
endif()
execute_process(COMMAND "${WORK}/build/consumer" "${BACKBONE}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc OR NOT out MATCHES "channels 16" OR NOT out MATCHES "97% dog, and 3% cat")
  message(FATAL_ERROR "the consumer ran wrong (${rc}):\n${out}\n${err}")
endif()
message(STATUS "consumer output:\n${out}")
# And the consumer, too, loads only the Torch it was built against.
set(BINARY "${WORK}/build/consumer")
set(TORCH_PREFIX "${TORCH_ROOT}")
include("${SOURCE_DIR}/tests/link_check.cmake")
file(REMOVE_RECURSE "${WORK}")
