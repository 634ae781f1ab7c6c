#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "tlc/run.h"

namespace tlc::cli {
namespace {

int run_bench_cmd(const BenchOptions& o, bool json) {
  std::ostringstream quiet;
  auto figs = run_bench(o, json ? static_cast<std::ostream&>(quiet) : std::cout);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& f : figs) out.push_back({{"name", f.name}, {"value", f.value}, {"unit", f.unit}, {"detail", f.detail}});
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(16) << "figure" << std::right << std::setw(14) << "value" << "  "
            << std::left << std::setw(7) << "unit" << "detail\n";
  for (const auto& f : figs)
    std::cout << std::left << std::setw(16) << f.name << std::right << std::setw(14) << std::fixed
              << std::setprecision(1) << f.value << "  " << std::left << std::setw(7) << f.unit << f.detail << "\n";
  return 0;
}

}  // namespace

void setup_bench(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BenchOptions>();
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("bench", "Measure this machine: decode+resize img/s, normalize GB/s and "
                                              "backbone img/s (medians over repeats).");
  sub->add_option("--backbone", o->backbone_path, "Backbone .pt to time (omit to skip that figure)")->check(CLI::ExistingFile);
  sub->add_option("--images", o->images_dir, "Folder of images (class sub-folders) to decode; default: synthetic "
                                             "500x375 JPEGs")->check(CLI::ExistingDirectory);
  sub->add_option("--count", o->images, "How many images to decode")->capture_default_str()->check(CLI::Range(1, 1000000));
  sub->add_option("--batch-size", o->batch_size, "Batch for normalize and backbone")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--image-size", o->image_size, "Image side in pixels")->capture_default_str()->check(CLI::Range(8, 4096));
  sub->add_option("--iterations", o->iterations, "Timed repeats per figure (median reported)")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("--threads", o->threads, "Decoding threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_engine_flags(sub, o->engine, o->precision);
  sub->add_flag("!--no-peers", o->peers,
                "Skip the peers: by default the backbone figure is followed by the same file on PyTorch and on "
                "OpenVINO's defaults (same batch, size and threads, run by $TLC_PYTHON or the project's Python), "
                "with tlc's ratio to each");
  add_decode_flag(sub, o->decode);
  sub->add_flag("--json", *json, "Print the figures as JSON");
  sub->callback([o, json, exit_code] { *exit_code = run_bench_cmd(*o, *json); });
}

}  // namespace tlc::cli
