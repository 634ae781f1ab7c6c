# OpenVINO's C++ runtime, the engine of the frozen passes on the CPU (tlc/engine.h, docs/ENGINES.md). It
# comes from PyPI's openvino wheel in the project venv (requirements.txt), which ships the headers, the
# libraries and OpenVINOConfig.cmake, the way torch's wheel ships LibTorch. TLC_OPENVINO_DIR names another
# folder holding OpenVINOConfig.cmake. Without it the build still works: TorchScript runs every pass.
option(TLC_WITH_OPENVINO "Link OpenVINO's CPU runtime as the engine of the frozen backbone passes" ON)
set(TLC_OPENVINO_DIR "" CACHE PATH "Folder with OpenVINOConfig.cmake (default: the openvino package of TLC_PYTHON)")
if(TLC_WITH_OPENVINO)
  set(_tlc_ov_hints ${TLC_OPENVINO_DIR})
  if(TLC_PYTHON)
    # find_spec, not import: importing openvino costs seconds and is not needed to find its folder.
    execute_process(COMMAND ${TLC_PYTHON} -c
                    "import importlib.util, os; s = importlib.util.find_spec('openvino'); print(os.path.join(os.path.dirname(s.origin), 'cmake') if s else '')"
                    OUTPUT_VARIABLE _tlc_ov_py OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    list(APPEND _tlc_ov_hints ${_tlc_ov_py})
  endif()
  find_package(OpenVINO CONFIG QUIET COMPONENTS Runtime HINTS ${_tlc_ov_hints} NO_DEFAULT_PATH)
  if(NOT OpenVINO_FOUND)
    find_package(OpenVINO CONFIG QUIET COMPONENTS Runtime)
  endif()
  if(NOT OpenVINO_FOUND)
    message(STATUS "tlc: OpenVINO not found (pip install openvino into the venv: scripts/setup.sh); frozen passes run on TorchScript")
    set(TLC_WITH_OPENVINO OFF)
  endif()
endif()
message(STATUS "tlc: TLC_WITH_OPENVINO: ${TLC_WITH_OPENVINO} ${OpenVINO_VERSION}")
