#pragma once
// Child processes tlc starts (a Python with torch for what only Python can do: the OpenVINO conversion, the
// ONNX export), and the words for how they ended.
#include <string>
#include <vector>

namespace tlc {

// The Python tlc runs for such work: $TLC_PYTHON, else the Python the build was configured with (the
// project's .venv/bin/python), else python3 on PATH.
std::string project_python();

struct ChildResult {
  bool started = false;
  std::string start_error;  // why it could not be started (strerror), when !started
  int exit_code = -1;       // when it exited; -1 when how it ended is unknown (waiting for it failed)
  int signal = 0;           // when a signal ended it
  std::string output;       // its stderr (and stdout), when captured; at most 64 KiB, the last part kept
};

// Runs argv (argv[0] looked up on PATH) with the environment plus `env_extra` ("NAME=value", replacing a
// variable of that name) and waits; with capture, its stdout and stderr are collected instead of shown. A
// tlc interruption (SIGINT/SIGTERM, tlc/interrupt.h) is passed on to the child as SIGTERM.
ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra, bool capture);

// "exit 3", "signal 11 (Segmentation fault)", "could not be started (No such file or directory)".
std::string describe_child_end(const ChildResult& r);

}  // namespace tlc
