// Data: folder listing (the CLI's rule), the stratified split (the CLI's seed semantics), decoding files into
// an ImageSet, sets over arrays, and resizing arrays the way files are resized.
#include <unordered_map>

#include "binding.h"
#include "tlc/dataset.h"
#include "tlc/error.h"
#include "tlc/image_set.h"

namespace tlc::py {

namespace {

pyb::list skipped_list(const std::vector<SkippedFile>& v) {
  pyb::list out;
  for (const auto& s : v) out.append(pyb::make_tuple(s.path, s.reason));
  return out;
}

std::vector<ImageItem> make_items(const std::vector<std::string>& paths, const std::vector<int64_t>& labels) {
  if (paths.size() != labels.size())
    throw Error(std::to_string(paths.size()) + " paths but " + std::to_string(labels.size()) + " labels");
  std::vector<ImageItem> items(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) items[i] = {paths[i], labels[i]};
  return items;
}

pyb::dict folder_dict(const ImageFolder& f) {
  pyb::dict d;
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  for (const auto& it : f.items) {
    paths.push_back(it.path);
    labels.push_back(it.label);
  }
  d["root"] = f.root;
  d["classes"] = f.classes;
  d["paths"] = paths;
  d["labels"] = labels;
  d["ignored"] = skipped_list(f.ignored);
  d["layout_note"] = f.layout_note;
  return d;
}

// The split of `paths` as index lists into them (train, val, test).
pyb::tuple split(const std::vector<std::string>& paths, const std::vector<int64_t>& labels, int64_t num_classes,
                 double val, double test, uint64_t seed, const std::vector<std::string>& class_names) {
  Split s = split_stratified(make_items(paths, labels), num_classes, val, test, seed, class_names);
  std::unordered_map<std::string, std::vector<int64_t>> where;  // a path listed twice keeps both rows
  for (int64_t i = static_cast<int64_t>(paths.size()) - 1; i >= 0; --i) where[paths[i]].push_back(i);
  auto indices = [&](const std::vector<ImageItem>& part) {
    std::vector<int64_t> out;
    for (const auto& it : part) {
      auto& v = where.at(it.path);
      out.push_back(v.back());
      v.pop_back();
    }
    return out;
  };
  auto tr = indices(s.train);
  auto va = indices(s.val);
  auto te = indices(s.test);
  return pyb::make_tuple(tr, va, te);
}

// Decodes the files (all cores, GIL released); returns the set of the decodable ones, the broken files with
// their reasons, and the files decoded with a warning.
pyb::tuple scan(const std::vector<std::string>& paths, const std::vector<int64_t>& labels, int image_size,
                const std::string& resize, int64_t max_pixels, int threads) {
  DecodeOptions opt;
  opt.size = image_size;
  opt.resize = parse_resize_mode(resize);
  opt.max_pixels = max_pixels;
  auto items = make_items(paths, labels);
  ScanReport report;
  ImageSet set = long_call([&] { return ImageSet::scan(items, opt, threads, int64_t{1} << 40, false, report); });
  return pyb::make_tuple(std::move(set), skipped_list(report.broken), skipped_list(report.warnings));
}

// A set over files known to decode (their features are cached): nothing is decoded now; batch() decodes.
ImageSet undecoded(const std::vector<std::string>& paths, const std::vector<int64_t>& labels, int image_size,
                   const std::string& resize, int64_t max_pixels, int threads) {
  DecodeOptions opt;
  opt.size = image_size;
  opt.resize = parse_resize_mode(resize);
  opt.max_pixels = max_pixels;
  return ImageSet::on_demand(make_items(paths, labels), opt, threads);
}

}  // namespace

void bind_data(pyb::module_& m) {
  m.def("list_image_folder", [](const std::string& root, int min_classes) {
    return folder_dict(long_call([&] { return list_image_folder(root, min_classes); }));
  }, pyb::arg("root"), pyb::arg("min_classes") = 2,
     "Lists a folder of class sub-folders as the CLI does: dict(root, classes, paths, labels, ignored, layout_note)");
  m.def("list_image_files", [](const std::string& dir) {
    std::vector<SkippedFile> ignored;
    auto files = long_call([&] { return list_image_files(dir, &ignored); });
    return pyb::make_tuple(files, skipped_list(ignored));
  }, pyb::arg("dir"), "The image files under a folder (the rule every command uses) and what was passed over");
  m.def("split_stratified", &split, pyb::arg("paths"), pyb::arg("labels"), pyb::arg("num_classes"),
        pyb::arg("val"), pyb::arg("test"), pyb::arg("seed"), pyb::arg("class_names") = std::vector<std::string>{},
        "The CLI's stratified split: (train, val, test) index lists into paths");
  m.def("resize_images", [](const at::Tensor& images, int size, const std::string& mode) {
    return long_call([&] { return resize_images(images, size, parse_resize_mode(mode)); });
  }, pyb::arg("images"), pyb::arg("size"), pyb::arg("resize") = "stretch");

  pyb::class_<ImageSet>(m, "ImageSet", "Decoded images with labels, ready for training (tlc::ImageSet)")
      .def_static("scan", &scan, pyb::arg("paths"), pyb::arg("labels"), pyb::arg("image_size"),
                  pyb::arg("resize") = "stretch", pyb::arg("max_pixels") = 100'000'000, pyb::arg("threads") = 0)
      .def_static("from_pixels", &ImageSet::from_pixels, pyb::arg("pixels"), pyb::arg("labels"),
                  pyb::arg("name") = "array")
      .def_static("on_demand", &undecoded, pyb::arg("paths"), pyb::arg("labels"), pyb::arg("image_size"),
                  pyb::arg("resize") = "stretch", pyb::arg("max_pixels") = 100'000'000, pyb::arg("threads") = 0,
                  "A set over files that decoded before: nothing is decoded now, batch() decodes on demand")
      .def("batch", [](const ImageSet& s, const std::vector<int64_t>& indices) {
        return long_call([&] { return s.batch(indices); });
      }, pyb::arg("indices"), "uint8 [B,S,S,3] of those items (decoded now when the set is not in memory)")
      .def_property_readonly("in_memory", &ImageSet::in_memory)
      .def("__len__", &ImageSet::size)
      .def_property_readonly("paths", [](const ImageSet& s) {
        std::vector<std::string> v;
        for (const auto& it : s.items()) v.push_back(it.path);
        return v;
      })
      .def_property_readonly("labels", [](const ImageSet& s) {
        std::vector<int64_t> v;
        for (const auto& it : s.items()) v.push_back(it.label);
        return v;
      })
      .def_property_readonly("image_size", &ImageSet::image_size)
      .def("set_weights", &ImageSet::set_weights, pyb::arg("weights"),
           "Per-image loss weights (one finite weight >= 0 each, not all 0; [] for none)")
      .def_property_readonly("weighted", &ImageSet::weighted)
      .def_property_readonly("pixels", &ImageSet::pixels, "uint8 [N,S,S,3] (shares memory with the set)");
}

}  // namespace tlc::py
