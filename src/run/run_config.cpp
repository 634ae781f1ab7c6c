// A run's settings in config.json: written by train, read back by --resume and finetune, and compared with
// the flags given again with --resume.
#include <filesystem>
#include <fstream>
#include <functional>

#include "run_internal.h"
#include "tlc/error.h"
#include "tlc/run_folder.h"

namespace fs = std::filesystem;

namespace tlc::detail {

json train_options_json(const TrainOptions& t) {
  return {{"epochs", t.epochs},
          {"seed", t.seed},
          {"device", t.device},
          {"cache_dir", t.cache_dir},
          {"cache_memory_mb", t.cache_memory_mb},
          {"lr_step_epochs", t.lr_step_epochs},
          {"lr_gamma", t.lr_gamma},
          {"batch_size", t.batch_size},
          {"optimizer", t.optimizer.name},
          {"lr", t.optimizer.lr},
          {"momentum", t.optimizer.momentum},
          {"hidden", t.hidden},
          {"dropout", t.dropout},
          {"augment", t.augment},
          {"augment_views", t.augment_views},
          {"precision", t.precision},
          {"engine", t.engine},
          {"fine_tune_layers", t.fine_tune_layers},
          {"fine_tune_blocks", t.fine_tune_blocks},
          {"fine_tune_epochs", t.fine_tune_epochs},
          {"fine_tune_lr", t.fine_tune_lr},
          {"cache_features", t.cache_features},
          {"keep", t.keep},
          {"patience", t.patience},
          {"lr_schedule", t.lr_schedule},
          {"class_weights", t.class_weights}};
}

TrainOptions train_options_from_json(const json& j) {
  TrainOptions t;
  t.epochs = j.at("epochs");
  t.seed = j.at("seed");
  t.device = j.at("device");
  t.cache_dir = j.at("cache_dir");
  t.cache_memory_mb = j.at("cache_memory_mb");
  t.lr_step_epochs = j.at("lr_step_epochs");
  t.lr_gamma = j.at("lr_gamma");
  t.batch_size = j.at("batch_size");
  t.optimizer.name = j.at("optimizer");
  t.optimizer.lr = j.at("lr");
  t.optimizer.momentum = j.at("momentum");
  t.hidden = j.at("hidden");
  t.dropout = j.at("dropout");
  t.augment = j.at("augment");
  t.augment_views = j.value("augment_views", 0);  // runs from before --augment-views lack it
  t.precision = j.value("precision", "auto");
  t.engine = j.value("engine", "auto");  // runs from before --engine lack it
  t.fine_tune_layers = j.at("fine_tune_layers");
  t.fine_tune_blocks = j.value("fine_tune_blocks", 0);  // runs from before --fine-tune-blocks lack it
  t.fine_tune_epochs = j.at("fine_tune_epochs");
  t.fine_tune_lr = j.at("fine_tune_lr");
  t.cache_features = j.at("cache_features");
  t.keep = j.at("keep");
  t.patience = j.at("patience");
  t.lr_schedule = j.at("lr_schedule");
  t.class_weights = j.at("class_weights");
  return t;
}

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + " is missing or cannot be read");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw Error(path + " cannot be read as JSON (" + std::string(e.what()).substr(0, 200) + ")");
  }
}

TrainRunOptions options_from_config(const json& c, const std::string& run_dir) {
  const std::string base = c.value("cwd", std::string());
  auto path = [&](const char* key) { return resolve_recorded_path(c.value(key, std::string()), base); };
  TrainRunOptions o;
  o.data_dir = path("data_dir");
  o.val_dir = path("val_dir");
  o.test_dir = path("test_dir");
  o.backbone_path = path("backbone_path");
  o.out_dir = run_dir;
  o.val_split = c.at("val_split");
  o.test_split = c.at("test_split");
  o.image_size = c.at("image_size");
  o.normalize = c.at("requested_normalize");
  o.resize = c.value("resize", std::string("stretch"));
  o.labels = {path("labels_csv"), c.value("label_regex", std::string())};
  o.max_pixels = c.at("max_pixels");
  o.strict = c.at("strict");
  o.threads = c.at("threads");
  o.memory_budget_mb = c.at("memory_budget_mb");
  o.train = train_options_from_json(c.at("training"));
  o.train.cache_dir = resolve_recorded_path(o.train.cache_dir, base);
  return o;
}

