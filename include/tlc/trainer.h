#pragma once
// The library API the CLI is a thin layer over, in the spirit of scikit-learn's estimators:
//   tlc::TransferClassifier clf(tlc::Backbone::load(path), classes, preprocess, options);
//   clf.fit(train, &val);  clf.score(test);  clf.predict_proba(u8_batch);  clf.save("model.pt");
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tlc/augment.h"
#include "tlc/backbone.h"
#include "tlc/device.h"
#include "tlc/classifier.h"
#include "tlc/error.h"
#include "tlc/image_set.h"
#include "tlc/interrupt.h"
#include "tlc/normalize.h"

namespace tlc {

namespace detail {
class GradientBuckets;  // src/train/trainer_internal.h
}

struct Preprocess {
  int64_t image_size = 160;
  NormalizeMode mode = NormalizeMode::minus1to1;
  ResizeMode resize = ResizeMode::stretch;  // how other aspect ratios become image_size x image_size
};

struct EpochStats {
  int epoch = 0;  // 1-based, counting on through the fine-tuning phase
  std::string phase = "head";  // head | fine-tune
  std::string cache = "none";  // none | features | prefix: what the epoch read instead of running the backbone
  double lr = 0;
  double loss = 0, acc = 0;
  double val_loss = 0, val_acc = 0;  // NaN when there is no validation set
  double seconds = 0, images_per_second = 0;
  double comm_seconds = 0;  // of `seconds`, spent in collectives (distributed runs; not in history.csv)
};

struct TrainOptions {
  int epochs = 10;
  int64_t batch_size = 32;  // in a distributed run: the global batch, split across the ranks
  OptimizerOptions optimizer;  // RMSprop, lr 1e-4 (the seeds')
  int64_t hidden = 0;
  double dropout = 0.0;
  uint64_t seed = 42;
  std::string device = "auto";  // auto (CUDA when present) | cpu | cuda
  // Distributed runs (tlc/dist.h): how long the rendezvous and each collective may wait for the other ranks.
  int dist_timeout_s = 1800;
  // Random views of the training images (tlc/augment.h): none, a preset (flip, light, keras, fastai, timm) or a
  // list such as "flip,rotate=10,zoom=1.1". "flip" alone caches both of its views exactly. Any other: with
  // augment_views K > 0, a pool of K augmented views per image plus the plain one, drawn once and cached like
  // plain features (recomputed each epoch when they do not fit the cache); each epoch takes one view of the
  // pool per image. With 0, a fresh view per image per epoch through the backbone (no feature cache).
  std::string augment = "none";
  int augment_views = 0;
  // Frozen backbone passes (tlc/engine.h, choose_engine): auto (bf16 on CUDA and on CPUs with AMX-BF16 or
  // AVX512-BF16, else fp32), fp32, tf32 (CUDA matmul/conv in TF32), bf16; engine auto (OpenVINO on the CPU when
  // built in, TorchScript on CUDA) | torchscript | openvino. The head, its optimizer and every pass that trains
  // backbone layers stay in fp32 on the module itself.
  std::string precision = "auto";
  std::string engine = "auto";
  // Where the first pass decodes JPEGs (tlc/gpu_decode.h): auto (the GPU when training on CUDA with nvJPEG
  // built in), cpu, gpu. Later passes use the decoded pixels kept in memory, or decode on the CPU.
  std::string decode = "auto";

  // Phase 2, fine-tuning: the last N layers with parameters train at fine_tune_lr (the head too, as in the
  // seeds, which recompile the whole model at a 10x lower rate) for fine_tune_epochs more epochs.
  int fine_tune_layers = 0;
  // Or by blocks (stem, stages: Backbone::blocks()): the last N blocks with parameters. When > 0 it decides,
  // and the classifier sets fine_tune_layers to the layers inside those blocks (Backbone::layers_in_last_blocks).
  int fine_tune_blocks = 0;
  int fine_tune_epochs = 0;
  double fine_tune_lr = 1e-5;

  // Caches: pooled features while nothing in the backbone trains, the frozen prefix's activations while
  // fine-tuning. auto: on when they fit in cache_memory_mb. Results do not depend on them.
  std::string cache_features = "auto";  // auto | on | off
  std::string cache_dir;                // optional on-disk feature cache
  int64_t cache_memory_mb = 4096;

  // Controls.
  std::string keep = "last";            // last | best (lowest validation loss)
  int patience = 0;                     // early stopping after this many epochs without a better val loss
  std::string lr_schedule = "constant";  // constant | cosine | step
  int lr_step_epochs = 10;
  double lr_gamma = 0.1;
  bool class_weights = false;           // weight the loss by N / (K * n_class)

