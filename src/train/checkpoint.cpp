#include "checkpoint.h"

#include <torch/serialize.h>
#include <torch/utils.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "tlc/interrupt.h"
#include "tlc/util.h"

namespace tlc::detail {
namespace {

nlohmann::json epoch_json(const EpochStats& s) {
  auto n = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"epoch", s.epoch}, {"phase", s.phase}, {"cache", s.cache}, {"lr", s.lr}, {"loss", n(s.loss)},
          {"acc", n(s.acc)}, {"val_loss", n(s.val_loss)}, {"val_acc", n(s.val_acc)}, {"seconds", s.seconds},
          {"images_per_second", s.images_per_second}};
}

EpochStats epoch_from_json(const nlohmann::json& j) {
  auto d = [](const nlohmann::json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
  EpochStats s;
  s.epoch = j.at("epoch");
  s.phase = j.at("phase");
  s.cache = j.value("cache", "none");
  s.lr = j.at("lr");
  s.loss = d(j.at("loss"));
  s.acc = d(j.at("acc"));
  s.val_loss = d(j.at("val_loss"));
  s.val_acc = d(j.at("val_acc"));
  s.seconds = j.at("seconds");
  s.images_per_second = j.at("images_per_second");
  return s;
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointState& s, const std::vector<at::Tensor>& params,
                      const std::vector<at::Tensor>& best, torch::optim::Optimizer& optim) {
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& e : s.history) hist.push_back(epoch_json(e));
  nlohmann::json st = {{"phase", s.phase}, {"epoch_index", s.epoch_index}, {"next_step", s.next_step},
                       {"loss_sum", s.loss_sum}, {"correct", s.correct}, {"seen", s.seen},
                       {"best_loss", std::isfinite(s.best_loss) ? nlohmann::json(s.best_loss) : nlohmann::json(nullptr)},
                       {"since_best", s.since_best}, {"history", hist}};
  const std::string js = st.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  CriticalWrite guard;  // a second Ctrl-C waits for this write
  torch::serialize::OutputArchive ar;
  ar.write("state", at::from_blob(const_cast<char*>(js.data()), {static_cast<int64_t>(js.size())}, at::kByte).clone());
  for (size_t i = 0; i < params.size(); ++i) ar.write("param." + std::to_string(i), params[i].detach().cpu());
  for (size_t i = 0; i < best.size(); ++i) ar.write("best." + std::to_string(i), best[i].cpu());
  torch::serialize::OutputArchive oa;
  optim.save(oa);
  ar.write("optim", oa);
  save_atomic(path, [&](const std::string& tmp) { ar.save_to(tmp); });
}

CheckpointState read_checkpoint(const std::string& path, std::shared_ptr<torch::serialize::InputArchive>& archive) {
  CheckpointState r;
  archive = std::make_shared<torch::serialize::InputArchive>();
  try {
    archive->load_from(path);
    at::Tensor st;
    archive->read("state", st);
    auto j = nlohmann::json::parse(std::string(static_cast<const char*>(st.data_ptr()), st.numel()));
    r.phase = j.at("phase");
    r.epoch_index = j.at("epoch_index");
    r.next_step = j.at("next_step");
    r.loss_sum = j.at("loss_sum");
    r.correct = j.at("correct");
    r.seen = j.at("seen");
    r.best_loss = j.at("best_loss").is_null() ? std::numeric_limits<double>::infinity() : j.at("best_loss").get<double>();
    r.since_best = j.at("since_best");
    for (const auto& e : j.at("history")) r.history.push_back(epoch_from_json(e));
  } catch (const std::exception& e) {
    throw Error("checkpoint " + path + " cannot be read (" + std::string(e.what()).substr(0, 200) +
                "); start the run again without --resume");
  }
  return r;
}

void load_checkpoint_tensors(torch::serialize::InputArchive& archive, std::vector<at::Tensor>& params,
                             std::vector<at::Tensor>& best, torch::optim::Optimizer& optim, c10::Device device) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor t;
    archive.read("param." + std::to_string(i), t);
    params[i].copy_(t);
  }
  best.clear();
  for (size_t i = 0;; ++i) {
    at::Tensor t;
    if (!archive.try_read("best." + std::to_string(i), t)) break;
    best.push_back(t.to(device));
  }
  torch::serialize::InputArchive oa;
  archive.read("optim", oa);
  optim.load(oa);
}

}  // namespace tlc::detail
