// Folder listing and splits.
#include <algorithm>
#include <set>

#include "test_util.h"
#include "tlc/dataset.h"
#include "tlc/error.h"

using namespace tlc_test;

namespace {

void touch_images(const fs::path& dir, int n) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) write_text(dir / ("f" + std::to_string(100 + i) + ".jpg"), "x");
}

}  // namespace

TEST(Dataset, ListsClassesSortedAndFilesSorted) {
  TempDir t;
  touch_images(t.path() / "zebra", 3);
  touch_images(t.path() / "apple", 2);
  touch_images(t.path() / "Mango", 1);
  auto f = tlc::list_image_folder(t.str());
  ASSERT_EQ(f.classes, (std::vector<std::string>{"Mango", "apple", "zebra"}));
  ASSERT_EQ(f.items.size(), 6u);
  EXPECT_EQ(f.items[0].label, 0);
  EXPECT_EQ(f.items[1].label, 1);
  EXPECT_LT(f.items[1].path, f.items[2].path);
  EXPECT_EQ(f.items[5].label, 2);
}

TEST(Dataset, SkipsHiddenStrayAndNonImageFiles) {
  TempDir t;
  touch_images(t.path() / "cat", 2);
  touch_images(t.path() / "dog", 2);
  write_text(t.path() / "LICENSE.txt", "licence");          // stray file at the root (flower_photos has one)
  write_text(t.path() / "cat" / "Thumbs.db", "x");          // PetImages has these
  write_text(t.path() / "dog" / ".hidden.jpg", "x");
  write_text(t.path() / "dog" / "notes.txt", "x");
  write_text(t.path() / "cat" / "UPPER.JPEG", "x");         // extensions are case-insensitive
  auto f = tlc::list_image_folder(t.str());
  EXPECT_EQ(f.items.size(), 5u);
  EXPECT_EQ(f.ignored.size(), 4u);
  std::set<std::string> reasons;
  for (auto& s : f.ignored) reasons.insert(fs::path(s.path).filename().string());
  EXPECT_TRUE(reasons.count("LICENSE.txt") && reasons.count("Thumbs.db") && reasons.count(".hidden.jpg") &&
              reasons.count("notes.txt"));
}

TEST(Dataset, EmptyClassFolderIsDroppedAndReported) {
  TempDir t;
  touch_images(t.path() / "a", 2);
  touch_images(t.path() / "b", 2);
  fs::create_directories(t.path() / "empty");
  auto f = tlc::list_image_folder(t.str());
  EXPECT_EQ(f.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.ignored.size(), 1u);
}

TEST(Dataset, NamedLayoutsResolve) {
  TempDir t;
  touch_images(t.path() / "PetImages" / "Cat", 2);
  touch_images(t.path() / "PetImages" / "Dog", 2);
  write_text(t.path() / "readme[1].txt", "x");
  auto f = tlc::list_image_folder(t.str());
  EXPECT_EQ(f.classes, (std::vector<std::string>{"Cat", "Dog"}));
  EXPECT_NE(f.layout_note.find("PetImages"), std::string::npos);

  TempDir u;
  for (auto c : {"daisy", "dandelion", "roses", "sunflowers", "tulips"}) touch_images(u.path() / "flower_photos" / c, 1);
  write_text(u.path() / "flower_photos" / "LICENSE.txt", "x");
  auto g = tlc::list_image_folder(u.str());
  EXPECT_EQ(g.classes.size(), 5u);
  EXPECT_EQ(g.ignored.size(), 1u);
  // The flower_photos folder itself works too.
  EXPECT_EQ(tlc::list_image_folder(u.str("flower_photos")).classes.size(), 5u);
}

TEST(Dataset, BadFoldersGiveClearErrors) {
  TempDir t;
  try {
    tlc::list_image_folder(t.str("missing"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
  write_text(t.path() / "flat" / "a.jpg", "x");
  try {
    tlc::list_image_folder(t.str("flat"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no class sub-folders"), std::string::npos);
  }
  touch_images(t.path() / "one" / "only", 3);
  try {
    tlc::list_image_folder(t.str("one"));
    FAIL();
  } catch (const tlc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 2"), std::string::npos);
  }
}

TEST(Split, DeterministicStratifiedAndDisjoint) {
  std::vector<tlc::ImageItem> items;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < (c == 2 ? 50 : 100); ++i) items.push_back({"c" + std::to_string(c) + "/" + std::to_string(i), c});
  auto a = tlc::split_stratified(items, 3, 0.1, 0.2, 7);
  auto b = tlc::split_stratified(items, 3, 0.1, 0.2, 7);
  auto c = tlc::split_stratified(items, 3, 0.1, 0.2, 8);
  auto paths = [](const std::vector<tlc::ImageItem>& v) {
    std::vector<std::string> p;
    for (auto& i : v) p.push_back(i.path);
    return p;
  };
  EXPECT_EQ(paths(a.train), paths(b.train));
  EXPECT_EQ(paths(a.test), paths(b.test));
  EXPECT_NE(paths(a.test), paths(c.test));
  EXPECT_EQ(tlc::count_per_class(a.val, 3), (std::vector<int64_t>{10, 10, 5}));
  EXPECT_EQ(tlc::count_per_class(a.test, 3), (std::vector<int64_t>{20, 20, 10}));
  EXPECT_EQ(a.train.size() + a.val.size() + a.test.size(), items.size());
  std::set<std::string> all;
  for (auto* v : {&a.train, &a.val, &a.test})
    for (auto& i : *v) all.insert(i.path);
  EXPECT_EQ(all.size(), items.size());
  // The order the files come in does not matter: only the set does.
  auto shuffled = items;
  std::reverse(shuffled.begin(), shuffled.end());
  EXPECT_EQ(paths(tlc::split_stratified(shuffled, 3, 0.1, 0.2, 7).test), paths(a.test));
}

TEST(Split, TooFewImagesNamesTheClassAndNumbers) {
  std::vector<tlc::ImageItem> items = {{"a/1", 0}, {"a/2", 0}, {"a/3", 0}, {"b/1", 1}, {"b/2", 1}};
  try {
    tlc::split_stratified(items, 2, 0.1, 0.1, 1, {"ants", "bees"});
    FAIL();
  } catch (const tlc::Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("'bees' has 2 image(s)"), std::string::npos) << w;
    EXPECT_NE(w.find("at least 3"), std::string::npos) << w;
  }
  EXPECT_NO_THROW(tlc::split_stratified(items, 2, 0.0, 0.0, 1));
}
