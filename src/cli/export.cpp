// `tlc export MODEL --onnx OUT.onnx`: deployment formats. The ONNX export is torch's TorchScript exporter, which
// lives in Python, so this command runs the Python package's `python -m tlc export-onnx` (python/tlc/_onnx.py)
// with the project's Python: $TLC_PYTHON, else the Python the package was built for, else python3 on PATH; the
// build's package folder goes first on PYTHONPATH when it is there (a `pip install .` needs none).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "tlc/error.h"
#include "tlc/interrupt.h"

#ifndef TLC_PACKAGE_PYTHON
#define TLC_PACKAGE_PYTHON ""
#endif
#ifndef TLC_PACKAGE_DIR
#define TLC_PACKAGE_DIR ""
#endif

extern char** environ;

namespace tlc::cli {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string model;
  std::string onnx;
  int opset = 17;
};

std::string project_python() {
  if (const char* p = std::getenv("TLC_PYTHON"); p && *p) return p;
  const std::string built = TLC_PACKAGE_PYTHON;
  if (!built.empty() && fs::exists(built)) return built;
  return "python3";
}

// The environment for the child: ours, with the build's package folder first on PYTHONPATH.
std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  const std::string pkg = TLC_PACKAGE_DIR;
  bool use_pkg = false;  // only a built package (its extension there), else an installed one is not hidden
  if (!pkg.empty() && fs::is_directory(fs::path(pkg) / "tlc"))
    for (const auto& e : fs::directory_iterator(fs::path(pkg) / "tlc"))
      use_pkg = use_pkg || e.path().filename().string().rfind("_core", 0) == 0;
  std::string pythonpath = use_pkg ? pkg : "";
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "PYTHONSAFEPATH=", 15) == 0) continue;
    if (std::strncmp(*e, "PYTHONPATH=", 11) == 0) {
      const std::string old = *e + 11;
      if (!old.empty()) pythonpath += (pythonpath.empty() ? "" : ":") + old;
    } else {
      env.emplace_back(*e);
    }
  }
  if (!pythonpath.empty()) env.push_back("PYTHONPATH=" + pythonpath);
  // `python -m` would put the current directory first on sys.path: a tlc/ folder there must not be imported.
  env.push_back("PYTHONSAFEPATH=1");
  return env;
}

int run_export(const ExportOptions& o) {
  if (!fs::exists(o.model))
    throw Error("model file " + o.model + " does not exist: give a model.pt written by `tlc train` (or its run folder)");
  const std::string py = project_python();
  std::vector<std::string> args = {py, "-m", "tlc", "export-onnx", o.model, o.onnx, "--opset", std::to_string(o.opset)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = child_environment();
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, py.c_str(), nullptr, nullptr, argv.data(), envp.data());
  if (err != 0)
    throw Error("tlc export --onnx runs the Python package (python -m tlc export-onnx), but " + py +
                " cannot be started (" + std::strerror(err) + "); set TLC_PYTHON to the project's Python "
                "(.venv/bin/python after scripts/setup.sh)");
  // Wait, passing an interruption of tlc (SIGINT/SIGTERM: tlc/interrupt.h) on to the export.
  int status = 0;
  bool forwarded = false;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw Error(std::string("waiting for the ONNX export failed: ") + std::strerror(errno));
    if (interrupt_requested() && !forwarded) {
      kill(pid, SIGTERM);
      forwarded = true;
    }
    usleep(20'000);
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  const int code = WEXITSTATUS(status);
  // 0: written; 2: the exporter said what was wrong. Anything else is Python failing before it (no torch, no
  // tlc package in that Python): say which Python ran and how to choose another.
  if (code != 0 && code != 2 && !interrupt_requested())
    std::cerr << "tlc: error: the ONNX export with " << py << " failed (exit " << code
              << "); it needs torch, onnx and tlc's Python package: set TLC_PYTHON to the project's "
                 ".venv/bin/python (scripts/setup.sh, scripts/build.sh)\n";
  return code;
}

}  // namespace

void setup_export(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<ExportOptions>();
  CLI::App* sub = app.add_subcommand(
      "export", "Write a model for serving without tlc: --onnx OUT.onnx (ONNX Runtime, Triton's ONNX backend). "
                "Runs the Python package's exporter (python -m tlc export-onnx; it needs the onnx package) with "
                "$TLC_PYTHON or the project's Python.");
  sub->add_option("model", opt->model, "model.pt written by `tlc train`, or its run folder")->required();
  sub->add_option("--onnx", opt->onnx,
                  "The ONNX file to write: input `images` uint8 [batch,S,S,3] RGB at the model's size, output "
                  "`probabilities` [batch,K]; class names and preprocessing in its metadata")
      ->required();
  sub->add_option("--opset", opt->opset, "ONNX opset")->capture_default_str()->check(CLI::Range(9, 23));
  sub->callback([opt, exit_code] { *exit_code = run_export(*opt); });
}

}  // namespace tlc::cli
