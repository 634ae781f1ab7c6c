#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>

#include "commands.h"
#include "tlc/run.h"

namespace tlc::cli {
namespace {

int run_evaluate_cmd(const EvaluateOptions& o, bool json) {
  EvaluateResult r = run_evaluate(o);
  const auto& e = r.eval;
  // With k at least the number of classes every true class is in the top k: a figure of 1 that says nothing.
  const bool top_k_shown = static_cast<size_t>(e.top_k) < r.classes.size();
  if (json) {
    nlohmann::json per = nlohmann::json::array();
    for (size_t c = 0; c < r.classes.size(); ++c)
      per.push_back({{"class", r.classes[c]}, {"precision", e.precision[c]}, {"recall", e.recall[c]}, {"f1", e.f1[c]},
                     {"support", e.support[c]}});
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& s : r.skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
    nlohmann::json cost = nullptr;
    if (r.int8_cost)
      cost = {{"fp32_accuracy", r.int8_cost->fp32.accuracy},
              {"fp32_loss", r.int8_cost->fp32.loss},
              {"accuracy_points", 100.0 * (e.accuracy - r.int8_cost->fp32.accuracy)},
              {"agreement", r.int8_cost->agreement},
              {"max_probability_diff", r.int8_cost->max_probability_diff},
              {"fp32_engine", r.int8_cost->fp32_engine}};
    std::cout << nlohmann::json{{"source", r.source},
                                {"count", e.count},
                                {"loss", e.loss},
                                {"accuracy", e.accuracy},
                                {"top_k", top_k_shown ? nlohmann::json(e.top_k) : nlohmann::json(nullptr)},
                                {"top_k_accuracy", top_k_shown ? nlohmann::json(e.top_k_accuracy) : nlohmann::json(nullptr)},
                                {"classes", r.classes},
                                {"per_class", per},
                                {"confusion", e.confusion},
                                {"misclassified", r.misclassified.size()},
                                {"skipped", skipped},
                                {"confusion_png", r.confusion_png},
                                {"misclassified_csv", r.misclassified_csv},
                                {"worst_png", r.worst_png},
                                {"engine", r.engine},
                                {"int8_cost", cost},
                                {"tta", r.tta ? nlohmann::json{{"views", r.tta->views},
                                                               {"augment", r.tta->augment},
                                                               {"plain_accuracy", r.tta->plain.accuracy},
                                                               {"plain_loss", r.tta->plain.loss},
                                                               {"accuracy_points", 100.0 * (e.accuracy - r.tta->plain.accuracy)}}
                                              : nlohmann::json(nullptr)}}
                     .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return 0;
  }
  std::cout << "tlc evaluate: " << o.model_path << " on " << r.source << "\n";
  std::cout << "  " << r.engine << "\n";
  if (!r.skipped.empty()) std::cout << "  skipped " << r.skipped.size() << " file(s) that are not usable images\n";
  std::cout << std::fixed << std::setprecision(4) << "images: " << e.count << "\nloss: " << e.loss
            << "\naccuracy: " << e.accuracy << "\n";
  if (top_k_shown) std::cout << "top-" << e.top_k << " accuracy: " << e.top_k_accuracy << "\n";
  if (const auto& t = r.tta)
    std::cout << "test-time augmentation: " << t->views << " view(s) of " << t->augment << " blended with the plain "
              << "prediction; without it: accuracy " << t->plain.accuracy << " (" << std::showpos << std::setprecision(2)
              << 100.0 * (e.accuracy - t->plain.accuracy) << std::noshowpos << " points with TTA), loss "
              << std::setprecision(4) << t->plain.loss << "\n";
  if (const auto& c = r.int8_cost) {
    const double points = 100.0 * (e.accuracy - c->fp32.accuracy);
    std::cout << "int8 against fp32 on the same images: accuracy " << e.accuracy << " vs " << c->fp32.accuracy << " ("
              << std::showpos << std::setprecision(2) << points << std::noshowpos << " points), loss " << std::setprecision(4)
              << e.loss << " vs " << c->fp32.loss << ", the same top class for " << std::setprecision(1)
              << 100.0 * c->agreement << "% of the images, largest probability difference " << std::setprecision(4)
              << c->max_probability_diff << "\n  (fp32 " << c->fp32_engine << ")\n";
  }
  std::cout << "\n";
  size_t w = 10;
  for (const auto& c : r.classes) w = std::max(w, c.size() + 2);
  std::cout << std::left << std::setw(static_cast<int>(w)) << "class" << std::right << std::setw(10) << "precision"
            << std::setw(10) << "recall" << std::setw(10) << "f1" << std::setw(10) << "support" << "\n";
  for (size_t c = 0; c < r.classes.size(); ++c)
    std::cout << std::left << std::setw(static_cast<int>(w)) << r.classes[c] << std::right << std::setw(10)
              << e.precision[c] << std::setw(10) << e.recall[c] << std::setw(10) << e.f1[c] << std::setw(10)
              << e.support[c] << "\n";
  std::cout << "\n" << confusion_table(e, r.classes) << "\nconfusion matrix: " << r.confusion_png << "\n"
            << r.misclassified.size() << " misclassified: " << r.misclassified_csv << "\n";
  if (!r.worst_png.empty()) std::cout << "highest-loss images: " << r.worst_png << "\n";
  return 0;
}

}  // namespace

void setup_evaluate(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<EvaluateOptions>();
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "evaluate", "Score a trained model on labelled images: loss, accuracy, top-k accuracy, per-class "
                  "precision/recall/F1, the confusion matrix (table and confusion.png) and misclassified.csv.");
  sub->add_option("model", o->model_path, "model.pt written by `tlc train`, or its run folder")->required();
  sub->add_option("data_dir", o->data_dir,
                  "Folder with one sub-folder per class (default: the run's own test split, from splits.csv)");
  sub->add_option("--out", o->out_dir, "Where to write confusion.png and misclassified.csv (default: beside the model)");
  sub->add_option("--top-k", o->top_k, "k of the top-k accuracy (not shown when k >= the number of classes)")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--threads", o->threads, "Decoding threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  add_engine_flags(sub, o->engine, o->precision);
  add_calibration_flag(sub, o->calibration_dir);
  sub->add_option("--device", o->device, "auto (CUDA when present), cpu or cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_model_input_flags(sub, o->resize, o->max_pixels);
  add_tta_flags(sub, o->tta, o->tta_augment);
  add_label_flags(sub, o->labels);
  sub->add_option("--show", o->show,
                  "Also write a contact sheet PNG of the highest-loss images with their true and predicted labels "
                  "and probabilities (fastai's plot_top_losses)");
  sub->add_option("--show-count", o->show_count, "How many images the --show sheet holds")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_flag("--json", *json, "Print the results as JSON");
  sub->callback([o, json, exit_code] { *exit_code = run_evaluate_cmd(*o, *json); });
}

}  // namespace tlc::cli
