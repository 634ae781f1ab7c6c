// The estimator: tlc::TransferClassifier built from a backbone file and options (as `tlc train` builds it), or
// loaded from a model file; fit / predict_proba / score / save with the GIL released.
#include <optional>

#include <pybind11/stl.h>

#include "binding.h"
#include "tlc/preprocess.h"
#include "tlc/trainer.h"

namespace tlc::py {

namespace {

// The options the Python estimator passes, by name; an unknown key is a bug in the Python layer.
TrainOptions train_options(const pyb::dict& d) {
  TrainOptions o;
  for (auto kv : d) {
    const auto key = kv.first.cast<std::string>();
    auto v = pyb::reinterpret_borrow<pyb::object>(kv.second);
    if (key == "epochs") o.epochs = v.cast<int>();
    else if (key == "batch_size") o.batch_size = v.cast<int64_t>();
    else if (key == "optimizer") o.optimizer.name = v.cast<std::string>();
    else if (key == "lr") o.optimizer.lr = v.cast<double>();
    else if (key == "momentum") o.optimizer.momentum = v.cast<double>();
    else if (key == "hidden") o.hidden = v.cast<int64_t>();
    else if (key == "dropout") o.dropout = v.cast<double>();
    else if (key == "seed") o.seed = v.cast<uint64_t>();
    else if (key == "device") o.device = v.cast<std::string>();
    else if (key == "augment") o.augment = v.cast<std::string>();
    else if (key == "augment_views") o.augment_views = v.cast<int>();
    else if (key == "precision") o.precision = v.cast<std::string>();
    else if (key == "engine") o.engine = v.cast<std::string>();
    else if (key == "fine_tune_layers") o.fine_tune_layers = v.cast<int>();
    else if (key == "fine_tune_blocks") o.fine_tune_blocks = v.cast<int>();
    else if (key == "fine_tune_epochs") o.fine_tune_epochs = v.cast<int>();
    else if (key == "fine_tune_lr") o.fine_tune_lr = v.cast<double>();
    else if (key == "cache_features") o.cache_features = v.cast<std::string>();
    else if (key == "cache_dir") o.cache_dir = v.cast<std::string>();
    else if (key == "cache_memory_mb") o.cache_memory_mb = v.cast<int64_t>();
    else if (key == "keep") o.keep = v.cast<std::string>();
    else if (key == "patience") o.patience = v.cast<int>();
    else if (key == "lr_schedule") o.lr_schedule = v.cast<std::string>();
    else if (key == "class_weights") o.class_weights = v.cast<bool>();
    else throw Error("tlc._core: unknown training option '" + key + "'");
  }
  return o;
}

pyb::dict epoch_dict(const EpochStats& e) {
  pyb::dict d;
  d["epoch"] = e.epoch;
  d["phase"] = e.phase;
  d["cache"] = e.cache;
  d["lr"] = e.lr;
  d["loss"] = e.loss;
  d["acc"] = e.acc;
  d["val_loss"] = e.val_loss;  // NaN without a validation set
  d["val_acc"] = e.val_acc;
  d["seconds"] = e.seconds;
  d["images_per_second"] = e.images_per_second;
  return d;
}

TransferClassifier create(const std::string& backbone, const std::vector<std::string>& classes, int64_t image_size,
                          const std::string& normalize, const std::string& resize, const pyb::dict& options) {
  TrainOptions opt = train_options(options);
  return long_call([&] {
    Backbone b = Backbone::load_cached(backbone);  // each fit of a model search loads the same file
    Preprocess pre;
    pre.image_size = image_size;
    pre.mode = choose_normalize(normalize, b.info()).mode;
    pre.resize = parse_resize_mode(resize);
    return TransferClassifier(std::move(b), classes, pre, std::move(opt));
  });
}

pyb::list fit(TransferClassifier& clf, const ImageSet& train, const ImageSet* val, const pyb::object& on_epoch) {
  TransferClassifier::EpochCallback cb;
  if (!on_epoch.is_none())
    cb = [&on_epoch](const EpochStats& e) {
      pyb::gil_scoped_acquire gil;
      on_epoch(epoch_dict(e));
    };
  auto history = long_call([&] { return clf.fit(train, val, cb); });
  pyb::list out;
  for (const auto& e : history) out.append(epoch_dict(e));
  return out;
}

}  // namespace

void bind_classifier(pyb::module_& m) {
  pyb::class_<TransferClassifier>(m, "Classifier", "tlc::TransferClassifier (the C++ estimator)")
      .def(pyb::init(&create), pyb::arg("backbone"), pyb::arg("classes"), pyb::arg("image_size"),
           pyb::arg("normalize") = "auto", pyb::arg("resize") = "stretch", pyb::arg("options") = pyb::dict())
      .def_static("load", [](const std::string& path, const pyb::dict& options) {
        TrainOptions opt = train_options(options);
        return long_call([&] { return TransferClassifier::load(path, std::move(opt)); });
      }, pyb::arg("path"), pyb::arg("options") = pyb::dict())
      .def("fit", &fit, pyb::arg("train"), pyb::arg("val") = nullptr, pyb::arg("on_epoch") = pyb::none(),
           "Trains; returns the history (one dict per epoch)")
      .def("predict_proba", [](TransferClassifier& c, const at::Tensor& u8) {
        return long_call([&] { return c.predict_proba(u8); });
      }, pyb::arg("images"), "Probabilities [N,K] (CPU float) of uint8 [N,S,S,3] images at image_size")
      .def("predict_proba_features", [](TransferClassifier& c, const at::Tensor& pooled) {
        return long_call([&] { return c.predict_proba_from_features(pooled); });
      }, pyb::arg("features"), "Probabilities [N,K] from pooled features [N,C] of the file's backbone")
      .def("score", [](TransferClassifier& c, const ImageSet& s) {
        EvalStats r = long_call([&] { return c.score(s); });
        return pyb::make_tuple(r.loss, r.acc, r.count);
      }, pyb::arg("data"), "(mean loss, accuracy, count)")
      .def("save", [](TransferClassifier& c, const std::string& path) { long_call([&] { c.save(path); }); },
           pyb::arg("path"), "Writes the self-contained model file the CLI writes")
      .def("set_progress", [](TransferClassifier& c, const pyb::object& fn) {
        if (fn.is_none()) return c.set_progress({});
        c.set_progress([fn](const std::string& label, int64_t done, int64_t total) {
          pyb::gil_scoped_acquire gil;
          fn(label, done, total);
        });
      }, pyb::arg("fn"), "fn(label, done, total) for long loops, or None")
      .def("pooled_features", [](TransferClassifier& c, const ImageSet& s, bool flipped) {
        return long_call([&] { return c.pooled_features(s, flipped); });
      }, pyb::arg("data"), pyb::arg("flipped") = false,
         "Pooled features [N,C] of a set (one frozen backbone pass), on the classifier's device")
      .def("view_features", [](TransferClassifier& c, const ImageSet& s, int64_t view) {
        return long_call([&] { return c.view_features(s, view); });
      }, pyb::arg("data"), pyb::arg("view"),
         "Pooled features [N,C] of augmented view `view` of each image (the pool of augment_views=K: 0..K-1)")
      .def("predict_proba_tta", [](TransferClassifier& c, const at::Tensor& u8, int views, const std::string& spec) {
        return long_call([&] { return c.predict_proba_tta(u8, views, parse_augment(spec)); });
      }, pyb::arg("images"), pyb::arg("views"), pyb::arg("augment"),
         "Test-time augmentation: 0.25 x plain + 0.75 x the mean of `views` augmented predictions")
      .def("use_features", [](TransferClassifier& c, const std::string& role, const at::Tensor& plain,
                              const std::optional<at::Tensor>& flipped, const std::optional<at::Tensor>& views) {
        c.use_features(role, plain, flipped.value_or(at::Tensor()), views.value_or(at::Tensor()));
      }, pyb::arg("role"), pyb::arg("plain"), pyb::arg("flipped") = pyb::none(), pyb::arg("views") = pyb::none(),
           "Features for the next fit's head phase (role train or val), used when their rows match the set")
      .def_property_readonly("classes", &TransferClassifier::classes)
      .def_property_readonly("image_size", [](TransferClassifier& c) { return c.preprocess().image_size; })
      .def_property_readonly("normalize", [](TransferClassifier& c) { return to_string(c.preprocess().mode); })
      .def_property_readonly("resize", [](TransferClassifier& c) { return to_string(c.preprocess().resize); })
      .def_property_readonly("trained_augment", &TransferClassifier::trained_augment,
                             "The augmentation the weights were trained with (fit's, or the loaded file's)")
      .def_property_readonly("device", [](TransferClassifier& c) { return c.device().str(); })
      .def_property_readonly("engine", [](TransferClassifier& c) { return c.backbone().prepare_engine(); })
      .def_property_readonly("engine_choice", [](TransferClassifier& c) {
        const auto& ch = c.backbone().engine_choice();
        return ch.engine + " " + ch.precision;  // decided at construction; the engine itself is built on first use
      })
      .def_property_readonly("frozen_dtype", [](TransferClassifier& c) {
        return std::string(c10::toString(c.backbone().frozen_dtype()));
      })
      .def_property_readonly("backbone_path", [](TransferClassifier& c) { return c.backbone().info().path; })
      .def_property_readonly("feature_width", [](TransferClassifier& c) {
        return c.backbone().info().output_channels;
      })
      .def_property_readonly("used_first_pass", &TransferClassifier::used_first_pass);
}

}  // namespace tlc::py
