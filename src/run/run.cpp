// Training runs: the pipeline from a folder of images to a run folder with a model file, and the ways a run
// folder goes on: --resume after an interruption, and more epochs for a finished run.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <ostream>

#include "run_internal.h"
#include "../train/checkpoint.h"  // read_checkpoint: what --resume continues
#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/gpu_decode.h"
#include "tlc/preprocess.h"
#include "tlc/run.h"
#include "tlc/run_folder.h"
#include "tlc/text.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {
using namespace detail;

namespace {

// How a run starts: from nothing; from its checkpoint; again from the beginning (it was stopped before its
// first checkpoint); or a finished run going on with more epochs.
enum class Start { fresh, resume, restart, extend };

void make_paths_absolute(TrainRunOptions& o) {
  for (std::string* p : {&o.data_dir, &o.val_dir, &o.test_dir, &o.backbone_path, &o.out_dir, &o.train.cache_dir,
                         &o.labels.csv})
    *p = absolute_path(*p);
}

// config.json: every setting, with absolute paths and the working directory they were resolved in. Keys of
// an earlier config (its creation time, a finetune record) are kept.
json config_json(const TrainRunOptions& opt, const json& earlier, const ImageFolder& folder, const PreparedData* p,
                 const BackboneInfo& bi, const Preprocess& pre, const std::string& device) {
  const auto& t = opt.train;
  json c = earlier.is_object() ? earlier : json::object();
  if (!c.contains("created")) c["created"] = now_iso8601();
  c["cwd"] = fs::current_path().string();
  c["data_dir"] = opt.data_dir;
  c["data_root"] = folder.root;
  c["val_dir"] = opt.val_dir;
  c["test_dir"] = opt.test_dir;
  c["classes"] = folder.classes;
  c["class_folders_hex"] = hex_bytes(folder.class_folders);  // the folder names' bytes (classes are UTF-8)
  if (p) c["counts"] = {{"train", p->train.size()}, {"val", p->val.size()}, {"test", p->test.size()}};
  c["backbone"] = {{"path", bi.path}, {"arch", bi.arch}, {"weights", bi.weights}, {"output_channels", bi.output_channels}};
  c["image_size"] = pre.image_size;
  c["normalize"] = to_string(pre.mode);
  c["resize"] = to_string(pre.resize);
  c["labels_csv"] = opt.labels.csv;
  c["label_regex"] = opt.labels.regex;
  c["val_split"] = opt.val_dir.empty() ? opt.val_split : 0.0;
  c["test_split"] = opt.test_dir.empty() ? opt.test_split : 0.0;
  c["seed"] = t.seed;
  c["max_pixels"] = opt.max_pixels;
  c["training"] = train_options_json(t);
  c["device"] = device;
  c["strict"] = opt.strict;
  c["backbone_path"] = opt.backbone_path;
  c["requested_normalize"] = opt.normalize;
  c["threads"] = opt.threads;
  c["memory_budget_mb"] = opt.memory_budget_mb;
  return c;
}

std::string batch_split_note(int64_t batch, int ranks) {
  return std::to_string(batch) + " (about " + std::to_string((batch + ranks - 1) / ranks) + " per rank)";
}

TrainRunResult train_impl(TrainRunOptions opt, std::ostream& out, Start start, RunFolderGuard& guard,
                          const json& earlier_config, const std::vector<EpochStats>& before) {
  TrainRunResult res;
  NullBuffer null_buf;
  std::ostream null_stream(&null_buf);
  // --quiet: results only, on `out`. In a distributed run only rank 0 prints and writes the run folder; the
  // other ranks say only errors (prefixed with their rank by the CLI).
  const bool writer = world().is_root();
  std::ostream& log = opt.verbosity == 0 || !writer ? null_stream : out;
  std::ostream& result_out = writer ? out : null_stream;
  // Everything that can be checked before the long work is checked first.
  if (opt.image_size < 8 || opt.image_size > 4096) throw Error("--image-size must be between 8 and 4096");
  if (opt.train.epochs < 0) throw Error("--epochs must be >= 0");
  const DataSpec d = data_spec_of(opt);
  ImageFolder folder = list_data(d);
  res.classes = folder.classes;
  Backbone backbone = Backbone::load(opt.backbone_path);
  const BackboneInfo bi = backbone.info();  // a copy: the backbone moves into the classifier below
  // Too many layers or blocks is an error before anything in the run folder is touched (--overwrite).
  if (opt.train.fine_tune_blocks > 0) backbone.layers_in_last_blocks(opt.train.fine_tune_blocks);
  if (opt.train.fine_tune_layers > backbone.layers_with_parameters())
    backbone.unfreeze_last(opt.train.fine_tune_layers);  // throws the error that names the layer count

  Preprocess pre;
  pre.image_size = opt.image_size;
  pre.resize = d.resize;
  const NormalizeChoice norm = choose_normalize(opt.normalize, bi);
  pre.mode = norm.mode;
  if (!norm.warning.empty()) log << "warning: " << norm.warning << "\n";

  res.run_dir = opt.out_dir;
  TrainOptions topt = opt.train;
  topt.checkpoint = path_in(opt.out_dir, "checkpoint.pt");
  topt.resume = start == Start::resume;
  if (start == Start::fresh && opt.overwrite && writer) {
    // --overwrite: the earlier run's files go now, so that the folder never mixes two runs.
    for (const std::string& f : run_folder_files()) fs::remove(path_in(opt.out_dir, f.c_str()));
  }
  if (start == Start::fresh && fs::exists(topt.checkpoint))
    throw Error(opt.out_dir + " holds an interrupted run (checkpoint.pt); continue it with `tlc train --resume " +
                shell_quote(opt.out_dir) + "`, or give --overwrite (or another --out) to start afresh");
  if (start == Start::fresh && fs::exists(path_in(opt.out_dir, "model.pt")))
    throw Error(opt.out_dir + " holds a finished run (model.pt); give --overwrite to replace it, `tlc train --resume " +
                shell_quote(opt.out_dir) + " --epochs N` to train it further, or another --out");
  std::unique_ptr<TransferClassifier> clf;
  if (start == Start::extend) {
    // A finished run goes on from its model file: the weights it ended with, a fresh optimizer.
    topt.continue_from = before;
    topt.cache_dir.clear();  // the disk cache is keyed by the backbone file, which model.pt is not
    clf = std::make_unique<TransferClassifier>(TransferClassifier::load(path_in(opt.out_dir, "model.pt"), topt));
    if (clf->classes() != folder.classes)
      throw Error("the data folder " + folder.root + " now has classes [" + join(folder.classes, ", ") + "] but " +
                  path_in(opt.out_dir, "model.pt") + " was trained on [" + join(clf->classes(), ", ") +
                  "]; continue it on the same class folders, or start a new run with --out");
  } else {
    clf = std::make_unique<TransferClassifier>(std::move(backbone), folder.classes, pre, topt);
  }
  // --fine-tune-blocks N: the classifier resolved it to the layers inside the last N blocks; the log and
  // config.json show that count (and --resume compares the blocks).
  opt.train.fine_tune_layers = clf->options().fine_tune_layers;
  if (writer) guard.create();
  ProgressSink sink(out, opt.progress && opt.verbosity > 0 && writer);
  clf->set_progress([&sink](const std::string& l, int64_t d, int64_t n) { sink(l, d, n); });
  const auto& t = opt.train;
  log << "tlc train: " << folder.root << "\n";
  if (!folder.layout_note.empty()) log << "  layout: " << folder.layout_note << "\n";
  log << "  device: " << clf->device().str() << ", " << resolve_threads(opt.threads) << " decoding threads\n";
  if (world().joined())
    log << "  distributed: " << world().world_size() << " ranks (" << world().backend() << "), global batch "
        << batch_split_note(opt.train.batch_size, world().world_size()) << "\n";
  log << "  backbone: " << bi.path << " (" << bi.arch << ", " << bi.weights << " weights, " << bi.output_channels
      << " channels, " << clf->backbone().parameter_count() << " parameters, frozen)\n";
  // Built here (a compiled engine converts once per backbone), so the log says what runs before it runs.
  calibrate_on_training_images(*clf, d, folder);
  log << "  " << clf->backbone().prepare_engine() << "\n";
  log << "  preprocessing: " << pre.image_size << "x" << pre.image_size << ", normalize " << to_string(pre.mode)
      << " (" << norm.origin << "), resize " << to_string(pre.resize) << "\n";
  if (const AugmentSpec aug = parse_augment(t.augment); !aug.none())
    log << "  augmentation: " << to_string(aug) << " (" << describe(aug) << ")"
        << (aug.flip_only() ? ": both views of each image are used, cached when features are"
            : t.augment_views > 0 ? "; a pool of " + std::to_string(t.augment_views) + " views per image + the plain one, cached"
                                  : "; a fresh view per image per epoch through the backbone")
        << "\n";
  log << "  head: GAP -> " << (t.hidden > 0 ? "Dense(" + std::to_string(t.hidden) + ", relu) -> " : "")
      << (t.dropout > 0 ? "Dropout(" + fmt(t.dropout, 2) + ") -> " : "") << "Dense(" << folder.classes.size() << "); "
      << t.optimizer.name << " lr " << t.optimizer.lr << ", " << count_noun(t.epochs, "epoch") << ", batch " << t.batch_size
      << ", seed " << t.seed << "\n";
  if (t.fine_tune_layers > 0 && t.fine_tune_epochs > 0)
    log << "  then fine-tuning: last " << t.fine_tune_layers << " layer(s) with parameters"
        << (t.fine_tune_blocks > 0 ? " (the last " + count_noun(t.fine_tune_blocks, "block") + ")" : "") << ", "
        << count_noun(t.fine_tune_epochs, "epoch") << " at lr " << t.fine_tune_lr << "\n";
  log << "  classes (" << folder.classes.size() << "): " << join(folder.classes, ", ") << "\n";
  if (start == Start::restart)
    log << "  (stopped before its first checkpoint: training starts again from the beginning)\n";
  if (start == Start::extend)
    log << "  continuing the finished run after epoch " << before.back().epoch << " from its model.pt, with a fresh "
        << t.optimizer.name << " state\n";

  // The configuration is written before the long work, so that a run stopped at any point can be resumed.
  const std::string config_path = path_in(opt.out_dir, "config.json");
  if (writer)
    write_file_atomic(config_path, dump_json(config_json(opt, earlier_config, folder, nullptr, bi, pre, clf->device().str())));
  const bool head_from_scratch = start == Start::fresh || start == Start::restart;
  const ImageFolder listed = folder;
  PreparedData p = prepare_data(d, std::move(folder), head_from_scratch ? clf.get() : nullptr);
  res.broken = static_cast<int64_t>(p.report.broken.size());
  res.ignored = static_cast<int64_t>(p.folder.ignored.size() + p.val_folder.ignored.size() + p.test_folder.ignored.size());
  report_data(p, opt.out_dir, t.seed, log, opt.verbosity, opt.strict);
  if (t.decode == "gpu" && !clf->gpu_decoder())
    log << "  note: --decode gpu decodes during the first pass, and this run has none (continued run, no head epochs "
           "or --cache-features off): its images were decoded on the CPU\n";
  if (const GpuDecoder* g = clf->gpu_decoder()) {
    const GpuDecoder::Counts c = g->counts();
    log << "  decoded on the GPU (nvJPEG, " << g->backend() << " backend): " << c.gpu << " image(s); on the CPU: " << c.cpu
        << " (formats the GPU decoder does not take)"
        << (c.failed_batches > 0 ? ", after " + count_noun(c.failed_batches, "failed GPU batch", "failed GPU batches") : "")
        << "\n";
  }
  warn_without_validation(p, t, log);
  if (writer)
    write_file_atomic(config_path, dump_json(config_json(opt, earlier_config, listed, &p, bi, pre, clf->device().str())));

  const std::string metrics_path = path_in(opt.out_dir, "metrics.json");
  // (The ranks of a distributed run decide together: scoring is a collective.)
  if (!head_from_scratch && world().all_true(fs::exists(metrics_path))) {
    json m = read_json_file(metrics_path);
    res.initial_val.loss = m["initial"].value("loss", std::nan(""));
    res.initial_val.acc = m["initial"].value("acc", std::nan(""));
    if (start == Start::resume) log << "resuming from " << topt.checkpoint << "\n";
  } else {
    res.initial_val = clf->score(p.val.size() > 0 ? p.val : p.train);
    log << "initial (" << (p.val.size() > 0 ? "val" : "train") << "): loss " << fmt(res.initial_val.loss) << ", acc "
        << fmt(res.initial_val.acc) << "\n" << std::flush;
    if (writer)
      write_file_atomic(metrics_path, dump_json(json{{"status", "running"},
                                                   {"initial", {{"loss", num(res.initial_val.loss)}, {"acc", num(res.initial_val.acc)}}}}));
  }
  const int last = t.epochs + (t.fine_tune_layers > 0 ? t.fine_tune_epochs : 0);
  std::string cache_logged;
  res.history = clf->fit(p.train, p.val.size() > 0 ? &p.val : nullptr, [&](const EpochStats& s) {
    sink.close();
    if (!clf->cache_note().empty() && clf->cache_note() != cache_logged) log << "  " << (cache_logged = clf->cache_note()) << "\n";
    log_epoch(log, s, last);
  });
  finish_run(*clf, p, opt.out_dir, res, result_out);
  if (writer) fs::remove(topt.checkpoint);  // the run is complete: model.pt is the result
  result_out << "model saved to " << res.model_path << " (curves: " << path_in(opt.out_dir, "curves.png") << ")\n";
  world().barrier();  // the other ranks end once rank 0 has written the run folder (or fail if it could not)
  return res;
}

// Runs train_impl with the run folder guarded: an error removes a folder this run created; an
// interruption keeps it and says how to continue.
TrainRunResult guarded_training(const TrainRunOptions& opt, std::ostream& out, Start start, const json& earlier_config,
                                const std::vector<EpochStats>& before) {
  const bool writer = world().is_root();  // the other ranks of a distributed run neither lock nor clean up
  RunFolderGuard guard(opt.out_dir, writer);
  if (!writer) guard.keep();
  try {
    TrainRunResult r = train_impl(opt, out, start, guard, earlier_config, before);
    guard.keep();
    return r;
  } catch (const RankLost& e) {
    const bool resumable = fs::exists(path_in(opt.out_dir, "checkpoint.pt"));
    if (resumable) guard.keep();
    throw RankLost(std::string(e.what()) + (resumable ? "; the last checkpoint is kept: continue with `tlc train --resume " +
                                                            shell_quote(opt.out_dir) + "` under the same launcher"
                                                      : ""));
  } catch (const Interrupted& e) {
    const bool resumable = fs::exists(path_in(opt.out_dir, "config.json"));
    if (resumable) guard.keep();
    throw Interrupted(std::string(e.what()) +
                      (resumable ? "; continue with `tlc train --resume " + shell_quote(opt.out_dir) + "`" : ""));
  }
}

int count_phase(const std::vector<EpochStats>& h, const char* phase) {
  return static_cast<int>(std::count_if(h.begin(), h.end(), [&](const EpochStats& s) { return s.phase == phase; }));
}

bool was_given(const ResumeRequest& req, const char* flag) {
  return std::find(req.given.begin(), req.given.end(), flag) != req.given.end();
}

}  // namespace

