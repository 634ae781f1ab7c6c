#include <torch/script.h>

#include <iomanip>
#include <iostream>
#include <map>

#include "commands.h"
#include "tlc/backbone.h"
#include "tlc/model_file.h"

namespace tlc::cli {
namespace {

// The block table (stem, stages, ...) of the block layout; for the flat `body` layout every layer is a block and
// the layer table below shows their shapes instead.
void print_blocks(Backbone& b, const std::map<std::string, std::string>& shape_of, int64_t size) {
  auto blocks = b.blocks();
  if (blocks.empty() || blocks.front().name.rfind("blocks.", 0) != 0) return;
  std::cout << "blocks (output shapes for a " << size << "x" << size << " input):\n";
  std::cout << std::left << std::setw(6) << "index" << std::setw(24) << "block" << std::setw(22) << "type"
            << std::setw(22) << "output" << std::right << std::setw(12) << "params" << std::setw(8) << "layers"
            << "  trainable\n";
  for (const auto& bl : blocks) {
    auto it = shape_of.find(bl.name);
    std::cout << std::left << std::setw(6) << bl.index << std::setw(24) << bl.name << std::setw(22) << bl.type
              << std::setw(22) << (it == shape_of.end() ? "-" : it->second) << std::right << std::setw(12)
              << bl.params << std::setw(8) << bl.layers_with_params << "  " << (bl.trainable ? "yes" : "no") << "\n";
  }
  std::cout << blocks.size() << " blocks: --fine-tune-blocks N unfreezes the last N with parameters (= "
            << "--fine-tune-layers with the sum of their `layers` column); the frozen blocks before them are what "
            << "the prefix cache keeps\n\n";
}

void print_layers(Backbone& b, int64_t size) {
  auto shapes = b.layer_output_shapes(size);
  std::map<std::string, std::string> shape_of;
  for (const auto& [name, s] : shapes) shape_of[name] = c10::str(c10::IntArrayRef(s));
  print_blocks(b, shape_of, size);
  std::cout << "layers (output shapes for a " << size << "x" << size << " input"
            << (shapes.empty() ? "; not observable inside this traced backbone" : "") << "):\n";
  std::cout << std::left << std::setw(6) << "index" << std::setw(34) << "layer" << std::setw(18) << "type"
            << std::setw(20) << "output" << std::right << std::setw(12) << "params" << "  trainable\n";
  for (const auto& l : b.layers()) {
    auto it = shape_of.find(l.name);
    std::cout << std::left << std::setw(6) << l.index << std::setw(34) << l.name << std::setw(18) << l.type
              << std::setw(20) << (it == shape_of.end() ? "-" : it->second) << std::right << std::setw(12) << l.params
              << "  " << (l.trainable ? "yes" : "no") << "\n";
  }
  std::cout << b.layers_with_parameters() << " layers with parameters: --fine-tune-layers N unfreezes the last N of them\n";
}

int run_inspect(const std::string& path, int64_t size_flag) {
  bool is_model = false;
  try {
    is_model = torch::jit::load(path, torch::kCPU).hasattr("class_names");
  } catch (const c10::Error&) {
    Backbone::load(path);  // throws the error that names the file and the way out
  }
  if (is_model) {
    ModelFile m = ModelFile::load(path);
    Backbone b = Backbone::from_module(m.module().attr("backbone").toModule(), path + " (backbone)");
    std::cout << path << ": tlc model\n  classes (" << m.meta().classes.size() << "):";
    for (const auto& c : m.meta().classes) std::cout << " " << c;
    std::cout << "\n  image size: " << m.meta().image_size << "\n  normalize: " << to_string(m.meta().normalize)
              << "\n  backbone: " << m.meta().backbone_arch << " (" << m.meta().backbone_weights << " weights), "
              << b.info().output_channels << " channels, " << b.parameter_count() << " parameters\n";
    print_layers(b, size_flag > 0 ? size_flag : m.meta().image_size);
    return 0;
  }
  Backbone b = Backbone::load(path);
  const auto& i = b.info();
  std::cout << path << ": backbone\n  arch: " << i.arch << "\n  weights: " << i.weights
            << "\n  normalize: " << (i.normalize.empty() ? "(not stated)" : i.normalize)
            << "\n  trained at: " << (i.input_size ? std::to_string(i.input_size) + "px" : "(not stated)")
            << "\n  output channels: " << i.output_channels << "\n  parameters: " << b.parameter_count() << "\n";
  print_layers(b, size_flag > 0 ? size_flag : (i.input_size > 0 ? i.input_size : 160));
  return 0;
}

}  // namespace

void setup_inspect(CLI::App& app, int* exit_code) {
  auto path = std::make_shared<std::string>();
  auto size = std::make_shared<int64_t>(0);
  CLI::App* sub = app.add_subcommand("inspect", "Show a backbone's or a trained model's metadata and layers (index, "
                                                "name, type, parameters, trainable).");
  sub->add_option("file", *path, "Backbone .pt or model.pt")->required();
  sub->add_option("--image-size", *size, "Input size for the output shapes (default: the model's image size, or the "
                                         "size the backbone was trained at)")
      ->check(CLI::Range(8, 4096));
  sub->callback([path, size, exit_code] { *exit_code = run_inspect(*path, *size); });
}

}  // namespace tlc::cli