  // Checkpointing: when set, the training state (weights, optimizer, position, history) is written there
  // atomically after every epoch and when an interruption is requested; resume = continue from it.
  std::string checkpoint;
  bool resume = false;
  // Continuing a finished run (more epochs, as Keras' initial_epoch): the run's history. The weights are the
  // classifier's own (loaded from model.pt); the phase of the history's last epoch goes on from its epoch
  // count to opt.epochs (head) or opt.fine_tune_epochs (fine-tune) with a fresh optimizer state.
  std::vector<EpochStats> continue_from;
};

struct EvalStats {
  double loss = 0, acc = 0;
  int64_t count = 0;
};


class TransferClassifier {
 public:
  TransferClassifier(Backbone backbone, std::vector<std::string> classes, Preprocess pre, TrainOptions opt);

  // Loads a saved model to continue training it (`tlc finetune`): backbone (possibly already fine-tuned),
  // head weights, classes and preprocessing come from the file.
  static TransferClassifier load(const std::string& model_path, TrainOptions opt);

  using EpochCallback = std::function<void(const EpochStats&)>;
  // Trains the head for opt.epochs epochs on the frozen backbone, then (when asked) fine-tunes the last
  // opt.fine_tune_layers layers for opt.fine_tune_epochs epochs; reports each epoch through `cb`.
  // `first_epoch` numbers the epochs (a continued run goes on counting, as Keras' initial_epoch).
  std::vector<EpochStats> fit(const ImageSet& train, const ImageSet* val, const EpochCallback& cb = {},
                              int first_epoch = 1);
  // Only the fine-tuning phase (for a model that was trained before).
  std::vector<EpochStats> fine_tune(const ImageSet& train, const ImageSet* val, const EpochCallback& cb = {},
                                    int first_epoch = 1);
  EvalStats score(const ImageSet& data);

  // A sink for ImageSet::scan that computes the frozen backbone's pooled features of the images while they
  // are decoded (`role`: "train" or "val"), so that the first pass over the data overlaps the decoding; the
  // head phase of fit() then uses them for the sets scanned with these sinks instead of a separate pass. An
  // empty sink (nothing to do) when the head phase will not cache features (--cache-features off, or no head
  // epochs). The sink refers to this classifier: use it while the classifier stays where it is.
  ChunkSink first_pass_sink(const std::string& role);
  // Whether the last head phase took its features from the first pass (for tests and the log).
  bool used_first_pass() const { return used_first_pass_; }
  // What the last phase cached, and its size, for the log ("" when it cached nothing).
  const std::string& cache_note() const { return cache_note_; }
  const AugmentSpec& augmentation() const { return aug_; }
  // The augmentation the weights were trained with (canonical text): fit()'s, or the loaded file's. What save()
  // stores, and what test-time views default to.
  const std::string& trained_augment() const { return trained_augment_; }
  // Pooled features [N,C] of a set's images (flipped: mirrored), in order, by the frozen backbone in the
  // classifier's precision: what the head phase trains on. Each call is one backbone pass over the set.
  at::Tensor pooled_features(const ImageSet& set, bool flipped = false);
  // The same for augmented view `view` (draw_view's view number; the pool of --augment-views K holds views
  // 0..K-1) of each image. Views are drawn from (seed, the image's pixels, view): an image has the same views
  // in every set it is part of, so they can be cached per image across fits.
  at::Tensor view_features(const ImageSet& set, int64_t view);
  // Features computed elsewhere (e.g. an in-process cache shared by the fits of a model search) for the next
  // head phase, as if a first pass had made them: `role` "train" or "val"; `flipped` only with --augment flip.
  // They are used when their row count matches the set given to fit(); else the phase extracts its own.
  // `views`: with --augment-views K, the K augmented views' features, view by view ([K*N,C], view_features).
  void use_features(const std::string& role, const at::Tensor& plain, const at::Tensor& flipped = {},
                    const at::Tensor& views = {});
  // In a distributed run (tlc/dist.h) each rank's first pass sees its shard of a set: this gathers the
  // ranks' features of `role` (in rank order: the shards are contiguous blocks) so that every rank holds the
  // whole set's. Every rank must call it. Nothing to do in a world of one.
  void gather_first_pass(const std::string& role);
  at::Tensor predict_proba(const at::Tensor& images_u8);  // [N,K] on CPU
  // Test-time augmentation: tta_blend of the plain prediction and the mean over `views` views of `spec`, drawn
  // as ModelFile::set_tta draws them (so the saved model's predict --tta gives the same).
  at::Tensor predict_proba_tta(const at::Tensor& images_u8, int views, const AugmentSpec& spec);
  // The same from pooled features [N,C] (pooled_features() of the images, while the backbone is still the
  // file's: e.g. an in-process cache shared by a model search's scoring). [N,K] on CPU.
  at::Tensor predict_proba_from_features(const at::Tensor& pooled);

