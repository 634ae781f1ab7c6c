// `tlc finetune`: a trained run continued with a fine-tuning phase, checkpointed and resumable like
// `tlc train` (OUT/finetune.json holds the job's settings while it runs).
#include <filesystem>
#include <ostream>

#include "run_internal.h"
#include "tlc/dist.h"
#include "tlc/error.h"
#include "tlc/run.h"
#include "tlc/run_folder.h"
#include "tlc/text.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc {
using namespace detail;

namespace {

json finetune_state_json(const FinetuneRunOptions& o) {
  return {{"from", o.run_dir},         {"data_dir", o.data_dir},
          {"fine_tune_layers", o.fine_tune_layers}, {"fine_tune_blocks", o.fine_tune_blocks},
          {"fine_tune_epochs", o.fine_tune_epochs},
          {"fine_tune_lr", o.fine_tune_lr}, {"training", train_options_json(o.train)},
          {"threads", o.threads},       {"strict", o.strict},
          {"memory_budget_mb", o.memory_budget_mb}, {"created", now_iso8601()}};
}

// The settings of the interrupted fine-tuning job in `dir` (its finetune.json), with what may change on
// resume (threads, output) taken from `req`.
FinetuneRunOptions finetune_options_from_state(const std::string& dir, const FinetuneRunOptions& req) {
  const std::string state = path_in(dir, "finetune.json");
  if (!fs::exists(state))
    throw Error(dir + " has no interrupted fine-tuning to resume (finetune.json, which an interrupted `tlc finetune` "
                "leaves, is missing)" +
                (fs::exists(path_in(dir, "checkpoint.pt")) ? "; it holds an interrupted `tlc train` run: continue it "
                                                              "with `tlc train --resume " + shell_quote(dir) + "`"
                                                            : std::string()));
  const json j = read_json_file(state);
  FinetuneRunOptions o;
  o.run_dir = j.at("from");
  o.out_dir = dir;
  o.data_dir = j.at("data_dir");
  o.fine_tune_layers = j.at("fine_tune_layers");
  o.fine_tune_blocks = j.value("fine_tune_blocks", 0);
  o.fine_tune_epochs = j.at("fine_tune_epochs");
  o.fine_tune_lr = j.at("fine_tune_lr");
  o.train = train_options_from_json(j.at("training"));
  o.threads = req.threads ? req.threads : j.value("threads", 0);
  o.strict = j.value("strict", false);
  o.memory_budget_mb = j.value("memory_budget_mb", int64_t{4096});
  o.verbosity = req.verbosity;
  o.progress = req.progress;
  o.resume = fs::exists(path_in(dir, "checkpoint.pt"));  // else it stopped before its first checkpoint: again
  return o;
}

TrainRunResult finetune_impl(const FinetuneRunOptions& opt, const std::string& out, std::ostream& log,
                             RunFolderGuard& guard) {
  TrainRunResult res;
  const std::string cfg_path = path_in(opt.run_dir, "config.json");
  const std::string model_path = path_in(opt.run_dir, "model.pt");
  if (!fs::exists(cfg_path) || !fs::exists(model_path))
    throw Error(opt.run_dir + " is not a tlc run folder (it needs config.json and model.pt from `tlc train`" +
                (fs::exists(path_in(opt.run_dir, "checkpoint.pt"))
                     ? "; it holds an interrupted run: finish it with `tlc train --resume " + shell_quote(opt.run_dir) + "`)"
                     : ")"));
  json cfg = read_json_file(cfg_path);
  if (opt.fine_tune_layers < 1 && opt.fine_tune_blocks < 1)
    throw Error("--fine-tune-layers or --fine-tune-blocks must be >= 1 (how many layers or blocks to unfreeze)");
  TrainOptions t = opt.train;
  t.seed = cfg.value("seed", uint64_t{42});
  t.fine_tune_layers = opt.fine_tune_layers;
  t.fine_tune_blocks = opt.fine_tune_blocks;
  t.fine_tune_epochs = opt.fine_tune_epochs;
  t.fine_tune_lr = opt.fine_tune_lr;
  if (cfg.contains("training")) t.dropout = cfg["training"].value("dropout", 0.0);
  t.checkpoint = path_in(out, "checkpoint.pt");
  t.resume = opt.resume;
  if (!opt.resume && fs::exists(t.checkpoint))
    throw Error(out + " holds an interrupted run (checkpoint.pt); continue it with `tlc " +
                (fs::exists(path_in(out, "finetune.json")) ? "finetune" : "train") + " --resume " + shell_quote(out) +
                "`, or choose another --out");
  TransferClassifier clf = TransferClassifier::load(model_path, t);
  ProgressSink sink(log, opt.progress && world().is_root());
  clf.set_progress([&sink](const std::string& l, int64_t d, int64_t n) { sink(l, d, n); });
  t.fine_tune_layers = clf.options().fine_tune_layers;  // resolved from --fine-tune-blocks by the classifier
  if (t.fine_tune_layers > clf.backbone().layers_with_parameters()) clf.backbone().unfreeze_last(t.fine_tune_layers);

  const std::string base = cfg.value("cwd", std::string());
  DataSpec d;
  d.data_dir = opt.data_dir.empty() ? resolve_recorded_path(cfg.value("data_dir", std::string()), base) : opt.data_dir;
  d.val_dir = resolve_recorded_path(cfg.value("val_dir", std::string()), base);
  d.test_dir = resolve_recorded_path(cfg.value("test_dir", std::string()), base);
  d.val_split = cfg.value("val_split", 0.1);
  d.test_split = cfg.value("test_split", 0.1);
  d.seed = t.seed;
  d.image_size = clf.preprocess().image_size;
  d.resize = clf.preprocess().resize;
  d.labels = {resolve_recorded_path(cfg.value("labels_csv", std::string()), cfg.value("cwd", std::string())),
              cfg.value("label_regex", std::string())};
  // A labels CSV lists the run's own files; a --label-regex applies to any folder named the same way.
  if (!opt.data_dir.empty() && !d.labels.csv.empty())
    throw Error("the run was labelled by " + d.labels.csv + ", which lists its own data folder's files, not --data " +
                opt.data_dir + "; fine-tune on the run's own data (without --data), or train a new run on that folder");
  d.max_pixels = cfg.value("max_pixels", int64_t{100'000'000});
  d.memory_budget_mb = opt.memory_budget_mb;
  d.threads = opt.threads;
  d.strict = opt.strict;
  ImageFolder folder = list_data(d);
  if (folder.classes != clf.classes())
    throw Error("the data folder " + folder.root + " has classes [" + join(folder.classes, ", ") + "] but model " +
                model_path + " was trained on [" + join(clf.classes(), ", ") + "]; fine-tune with the same class folders");
  const bool writer = world().is_root();
  if (writer) guard.create();
  res.run_dir = out;
  res.classes = folder.classes;
  const std::string state_path = path_in(out, "finetune.json");
  if (!opt.resume && writer) {
    FinetuneRunOptions state = opt;
    state.data_dir = d.data_dir;
    write_file_atomic(state_path, dump_json(finetune_state_json(state)));
  }
  log << "tlc finetune: " << opt.run_dir << " on " << folder.root << (opt.resume ? " (resumed)" : "") << "\n"
      << "  device: " << clf.device().str() << "\n"
      << "  fine-tuning the last " << t.fine_tune_layers << " of " << clf.backbone().layers_with_parameters()
      << " backbone layers with parameters"
      << (t.fine_tune_blocks > 0 ? " (the last " + count_noun(t.fine_tune_blocks, "block") + ")" : "") << ", " << count_noun(t.fine_tune_epochs, "epoch") << ", " << t.optimizer.name << " lr "
      << t.fine_tune_lr << ", batch " << t.batch_size << "\n";
  const ImageFolder listed = folder;
  PreparedData p = prepare_data(d, std::move(folder));  // no head phase here: nothing to stream
  res.broken = static_cast<int64_t>(p.report.broken.size());
  res.ignored = static_cast<int64_t>(p.folder.ignored.size());
  report_data(p, out, t.seed, log, 1, opt.strict);
  warn_without_validation(p, t, log);
  std::vector<EpochStats> before = read_history(path_in(opt.run_dir, "history.csv"));
  const int first = before.empty() ? 1 : before.back().epoch + 1;
  clf.calibrate(p.train);  // --precision int8: before the first frozen pass, the initial score
  res.initial_val = clf.score(p.val.size() > 0 ? p.val : p.train);
  log << "before fine-tuning (" << (p.val.size() > 0 ? "val" : "train") << "): loss " << fmt(res.initial_val.loss)
      << ", acc " << fmt(res.initial_val.acc) << "\n";
  if (opt.resume) log << "resuming from " << t.checkpoint << "\n";
  auto more = clf.fine_tune(p.train, p.val.size() > 0 ? &p.val : nullptr,
                            [&](const EpochStats& s) {
                              sink.close();
                              log_epoch(log, s, first + t.fine_tune_epochs - 1);
                            },
                            first);
  res.history = before;
  res.history.insert(res.history.end(), more.begin(), more.end());
  finish_run(clf, p, out, res, log);
  // The run's config, with absolute paths, and a record of this phase.
  cfg["cwd"] = fs::current_path().string();
  cfg["data_dir"] = d.data_dir;
  cfg["data_root"] = listed.root;
  cfg["val_dir"] = d.val_dir;
  cfg["test_dir"] = d.test_dir;
  if (cfg.contains("backbone_path"))
    cfg["backbone_path"] = resolve_recorded_path(cfg["backbone_path"].get<std::string>(), base);
  cfg["finetune"] = {{"fine_tune_layers", t.fine_tune_layers}, {"fine_tune_blocks", t.fine_tune_blocks},
                     {"fine_tune_epochs", t.fine_tune_epochs},
                     {"fine_tune_lr", t.fine_tune_lr}, {"from", opt.run_dir}, {"created", now_iso8601()}};
  if (writer) {
    write_file_atomic(path_in(out, "config.json"), dump_json(cfg));
    fs::remove(t.checkpoint);
    fs::remove(state_path);
  }
  log << "model saved to " << res.model_path << "\n";
  world().barrier();  // the other ranks end once rank 0 has written the run folder (or fail if it could not)
  return res;
}

}  // namespace

TrainRunResult run_finetune(const FinetuneRunOptions& opt_in, std::ostream& log) {
  NullBuffer null_buf;
  std::ostream null_stream(&null_buf);  // the log of the ranks that do not write (distributed runs)
  FinetuneRunOptions opt = opt_in;
  if (opt.resume) {
    opt = finetune_options_from_state(absolute_path(opt_in.run_dir), opt_in);
  } else {
    for (std::string* p : {&opt.run_dir, &opt.out_dir, &opt.data_dir, &opt.train.cache_dir}) *p = absolute_path(*p);
  }
  const std::string out = opt.out_dir.empty() ? opt.run_dir : opt.out_dir;
  const bool writer = world().is_root();
  RunFolderGuard guard(out, writer);
  if (!writer) guard.keep();
  try {
    TrainRunResult r = finetune_impl(opt, out, writer ? log : null_stream, guard);
    guard.keep();
    return r;
  } catch (const Interrupted& e) {
    const bool resumable = fs::exists(path_in(out, "finetune.json"));
    if (resumable) guard.keep();
    throw Interrupted(std::string(e.what()) +
                      (resumable ? "; continue with `tlc finetune --resume " + shell_quote(out) + "`" : ""));
  }
}

}  // namespace tlc
