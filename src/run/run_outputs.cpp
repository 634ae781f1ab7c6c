// The output files of a run folder: history.csv, metrics.json, curves.png and model.pt, and the terminal
// lines of each epoch.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "run_internal.h"
#include "tlc/dist.h"
#include "tlc/plots.h"
#include "tlc/util.h"

namespace fs = std::filesystem;

namespace tlc::detail {

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string fmt(double v, int prec) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string path_in(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

std::string dump_json(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

ProgressSink::ProgressSink(std::ostream& out, bool enabled) : out_(out), enabled_(enabled), tty_(stdout_is_terminal()) {}

void ProgressSink::operator()(const std::string& label, int64_t done, int64_t total) {
  if (!enabled_) return;
  if (!bar_ || label != label_) {
    close();
    label_ = label;
    bar_ = std::make_unique<Progress>(out_, tty_, label, total);
  }
  bar_->update(done);
  if (done >= total) close();
}

void ProgressSink::close() {
  if (bar_) bar_->finish();
  bar_.reset();
}

void log_epoch(std::ostream& log, const EpochStats& s, int last_epoch) {
  log << "epoch " << s.epoch << "/" << last_epoch << (s.phase == "head" ? "" : " [fine-tune]") << ": loss "
      << fmt(s.loss) << ", acc " << fmt(s.acc) << ", val_loss " << fmt(s.val_loss) << ", val_acc " << fmt(s.val_acc)
      << ", " << fmt(s.images_per_second, 1) << " img/s, " << fmt(s.seconds, 1) << " s"
      << (world().world_size() > 1 ? " (" + fmt(s.comm_seconds, 2) + " s in collectives)" : "")
      << (s.cache == "features" ? " (cached features)" : s.cache == "prefix" ? " (cached frozen prefix)" : "") << "\n"
      << std::flush;
}

std::string history_csv(const std::vector<EpochStats>& history) {
  std::ostringstream hist;
  hist << "epoch,phase,lr,loss,acc,val_loss,val_acc,seconds,images_per_second\n";
  for (const auto& s : history)
    hist << s.epoch << "," << s.phase << "," << s.lr << "," << fmt(s.loss, 6) << "," << fmt(s.acc, 6) << ","
         << fmt(s.val_loss, 6) << "," << fmt(s.val_acc, 6) << "," << fmt(s.seconds, 3) << ","
         << fmt(s.images_per_second, 1) << "\n";
  return hist.str();
}

// Reads history.csv back (for a continued run); empty when there is none.
std::vector<EpochStats> read_history(const std::string& path) {
  std::vector<EpochStats> h;
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::string cell;
    std::vector<std::string> c;
    while (std::getline(ss, cell, ',')) c.push_back(cell);
    if (c.size() < 9) continue;
    auto d = [](const std::string& v) { return v == "n/a" ? std::nan("") : std::stod(v); };
    EpochStats s;
    s.epoch = std::stoi(c[0]);
    s.phase = c[1];
    s.lr = d(c[2]);
    s.loss = d(c[3]);
    s.acc = d(c[4]);
    s.val_loss = d(c[5]);
    s.val_acc = d(c[6]);
    s.seconds = d(c[7]);
    s.images_per_second = d(c[8]);
    h.push_back(s);
  }
  return h;
}

namespace {

json metrics_json(const TrainRunResult& r, const PreparedData& p) {
  return {
      {"initial", {{"loss", num(r.initial_val.loss)}, {"acc", num(r.initial_val.acc)},
                   {"on", p.val.size() > 0 ? "val" : "train"}}},
      {"final_train", r.history.empty() ? json(nullptr)
                                        : json{{"loss", num(r.history.back().loss)}, {"acc", num(r.history.back().acc)}}},
      {"val", p.val.size() > 0 ? json{{"loss", num(r.final_val.loss)}, {"acc", num(r.final_val.acc)}, {"count", p.val.size()}}
                               : json(nullptr)},
      {"test", p.test.size() > 0 ? json{{"loss", num(r.test.loss)}, {"acc", num(r.test.acc)}, {"count", p.test.size()}}
                                 : json(nullptr)},
      {"epochs_run", r.history.size()},
      {"skipped_undecodable", r.broken},
      {"ignored_files", r.ignored},
  };
}

}  // namespace

// Scores, saves the model and writes history/metrics; shared by train and finetune.
void finish_run(TransferClassifier& clf, const PreparedData& p, const std::string& out_dir, TrainRunResult& res,
                std::ostream& log) {
  if (p.val.size() > 0) res.final_val = clf.score(p.val);
  if (p.test.size() > 0) {
    res.test = clf.score(p.test);
    log << "test: loss " << fmt(res.test.loss) << ", acc " << fmt(res.test.acc) << " (" << res.test.count << " images)\n";
  }
  res.model_path = path_in(out_dir, "model.pt");
  if (!world().is_root()) return;  // every rank holds the same model: rank 0 writes the run folder
  clf.save(res.model_path);
  write_file_atomic(path_in(out_dir, "history.csv"), history_csv(res.history));
  if (!res.history.empty()) plot_curves(res.history, path_in(out_dir, "curves.png"));
  write_file_atomic(path_in(out_dir, "metrics.json"), dump_json(metrics_json(res, p)));
}

}  // namespace tlc::detail