TrainRunResult run_training(const TrainRunOptions& opt_in, std::ostream& out) {
  TrainRunOptions opt = opt_in;
  make_paths_absolute(opt);
  return guarded_training(opt, out, Start::fresh, json(), {});
}

TrainRunResult resume_training(const std::string& run_dir_in, std::ostream& log, const ResumeRequest& req) {
  const std::string run_dir = absolute_path(run_dir_in);
  const std::string cfg_path = path_in(run_dir, "config.json"), ckpt = path_in(run_dir, "checkpoint.pt");
  if (fs::exists(path_in(run_dir, "finetune.json"))) {  // an interrupted `tlc finetune`
    FinetuneRunOptions f;
    f.run_dir = run_dir;
    f.resume = true;
    f.threads = req.values.threads;
    f.verbosity = req.values.verbosity;
    f.progress = req.values.progress;
    return run_finetune(f, log);
  }
  if (!fs::exists(cfg_path))
    throw Error(run_dir + " has no run to resume: config.json is missing (give the folder `tlc train --out` wrote)");
  const json c = read_json_file(cfg_path);
  const TrainRunOptions stored = options_from_config(c, run_dir);
  TrainRunOptions o = apply_resume_request(stored, req);
  auto& t = o.train;
  const std::string epochs_hint = "; give --epochs (or --fine-tune-epochs) at least that";
  if (fs::exists(ckpt)) {
    std::shared_ptr<torch::serialize::InputArchive> archive;
    const CheckpointState st = read_checkpoint(ckpt, archive);
    if (st.phase == 1 && t.epochs != stored.train.epochs)
      throw Error("--epochs " + std::to_string(t.epochs) + ": the run's head phase is over (it stopped while "
                  "fine-tuning); only --fine-tune-epochs can change now");
    const int need = st.epoch_index + (st.next_step > 0 ? 1 : 0);
    if (st.phase == 0 && t.epochs < need)
      throw Error("--epochs " + std::to_string(t.epochs) + " is below the " + std::to_string(need) +
                  " head epoch(s) the run has begun" + epochs_hint);
    if (st.phase == 1 && t.fine_tune_epochs < need)
      throw Error("--fine-tune-epochs " + std::to_string(t.fine_tune_epochs) + " is below the " + std::to_string(need) +
                  " fine-tuning epoch(s) the run has begun" + epochs_hint);
    return guarded_training(o, log, Start::resume, c, {});
  }
  if (!fs::exists(path_in(run_dir, "model.pt"))) return guarded_training(o, log, Start::restart, c, {});

  // A finished run: more epochs when they were asked for.
  const std::vector<EpochStats> before = read_history(path_in(run_dir, "history.csv"));
  const int head = count_phase(before, "head"), tuned = count_phase(before, "fine-tune");
  const std::string done = run_dir + " is finished (" + std::to_string(head) + " head epoch(s)" +
                           (tuned ? " and " + std::to_string(tuned) + " fine-tuning epoch(s)" : "") + ", model.pt)";
  if (before.empty()) throw Error(done + " but its history.csv is missing; start a new run with --out");
  if (tuned > 0 && t.epochs != stored.train.epochs)
    throw Error(done + "; its head phase is over, so --epochs cannot change: give a larger --fine-tune-epochs, or "
                "fine-tune further with `tlc finetune " + shell_quote(run_dir) + "`");
  t.epochs = std::max(t.epochs, head);
  const bool more_head = tuned == 0 && t.epochs > head;
  const bool more_tuning = t.fine_tune_layers > 0 && t.fine_tune_epochs > tuned;
  if (!(was_given(req, "--epochs") || was_given(req, "--fine-tune-epochs")) || !(more_head || more_tuning))
    throw Error(done + "; to train it further give more epochs than it ran, e.g. `tlc train --resume " +
                shell_quote(run_dir) + " --epochs " + std::to_string(head + 5) + "`" +
                (t.fine_tune_layers > 0 ? " or --fine-tune-epochs " + std::to_string(tuned + 5) : "") +
                " (the epochs go on from " + std::to_string(before.back().epoch + 1) + ")");
  return guarded_training(o, log, Start::extend, c, before);
}

}  // namespace tlc