namespace {

// Every setting `tlc train` takes, by flag: whether --resume may change it, how to read it, how to apply it.
struct Setting {
  const char* flag;
  bool can_change;
  std::function<json(const TrainRunOptions&)> get;
  std::function<void(TrainRunOptions&, const TrainRunOptions&)> apply;
};

#define TLC_SETTING(flag, can, field) \
  Setting { flag, can, [](const TrainRunOptions& o) { return json(o.field); }, \
            [](TrainRunOptions& to, const TrainRunOptions& from) { to.field = from.field; } }

const std::vector<Setting>& settings() {
  static const std::vector<Setting> s = {
      TLC_SETTING("data_dir", false, data_dir), TLC_SETTING("--backbone", false, backbone_path),
      TLC_SETTING("--out", false, out_dir), TLC_SETTING("--val-split", false, val_split),
      TLC_SETTING("--test-split", false, test_split), TLC_SETTING("--val-dir", false, val_dir),
      TLC_SETTING("--test-dir", false, test_dir), TLC_SETTING("--seed", false, train.seed),
      TLC_SETTING("--image-size", false, image_size), TLC_SETTING("--normalize", false, normalize),
      TLC_SETTING("--resize", false, resize), TLC_SETTING("--labels", false, labels.csv),
      TLC_SETTING("--label-regex", false, labels.regex),
      TLC_SETTING("--epochs", true, train.epochs), TLC_SETTING("--lr", false, train.optimizer.lr),
      TLC_SETTING("--hidden", false, train.hidden), TLC_SETTING("--dropout", false, train.dropout),
      TLC_SETTING("--fine-tune-layers", false, train.fine_tune_layers),
      TLC_SETTING("--fine-tune-blocks", false, train.fine_tune_blocks),
      TLC_SETTING("--fine-tune-epochs", true, train.fine_tune_epochs),
      TLC_SETTING("--fine-tune-lr", false, train.fine_tune_lr), TLC_SETTING("--batch-size", false, train.batch_size),
      TLC_SETTING("--optimizer", false, train.optimizer.name), TLC_SETTING("--momentum", false, train.optimizer.momentum),
      TLC_SETTING("--augment", false, train.augment),
      TLC_SETTING("--augment-views", false, train.augment_views), TLC_SETTING("--cache-features", true, train.cache_features),
      TLC_SETTING("--cache-dir", true, train.cache_dir), TLC_SETTING("--cache-memory-mb", true, train.cache_memory_mb),
      TLC_SETTING("--keep", false, train.keep), TLC_SETTING("--patience", false, train.patience),
      TLC_SETTING("--lr-schedule", false, train.lr_schedule), TLC_SETTING("--lr-step-epochs", false, train.lr_step_epochs),
      TLC_SETTING("--lr-gamma", false, train.lr_gamma), TLC_SETTING("--class-weights", false, train.class_weights),
      TLC_SETTING("--device", true, train.device), TLC_SETTING("--precision", false, train.precision),
      TLC_SETTING("--engine", false, train.engine),
      TLC_SETTING("--threads", true, threads), TLC_SETTING("--max-pixels", false, max_pixels),
      TLC_SETTING("--memory-budget-mb", true, memory_budget_mb), TLC_SETTING("--strict", false, strict),
  };
  return s;
}
#undef TLC_SETTING

std::string shown(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

TrainRunOptions apply_resume_request(const TrainRunOptions& stored, const ResumeRequest& req) {
  TrainRunOptions o = stored;
  TrainRunOptions given = req.values;
  // Paths compare in their absolute form.
  for (std::string* p : {&given.data_dir, &given.backbone_path, &given.out_dir, &given.val_dir, &given.test_dir,
                         &given.train.cache_dir, &given.labels.csv})
    *p = absolute_path(*p);
  std::vector<std::string> refused;
  for (const std::string& flag : req.given) {
    for (const Setting& s : settings()) {
      if (flag != s.flag) continue;
      const json was = s.get(stored), now = s.get(given);
      if (s.can_change) s.apply(o, given);
      else if (was != now)
        refused.push_back((flag == "data_dir" ? "DATA_DIR" : flag) + " " + shown(now) + " (the run has " +
                          (shown(was).empty() ? "none" : shown(was)) + ")");
    }
  }
  if (!refused.empty()) {
    std::string list;
    for (const auto& r : refused) list += "\n  " + r;
    throw Error("--resume continues " + stored.out_dir + " with the settings in its config.json, and these differ:" +
                list + "\nonly --epochs, --fine-tune-epochs, --device, --threads, --memory-budget-mb, --cache-features, "
                "--cache-dir, --cache-memory-mb and the output flags may change; drop the others, or start a new run "
                "with --out");
  }
  o.verbosity = req.values.verbosity;
  o.progress = req.values.progress;
  return o;
}

}  // namespace tlc::detail