  void save(const std::string& path);

  Backbone& backbone() { return backbone_; }
  Head& head() { return head_; }
  const TrainOptions& options() const { return opt_; }  // fine_tune_layers resolved from fine_tune_blocks
  const std::vector<std::string>& classes() const { return classes_; }
  const Preprocess& preprocess() const { return pre_; }
  c10::Device device() const { return device_; }
  // The GPU decoder of the first pass, when it used one (for its counts in the log); else null.
  const GpuDecoder* gpu_decoder() const { return gpu_decoder_.get(); }

  // Progress of long loops (feature extraction, each epoch's steps): label, done, total.
  using ProgressFn = std::function<void(const std::string&, int64_t, int64_t)>;
  void set_progress(ProgressFn fn) { progress_ = std::move(fn); }
  // --precision int8: calibrates the engine on up to kCalibrationImages of `train` (spread evenly) unless it is
  // calibrated already; fit() and fine_tune() call it first. Nothing for other precisions.
  void calibrate(const ImageSet& train);

  // One training step of the head on a normalized batch (labels on any device): the plain mean loss (no class
  // or sample weights) and the logits it was computed from. Exposed for the parity tests.
  struct StepResult {
    double loss;
    at::Tensor logits;
  };
  StepResult train_step(const at::Tensor& normalized, const at::Tensor& labels, torch::optim::Optimizer& optim);
  at::Tensor normalize_batch(const at::Tensor& images_u8) const;
  // Normalized input for the backbone, on the device: in the frozen forward's reduced precision and
  // channels-last when `whole_forward` goes through Backbone::forward with nothing trainable, else float32
  // NCHW (for forward_range and for fine-tuning passes). `flip`: optional per-image mask.
  at::Tensor backbone_input(const at::Tensor& images_u8, const at::Tensor& flip, bool whole_forward) const;
  // The same for augmented views: row r of the batch in view view_id[r] (draw_view's view number from the run's
  // seed and the image's pixel_key), or plain where view_id[r] < 0.
  at::Tensor augmented_input(const at::Tensor& images_u8, const std::vector<int64_t>& view_id, bool whole_forward) const;

 private:
  Backbone backbone_;
  std::vector<std::string> classes_;
  Preprocess pre_;
  TrainOptions opt_;
  c10::Device device_;
  Head head_{nullptr};
  ProgressFn progress_;
  struct FirstPass {
    std::vector<at::Tensor> plain, flipped, views;
  };
  std::map<std::string, FirstPass> first_pass_;
  bool used_first_pass_ = false;
  AugmentSpec aug_;
  std::string trained_augment_ = "none";
  std::string cache_note_;
  std::shared_ptr<GpuDecoder> gpu_decoder_;  // made by the first sink that decodes on the GPU

  // One optimizer step of the head on features (labels on the device); `weights` (on the device, optional): each
  // image's loss weight (its sample weight times its class weight).
  StepResult step_on_features(const at::Tensor& feats, const at::Tensor& labels, torch::optim::Optimizer& optim,
                              const at::Tensor& weights = {});

  // Data parallelism (data_parallel.cpp): one step on this rank's slice of a global batch, the gradients
  // summed over the ranks; `weights`: this slice's loss weights (optional); `denominator`: the global batch's
  // size, or its summed weights. Returns the
  // global batch's mean loss and correct count, and whether any rank asked to stop.
  struct SyncedStep {
    double loss;
    int64_t correct;
    bool stop;
  };
  SyncedStep step_data_parallel(const std::function<at::Tensor()>& features, const at::Tensor& labels,
                                const at::Tensor& weights, double denominator, torch::optim::Optimizer& optim, detail::GradientBuckets& grads);

  struct Phase;
  struct Resume;
  // The state to continue from: the checkpoint (opt.resume), a finished run's history (opt.continue_from),
  // or none.
  std::unique_ptr<Resume> resume_state() const;
  // Pooled features of a set in order, one batch at a time; `input` makes the backbone's input of a batch.
  at::Tensor features_in_order(const ImageSet& set, const std::string& what,
                               const std::function<at::Tensor(const at::Tensor&)>& input);
  Phase prepare_phase(const ImageSet& train, const ImageSet* val, bool fine_tune, bool flip_aug, int64_t pool);
  std::vector<EpochStats> run_phase(const ImageSet& train, const ImageSet* val, const EpochCallback& cb,
                                    int first_epoch, int epochs, bool fine_tune, Resume* resume,
                                    const std::vector<EpochStats>& earlier);
};

}  // namespace tlc
