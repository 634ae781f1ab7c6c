// `tlc export MODEL --onnx OUT.onnx`: deployment formats. The ONNX export is torch's TorchScript exporter, which
// lives in Python, so this command runs the Python package's `python -m tlc export-onnx` (python/tlc/_onnx.py)
// with the project's Python (tlc/subprocess.h: $TLC_PYTHON, else the build's, else python3 on PATH); the
// build's package folder goes first on PYTHONPATH when it is there (a `pip install .` needs none).
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "tlc/error.h"
#include "tlc/interrupt.h"
#include "tlc/subprocess.h"

#ifndef TLC_PACKAGE_DIR
#define TLC_PACKAGE_DIR ""
#endif

namespace tlc::cli {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string model;
  std::string onnx;
  int opset = 17;
};

// The child's extra environment: the build's package folder first on PYTHONPATH, and PYTHONSAFEPATH, since
// `python -m` would put the current directory first on sys.path (a tlc/ folder there must not be imported).
std::vector<std::string> child_environment() {
  const std::string pkg = TLC_PACKAGE_DIR;
  bool use_pkg = false;  // only a built package (its extension there), else an installed one is not hidden
  std::error_code ec;
  if (!pkg.empty() && fs::is_directory(fs::path(pkg) / "tlc", ec))
    for (const auto& e : fs::directory_iterator(fs::path(pkg) / "tlc"))
      use_pkg = use_pkg || e.path().filename().string().rfind("_core", 0) == 0;
  std::string pythonpath = use_pkg ? pkg : "";
  if (const char* old = std::getenv("PYTHONPATH"); old && *old) pythonpath += (pythonpath.empty() ? "" : ":") + std::string(old);
  std::vector<std::string> env = {"PYTHONSAFEPATH=1"};
  if (!pythonpath.empty()) env.push_back("PYTHONPATH=" + pythonpath);
  return env;
}

int run_export(const ExportOptions& o) {
  if (!fs::exists(o.model))
    throw Error("model file " + o.model + " does not exist: give a model.pt written by `tlc train` (or its run folder)");
  // $TLC_PYTHON, else the build's Python (tlc/subprocess.h). The child's output goes to the terminal.
  const std::string py = project_python();
  ChildResult r = run_child({py, "-m", "tlc", "export-onnx", o.model, o.onnx, "--opset", std::to_string(o.opset)},
                            child_environment(), /*capture=*/false);
  if (!r.started)
    throw Error("tlc export --onnx runs the Python package (python -m tlc export-onnx), but " + py +
                " cannot be started (" + r.start_error + "); set TLC_PYTHON to the project's Python "
                "(.venv/bin/python after scripts/setup.sh)");
  if (interrupt_requested()) return r.signal != 0 ? 128 + r.signal : r.exit_code;
  // 0: written; 2: the exporter said what was wrong. Anything else is Python failing before it (no torch, no
  // tlc package, a crash loading a foreign torch): say which Python ran, how it ended, and how to choose another.
  if (r.signal != 0 || (r.exit_code != 0 && r.exit_code != 2)) {
    std::cerr << "tlc: error: the ONNX export with " << py << " " << describe_child_end(r)
              << "; it needs torch, onnx and tlc's Python package: set TLC_PYTHON to the project's "
                 ".venv/bin/python (scripts/setup.sh, scripts/build.sh)\n";
    return r.signal != 0 ? 128 + r.signal : r.exit_code;
  }
  return r.exit_code;
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
