// tests/test_data.cpp — the data layer: IDX and CIFAR loaders (on small files written here,
// and on Debian's Fashion-MNIST when installed), datasets as tensors, the paper's imbalance,
// clean-validation and label-noise set-ups, normalisation, augmentation and samplers.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <l2rw/data.hpp>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "data_files.hpp"
#include "testing.hpp"

namespace {

namespace fs = std::filesystem;
using l2rw::DataError;
using l2rw::index_t;
using l2rw::Rng;
using l2rw::ValueError;
using l2rw::testing::check_throws_mentioning;
using namespace l2rw::data;
using namespace l2rw::testing::files;

// ---- synthetic datasets ---------------------------------------------------------------------

/// n examples of `classes` classes (label i % classes), c×h×w random images in [0, 1).
Dataset make_dataset(index_t n, index_t classes, index_t c = 1, index_t h = 2, index_t w = 2,
                     std::uint64_t seed = 7) {
    Dataset ds;
    ds.n = n;
    ds.c = c;
    ds.h = h;
    ds.w = w;
    ds.classes = classes;
    Rng rng(seed);
    ds.images.resize(static_cast<std::size_t>(n * c * h * w));
    for (auto& v : ds.images) v = static_cast<float>(rng.uniform());
    for (index_t i = 0; i < n; ++i) ds.labels.push_back(i % classes);
    ds.origin = iota_indices(n);
    ds.validate();
    return ds;
}

std::vector<index_t> count_labels(const std::vector<index_t>& labels, index_t classes) {
    std::vector<index_t> c(static_cast<std::size_t>(classes), 0);
    for (index_t y : labels) ++c[static_cast<std::size_t>(y)];
    return c;
}

}  // namespace

// ---- IDX ------------------------------------------------------------------------------------

TEST_CASE("data::load_idx: raw and gzipped IDX files load the same values") {
    TempDir dir;
    const std::vector<std::uint8_t> labels{3, 0, 9, 1, 7};
    const Bytes img = idx_images(5, 3, 4), lab = idx_labels(labels);
    write_raw(dir / "img", img);
    write_raw(dir / "lab", lab);
    write_gz(dir / "img.gz", img);
    write_gz(dir / "lab.gz", lab);
    for (auto [ip, lp] :
         {std::pair{"img", "lab"}, std::pair{"img.gz", "lab.gz"}, std::pair{"img.gz", "lab"}}) {
        CAPTURE(ip);
        CAPTURE(lp);
        const Dataset ds = load_idx(dir / ip, dir / lp);
        CHECK(ds.size() == 5);
        CHECK(ds.c == 1);
        CHECK(ds.h == 3);
        CHECK(ds.w == 4);
        CHECK(ds.classes == 10);
        CHECK_FALSE(ds.has_noise());
        CHECK(ds.origin == iota_indices(5));
        CHECK(ds.labels == std::vector<index_t>{3, 0, 9, 1, 7});
        REQUIRE(ds.images.size() == 60);
        for (index_t i = 0; i < 5; ++i)
            for (index_t k = 0; k < 12; ++k)
                CHECK(ds.images[static_cast<std::size_t>(i * 12 + k)] ==
                      static_cast<float>(pixel(i, k)) / 255.0f);
        CHECK_NOTHROW(ds.validate());
    }
    // max_label widens the accepted range (and the class count).
    write_raw(dir / "lab12", idx_labels({12, 0, 1, 2, 3}));
    const Dataset wide = load_idx(dir / "img", dir / "lab12", 12);
    CHECK(wide.classes == 13);
    CHECK(wide.labels[0] == 12);
}

TEST_CASE("data::load_idx: bad files throw DataError naming the file and the byte") {
    TempDir dir;
    const Bytes img = idx_images(4, 2, 3), lab = idx_labels({1, 2, 3, 4});
    write_raw(dir / "img", img);
    write_raw(dir / "lab", lab);
    write_gz(dir / "lab.gz", lab);

    SUBCASE("truncated label file, raw and gzipped") {
        Bytes cut = idx_labels(std::vector<std::uint8_t>(100, 1));
        cut.resize(58);
        write_raw(dir / "cut", cut);
        write_gz(dir / "cut.gz", cut);
        for (const char* name : {"cut", "cut.gz"})
            check_throws_mentioning<DataError>(
                [&] { (void)load_idx(dir / "img", dir / name); },
                {dir / name, "truncated", "expected 108 bytes", "file ends at byte 58"}, name);
    }
    SUBCASE("truncated image file") {
        Bytes cut = img;
        cut.resize(cut.size() - 1);
        write_gz(dir / "cut.gz", cut);
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "cut.gz", dir / "lab"); },
            {dir / "cut.gz", "truncated", "expected 40 bytes", "file ends at byte 39"},
            "truncated images");
    }
    SUBCASE("truncated header") {
        write_raw(dir / "short", Bytes{0, 0, 8, 3, 0, 0});
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "short", dir / "lab"); },
            {dir / "short", "truncated", "expected 16 bytes", "byte 6"}, "short header");
        write_raw(dir / "tiny", Bytes{0, 0});
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "img", dir / "tiny"); },
                                           {dir / "tiny", "truncated", "byte 2"}, "no magic");
    }
    SUBCASE("trailing bytes") {
        Bytes more = lab;
        more.push_back(0);
        more.push_back(0);
        write_gz(dir / "more.gz", more);
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "img", dir / "more.gz"); },
            {dir / "more.gz", "trailing", "expected 12 bytes", "byte 12"}, "trailing");
        Bytes img_more = img;
        img_more.push_back(0);
        write_raw(dir / "img_more", img_more);
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "img_more", dir / "lab"); },
                                           {dir / "img_more", "trailing", "byte 40"},
                                           "trailing image byte");
    }
    SUBCASE("wrong magic") {
        write_raw(dir / "bad", idx_labels({1, 2, 3, 4}, 0x00000804));
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "img", dir / "bad"); },
            {dir / "bad", "bad magic 0x00000804 at byte 0 (want 0x00000801 for labels)"},
            "label magic");
        // Images and labels swapped.
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "lab.gz", dir / "img"); },
            {dir / "lab.gz", "bad magic 0x00000801 at byte 0 (want 0x00000803 for images)"},
            "swapped");
    }
    SUBCASE("zero image dimension") {
        write_raw(dir / "flat", idx_images(4, 0, 3));
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "flat", dir / "lab"); },
                                           {dir / "flat", "zero dimension", "bytes 8..15"},
                                           "zero rows");
    }
    SUBCASE("label out of range") {
        write_gz(dir / "big.gz", idx_labels({1, 2, 12, 4}));
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "img", dir / "big.gz"); },
            {dir / "big.gz", "label 12 at byte 10 is outside [0, 9]"}, "label 12");
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "img", dir / "lab", 3); },
                                           {dir / "lab", "label 4 at byte 11 is outside [0, 3]"},
                                           "max_label 3");
    }
    SUBCASE("image and label counts differ") {
        write_raw(dir / "three", idx_labels({1, 2, 3}));
        check_throws_mentioning<DataError>(
            [&] { (void)load_idx(dir / "img", dir / "three"); },
            {dir / "img", dir / "three", "4 images", "3 labels", "byte 4"}, "count mismatch");
    }
    SUBCASE("missing file") {
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "img", dir / "nope.gz"); },
                                           {dir / "nope.gz", "cannot open"}, "missing labels");
        check_throws_mentioning<DataError>([&] { (void)load_idx(dir / "nope", dir / "lab"); },
                                           {dir / "nope", "cannot open"}, "missing images");
    }
}

TEST_CASE("data::load_mnist and load_fashion_mnist find the standard file names, gz or raw") {
    TempDir dir;
    write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 28, 28));
    write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels({5, 0, 4}));
    write_raw(dir / "t10k-images-idx3-ubyte", idx_images(2, 28, 28));
    write_raw(dir / "t10k-labels-idx1-ubyte", idx_labels({7, 2}));
    const Dataset train = load_mnist(dir.path.string(), true);
    CHECK(train.size() == 3);
    CHECK(train.labels == std::vector<index_t>{5, 0, 4});
    const Dataset test = load_fashion_mnist(dir.path.string(), false);
    CHECK(test.size() == 2);
    CHECK(test.h == 28);
    CHECK(test.labels == std::vector<index_t>{7, 2});

    TempDir empty;
    check_throws_mentioning<DataError>(
        [&] { (void)load_mnist(empty.path.string(), true); },
        {"load_mnist", empty.path.string(), "train-images-idx3-ubyte.gz"}, "no files");
}

TEST_CASE("data::load_fashion_mnist: Debian's Fashion-MNIST files") {
    const char* env = std::getenv("L2RW_FASHION_MNIST_DIR");
    const std::string dir = env && *env ? env : "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz") &&
        !fs::exists(fs::path(dir) / "train-images-idx3-ubyte")) {
        MESSAGE("Fashion-MNIST not found in " << dir
                                              << " (install dataset-fashion-mnist); skipped");
        return;
    }
    const Dataset train = load_fashion_mnist(dir, true);
    const Dataset test = load_fashion_mnist(dir, false);
    CHECK(train.size() == 60000);
    CHECK(test.size() == 10000);
    for (const Dataset* ds : {&train, &test}) {
        CHECK(ds->c == 1);
        CHECK(ds->h == 28);
        CHECK(ds->w == 28);
        CHECK(ds->classes == 10);
        CHECK_NOTHROW(ds->validate());
        const auto [lo, hi] = std::minmax_element(ds->images.begin(), ds->images.end());
        CHECK(*lo == 0.0f);
        CHECK(*hi == 1.0f);
        // Fashion-MNIST is balanced: 6000 (train) or 1000 (test) of each class.
        for (index_t c : ds->class_counts()) CHECK(c == ds->size() / 10);
    }
    CHECK(train.labels[0] == 9);  // the first training image is an ankle boot
    CHECK(test.labels[0] == 9);   // and so is the first test image
}

// ---- CIFAR ----------------------------------------------------------------------------------

TEST_CASE("data::load_cifar: CIFAR-10 and CIFAR-100 records") {
    TempDir dir;
    write_raw(dir / "a.bin", cifar_records({{3}, {9}}, 0));
    write_gz(dir / "b.bin", cifar_records({{0}}, 2));
    const Dataset ds = load_cifar({dir / "a.bin", dir / "b.bin"}, CifarKind::cifar10);
    CHECK(ds.size() == 3);
    CHECK(ds.c == 3);
    CHECK(ds.h == 32);
    CHECK(ds.w == 32);
    CHECK(ds.classes == 10);
    CHECK(ds.labels == std::vector<index_t>{3, 9, 0});
    CHECK(ds.origin == iota_indices(3));
    REQUIRE(ds.images.size() == 3 * 3072);
    bool all = true;
    for (index_t i = 0; i < 3; ++i)
        for (index_t k = 0; k < 3072; ++k)
            all = all && ds.images[static_cast<std::size_t>(i * 3072 + k)] ==
                             static_cast<float>(pixel(i, k)) / 255.0f;
    CHECK(all);

    write_raw(dir / "c100.bin", cifar_records({{19, 99}, {0, 42}}));
    const Dataset c100 = load_cifar({dir / "c100.bin"}, CifarKind::cifar100);
    CHECK(c100.classes == 100);
    CHECK(c100.labels == std::vector<index_t>{99, 42});  // fine labels
    CHECK(c100.images[3071] == static_cast<float>(pixel(0, 3071)) / 255.0f);
    CHECK(c100.images[3072] == static_cast<float>(pixel(1, 0)) / 255.0f);
}

TEST_CASE("data::load_cifar: bad files throw DataError naming the file and the byte") {
    TempDir dir;
    Bytes partial = cifar_records({{1}, {2}});
    partial.resize(partial.size() + 100, 0);
    write_raw(dir / "partial.bin", partial);
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "partial.bin"}, CifarKind::cifar10); },
        {dir / "partial.bin", "3073-byte records", "partial record", "at byte 6146"},
        "partial record");
    Bytes short100 = cifar_records({{1, 2}});
    short100.pop_back();
    write_raw(dir / "short100.bin", short100);
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "short100.bin"}, CifarKind::cifar100); },
        {dir / "short100.bin", "3074-byte records", "at byte 0"}, "short CIFAR-100");

    write_raw(dir / "ok.bin", cifar_records({{1}}));
    write_raw(dir / "label.bin", cifar_records({{1}, {10}}));
    check_throws_mentioning<DataError>(
        [&] {
            (void)load_cifar({dir / "ok.bin", dir / "label.bin"}, CifarKind::cifar10);
        },
        {dir / "label.bin", "label 10 at byte 3073 is outside [0, 9]"}, "CIFAR-10 label");
    write_raw(dir / "fine.bin", cifar_records({{1, 100}}));
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "fine.bin"}, CifarKind::cifar100); },
        {dir / "fine.bin", "fine label 100 at byte 1 is outside [0, 99]"}, "fine label");
    write_raw(dir / "coarse.bin", cifar_records({{1, 1}, {20, 1}}));
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "coarse.bin"}, CifarKind::cifar100); },
        {dir / "coarse.bin", "coarse label 20 at byte 3074 is outside [0, 19]"}, "coarse label");
    write_raw(dir / "empty.bin", {});
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "empty.bin"}, CifarKind::cifar10); },
        {dir / "empty.bin", "0 bytes"}, "empty file");
    check_throws_mentioning<DataError>([&] { (void)load_cifar10(dir.path.string(), false); },
                                       {dir / "test_batch.bin", "cannot open"}, "missing file");
}

TEST_CASE("data::load_cifar10 / load_cifar100 read the standard file sets") {
    TempDir dir;
    fs::create_directories(dir.path / "cifar-10-batches-bin");
    for (int b = 1; b <= 5; ++b)
        write_raw(
            dir / ("cifar-10-batches-bin/data_batch_" + std::to_string(b) + ".bin"),
            cifar_records({{static_cast<std::uint8_t>(b)}, {static_cast<std::uint8_t>(b + 1)}},
                          2 * (b - 1)));
    write_raw(dir / "cifar-10-batches-bin/test_batch.bin", cifar_records({{4}}));
    const Dataset train = load_cifar10(dir.path.string(), true);
    CHECK(train.size() == 10);
    CHECK(train.labels == std::vector<index_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6});
    CHECK(train.images[static_cast<std::size_t>(9 * 3072 + 5)] ==
          static_cast<float>(pixel(9, 5)) / 255.0f);
    CHECK(load_cifar10((dir.path / "cifar-10-batches-bin").string(), false).labels ==
          std::vector<index_t>{4});

    write_raw(dir / "train.bin", cifar_records({{0, 5}, {3, 77}}));
    write_raw(dir / "test.bin", cifar_records({{1, 8}}));
    CHECK(load_cifar100(dir.path.string(), true).labels == std::vector<index_t>{5, 77});
    CHECK(load_cifar100(dir.path.string(), false).labels == std::vector<index_t>{8});
}

// ---- datasets as tensors --------------------------------------------------------------------

TEST_CASE_TEMPLATE("data::to_batch gathers images, labels and noise flags", B, L2RW_BACKENDS) {
    const Dataset ds = make_dataset(6, 3, 2, 2, 3);
    const std::vector<index_t> idx{4, 1, 4};
    const auto b = to_batch<double, B>(ds, idx);
    CHECK(b.x.shape() == l2rw::Shape{3, 2, 2, 3});
    CHECK(b.y.shape() == l2rw::Shape{3});
    CHECK(b.y.to_host() == std::vector<index_t>{1, 1, 1});
    CHECK(b.indices == idx);
    CHECK(b.noisy == std::vector<bool>{false, false, false});
    CHECK(b.clean_labels == std::vector<index_t>{1, 1, 1});
    const auto x = b.x.to_host();
    for (std::size_t j = 0; j < idx.size(); ++j)
        for (std::size_t k = 0; k < 12; ++k)
            CHECK(x[j * 12 + k] ==
                  static_cast<double>(ds.images[static_cast<std::size_t>(idx[j]) * 12 + k]));

    Rng rng(3);
    const Dataset noisy = uniform_flip(ds, 0.5, rng);
    const auto all = to_batch<float, B>(noisy);
    CHECK(all.size() == 6);
    CHECK(all.y.to_host() == noisy.labels);
    CHECK(all.clean_labels == ds.labels);
    CHECK(all.noisy == noisy.noisy);

    check_throws_mentioning<ValueError>(
        [&] {
            (void)to_batch<float, B>(ds, std::vector<index_t>{0, 6});
        },
        {"to_batch", "index 6", "[0, 6)"}, "bad index");
}

TEST_CASE("data::Dataset::subset keeps images, labels, noise and origin together") {
    const Dataset ds = make_dataset(8, 4);
    Rng rng(1);
    const Dataset noisy = uniform_flip(ds, 0.5, rng);
    const Dataset part = noisy.subset({6, 2, 6});
    CHECK(part.size() == 3);
    CHECK(part.origin == std::vector<index_t>{6, 2, 6});
    CHECK(part.labels == std::vector<index_t>{noisy.labels[6], noisy.labels[2], noisy.labels[6]});
    CHECK(part.clean_labels == std::vector<index_t>{2, 2, 2});
    CHECK(part.noisy == std::vector<bool>{noisy.noisy[6], noisy.noisy[2], noisy.noisy[6]});
    CHECK(std::equal(part.image(1).begin(), part.image(1).end(), ds.image(2).begin()));
    // Origins compose: a subset of a subset points back at the source rows.
    CHECK(part.subset({1}).origin == std::vector<index_t>{2});
    CHECK_NOTHROW(part.validate());
    check_throws_mentioning<ValueError>([&] { (void)ds.subset({-1}); }, {"subset", "index -1"},
                                        "negative index");
}

// ---- class imbalance ------------------------------------------------------------------------

TEST_CASE("data::imbalanced_binary takes exact counts of the two classes") {
    const Dataset ds = make_dataset(2000, 10);  // 200 per class
    Rng rng(11);
    const Dataset im = imbalanced_binary(ds, 9, 4, 201, 0.995, rng);  // round(200.0) = 200 : 1
    CHECK(im.size() == 201);
    CHECK(im.classes == 2);
    const auto counts = count_labels(im.labels, 2);
    CHECK(counts[static_cast<std::size_t>(majority_label)] == 200);
    CHECK(counts[static_cast<std::size_t>(minority_label)] == 1);
    std::set<index_t> seen;
    for (index_t i = 0; i < im.size(); ++i) {
        const index_t src = im.origin[static_cast<std::size_t>(i)];
        seen.insert(src);
        CHECK(ds.labels[static_cast<std::size_t>(src)] ==
              (im.labels[static_cast<std::size_t>(i)] == 1 ? 9 : 4));
        CHECK(std::equal(im.image(i).begin(), im.image(i).end(), ds.image(src).begin()));
    }
    CHECK(seen.size() == 201);  // no example twice

    Rng r2(11);
    CHECK(imbalanced_binary(ds, 9, 4, 201, 0.995, r2).origin == im.origin);  // seeded
    const Dataset half = imbalanced_binary(ds, 9, 4, 5, 0.5, rng);  // round(2.5) = 3 majors
    CHECK(count_labels(half.labels, 2) == std::vector<index_t>{2, 3});

    check_throws_mentioning<ValueError>([&] { (void)imbalanced_binary(ds, 9, 4, 400, 0.4, rng); },
                                        {"imbalanced_binary", "240", "class 4", "200"},
                                        "too few minority");
    check_throws_mentioning<ValueError>([&] { (void)imbalanced_binary(ds, 9, 9, 10, 0.5, rng); },
                                        {"imbalanced_binary"}, "same class");
    check_throws_mentioning<ValueError>([&] { (void)imbalanced_binary(ds, 9, 4, 10, 1.5, rng); },
                                        {"p_major"}, "bad ratio");
}

// ---- clean validation -----------------------------------------------------------------------

TEST_CASE("data::split_clean_validation is stratified and disjoint from the training set") {
    const Dataset ds = make_dataset(1000, 10);
    Rng rng(5);
    auto check_disjoint_cover = [&](const TrainValSplit& s) {
        std::set<index_t> train(s.train.origin.begin(), s.train.origin.end());
        std::set<index_t> val(s.val.origin.begin(), s.val.origin.end());
        CHECK(train.size() == s.train.origin.size());
        CHECK(val.size() == s.val.origin.size());
        for (index_t v : val) CHECK(train.count(v) == 0);
        CHECK(train.size() + val.size() == 1000);
        CHECK_NOTHROW(s.train.validate());
        CHECK_NOTHROW(s.val.validate());
    };
    SUBCASE("per class (default 10)") {
        const TrainValSplit s = split_clean_validation(ds, rng);
        CHECK(s.val.size() == 100);
        CHECK(s.train.size() == 900);
        CHECK(s.val.class_counts() == std::vector<index_t>(10, 10));
        CHECK(s.train.class_counts() == std::vector<index_t>(10, 90));
        check_disjoint_cover(s);
    }
    SUBCASE("total, spread as evenly as possible") {
        const TrainValSplit s = split_clean_validation(ds, Total{25}, rng);
        CHECK(s.val.size() == 25);
        const auto counts = s.val.class_counts();
        CHECK(std::count(counts.begin(), counts.end(), 3) == 5);
        CHECK(std::count(counts.begin(), counts.end(), 2) == 5);
        check_disjoint_cover(s);
    }
    SUBCASE(
        "noisy data: the validation set gets its true labels, the training set keeps its noise") {
        const Dataset noisy = uniform_flip(ds, 0.5, rng);
        const TrainValSplit s = split_clean_validation(noisy, PerClass{7}, rng);
        CHECK_FALSE(s.val.has_noise());
        CHECK(s.val.class_counts() == std::vector<index_t>(10, 7));
        for (index_t i = 0; i < s.val.size(); ++i)
            CHECK(s.val.labels[static_cast<std::size_t>(i)] ==
                  ds.labels[static_cast<std::size_t>(s.val.origin[static_cast<std::size_t>(i)])]);
        CHECK(s.train.has_noise());
        check_disjoint_cover(s);
    }
    SUBCASE("too few examples") {
        check_throws_mentioning<ValueError>(
            [&] { (void)split_clean_validation(ds, PerClass{101}, rng); },
            {"split_clean_validation", "101", "class 0", "100"}, "per class");
        check_throws_mentioning<ValueError>(
            [&] { (void)split_clean_validation(ds, Total{1001}, rng); },
            {"split_clean_validation", "1001"}, "total");
    }
}

// ---- label noise ----------------------------------------------------------------------------

TEST_CASE(
    "data::uniform_flip flips an exact count, each to another class, every other class reachable") {
    const index_t classes = 10, n = 20000;
    const Dataset ds = make_dataset(n, classes, 1, 1, 1);
    Rng rng(2024);
    const Dataset noisy = uniform_flip(ds, 0.4, rng);
    REQUIRE(noisy.has_noise());
    CHECK(noisy.clean_labels == ds.labels);
    CHECK(noisy.origin == ds.origin);
    CHECK(noisy.images == ds.images);
    index_t flipped = 0;
    std::vector<std::vector<index_t>> to(classes, std::vector<index_t>(classes, 0));
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        CHECK(noisy.noisy[i] == (noisy.labels[i] != noisy.clean_labels[i]));  // never unchanged
        if (noisy.noisy[i]) {
            ++flipped;
            ++to[static_cast<std::size_t>(noisy.clean_labels[i])]
                [static_cast<std::size_t>(noisy.labels[i])];
        }
    }
    CHECK(flipped == 8000);
    // 800 flips per class spread over the 9 others (about 89 each): all reachable, the last
    // class included, none favoured.
    for (index_t a = 0; a < classes; ++a)
        for (index_t b = 0; b < classes; ++b) {
            const index_t c = to[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)];
            CAPTURE(a);
            CAPTURE(b);
            if (a == b)
                CHECK(c == 0);
            else {
                CHECK(c > 50);
                CHECK(c < 140);
            }
        }
    CHECK(noisy.labels != ds.labels);

    Rng r0(1);
    const Dataset none = uniform_flip(ds, 0.0, r0);
    CHECK(none.labels == ds.labels);
    CHECK(std::count(none.noisy.begin(), none.noisy.end(), true) == 0);
    Rng r1(1);
    const Dataset all =
        uniform_flip(make_dataset(7, 2), 1.0, r1);  // two classes: every label swaps
    for (std::size_t i = 0; i < 7; ++i) CHECK(all.labels[i] == 1 - all.clean_labels[i]);

    check_throws_mentioning<ValueError>([&] { (void)uniform_flip(noisy, 0.1, rng); },
                                        {"uniform_flip", "already"}, "twice");
    check_throws_mentioning<ValueError>([&] { (void)uniform_flip(ds, -0.1, rng); },
                                        {"uniform_flip", "ratio"}, "bad ratio");
}

TEST_CASE("data::uniform_flip is seeded-deterministic and rounds the count") {
    const Dataset ds = make_dataset(10, 3);
    Rng a(9), b(9);
    const Dataset x = uniform_flip(ds, 0.25, a), y = uniform_flip(ds, 0.25, b);
    CHECK(x.labels == y.labels);
    CHECK(std::count(x.noisy.begin(), x.noisy.end(), true) == 3);  // round(2.5) = 3
}

TEST_CASE("data::background_flip flips only non-background examples to the background class") {
    const Dataset ds = make_dataset(1000, 10);
    Rng rng(8);
    const index_t bg = 3;
    const Dataset noisy = background_flip(ds, 0.4, bg, rng);
    CHECK(noisy.clean_labels == ds.labels);
    index_t flipped = 0;
    std::vector<index_t> per_class(10, 0);
    for (std::size_t i = 0; i < 1000; ++i) {
        if (noisy.noisy[i]) {
            ++flipped;
            ++per_class[static_cast<std::size_t>(ds.labels[i])];
            CHECK(ds.labels[i] != bg);
            CHECK(noisy.labels[i] == bg);
        } else {
            CHECK(noisy.labels[i] == ds.labels[i]);
        }
    }
    CHECK(flipped == 400);
    CHECK(per_class[static_cast<std::size_t>(bg)] == 0);
    for (index_t k = 0; k < 10; ++k)
        if (k != bg) CHECK(per_class[static_cast<std::size_t>(k)] > 20);  // drawn from every class
    CHECK(noisy.class_counts()[static_cast<std::size_t>(bg)] == 500);

    check_throws_mentioning<ValueError>([&] { (void)background_flip(ds, 0.95, bg, rng); },
                                        {"background_flip", "950", "900"}, "too many flips");
    check_throws_mentioning<ValueError>([&] { (void)background_flip(ds, 0.1, 10, rng); },
                                        {"background_flip", "background_class 10"}, "bad class");
}

// ---- normalisation and augmentation ---------------------------------------------------------

TEST_CASE("data::normalize gives every channel mean 0 and standard deviation 1") {
    Dataset ds = make_dataset(50, 10, 3, 4, 5);
    for (index_t i = 0; i < ds.n; ++i)  // channels with different offsets and scales
        for (index_t ch = 0; ch < 3; ++ch)
            for (index_t j = 0; j < 20; ++j) {
                float& v = ds.images[static_cast<std::size_t>((i * 3 + ch) * 20 + j)];
                v = v * static_cast<float>(ch + 1) + static_cast<float>(ch) * 2.0f;
            }
    const ChannelStats before = channel_stats(ds);
    CHECK(before.mean[2] > before.mean[1]);
    CHECK(before.stddev[2] > before.stddev[0]);
    normalize(ds, before);
    const ChannelStats after = channel_stats(ds);
    for (std::size_t ch = 0; ch < 3; ++ch) {
        CHECK(std::abs(after.mean[ch]) < 1e-5);
        CHECK(std::abs(after.stddev[ch] - 1.0) < 1e-5);
    }
    check_throws_mentioning<ValueError>(
        [&] {
            normalize(ds, std::vector<double>{0, 0}, std::vector<double>{1, 1});
        },
        {"normalize", "3 channels"}, "channel count");
    check_throws_mentioning<ValueError>(
        [&] {
            normalize(ds, std::vector<double>{0, 0, 0}, std::vector<double>{1, 0, 1});
        },
        {"normalize", "channel 1"}, "zero stddev");
}

TEST_CASE("data::augment_crop_flip: a zero-padded shift and an optional mirror of each image") {
    const index_t n = 40, c = 3, h = 32, w = 32;
    const Dataset ds = make_dataset(n, 10, c, h, w);
    SUBCASE("pad 0 without flip is the identity") {
        Dataset copy = ds;
        Rng rng(1);
        augment_crop_flip(copy, rng, 0, false);
        CHECK(copy.images == ds.images);
        CHECK(copy.n == n);
    }
    SUBCASE("pad 4 with flip: every image is one of the 81 x 2 crops, several of them used") {
        Dataset aug = ds;
        Rng rng(2);
        augment_crop_flip(aug, rng);
        CHECK(aug.images.size() == ds.images.size());
        CHECK(aug.c == c);
        CHECK(aug.h == h);
        CHECK(aug.w == w);
        std::set<std::tuple<index_t, index_t, bool>> used;
        for (index_t i = 0; i < n; ++i) {
            const auto src = ds.image(i);
            const auto out = std::as_const(aug).image(i);
            bool found = false;
            for (index_t dy = -4; dy <= 4 && !found; ++dy)
                for (index_t dx = -4; dx <= 4 && !found; ++dx)
                    for (bool mirror : {false, true}) {
                        bool same = true;
                        for (index_t ch = 0; ch < c && same; ++ch)
                            for (index_t y = 0; y < h && same; ++y)
                                for (index_t x = 0; x < w && same; ++x) {
                                    const index_t sy = y + dy, sx = (mirror ? w - 1 - x : x) + dx;
                                    const float want =
                                        (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                            ? src[static_cast<std::size_t>((ch * h + sy) * w + sx)]
                                            : 0.0f;
                                    same =
                                        out[static_cast<std::size_t>((ch * h + y) * w + x)] == want;
                                }
                        if (same) {
                            found = true;
                            used.insert({dy, dx, mirror});
                            break;
                        }
                    }
            CHECK_MESSAGE(found, "image " << i << " is no padded crop / mirror of its source");
        }
        CHECK(used.size() > 20);
        bool any_mirror = false, any_plain = false;
        for (const auto& u : used) (std::get<2>(u) ? any_mirror : any_plain) = true;
        CHECK(any_mirror);
        CHECK(any_plain);
    }
    SUBCASE("seeded") {
        Dataset a = ds, b = ds;
        Rng ra(3), rb(3);
        augment_crop_flip(a, ra);
        augment_crop_flip(b, rb);
        CHECK(a.images == b.images);
        CHECK(a.images != ds.images);
    }
    SUBCASE("bad arguments") {
        Dataset copy = ds;
        Rng rng(1);
        check_throws_mentioning<ValueError>([&] { augment_crop_flip(copy, rng, -1); },
                                            {"augment_crop_flip", "pad"}, "negative pad");
        check_throws_mentioning<ValueError>(
            [&] { augment_crop_flip(std::span<float>(copy.images), n + 1, c, h, w, rng); },
            {"augment_crop_flip"}, "size mismatch");
    }
}

// ---- samplers -------------------------------------------------------------------------------

TEST_CASE("data::Batcher covers every index once per epoch in a seeded order") {
    Batcher b(103, 10, 42);
    CHECK(b.batches_per_epoch() == 11);
    const auto e0 = b.epoch_batches(0);
    REQUIRE(e0.size() == 11);
    CHECK(e0.back().size() == 3);
    std::vector<index_t> all;
    for (const auto& batch : e0) all.insert(all.end(), batch.begin(), batch.end());
    CHECK(all != iota_indices(103));  // shuffled
    std::sort(all.begin(), all.end());
    CHECK(all == iota_indices(103));  // each index exactly once

    // next() streams the same batches and moves on to a differently ordered epoch 1.
    for (const auto& batch : e0) CHECK(b.next() == batch);
    CHECK(b.epoch() == 0);
    const auto first_of_1 = b.next();
    CHECK(b.epoch() == 1);
    CHECK(first_of_1 == b.epoch_batches(1).front());
    CHECK(b.order(1) != b.order(0));
    CHECK(Batcher(103, 10, 42).order(5) == b.order(5));  // seeded
    CHECK(Batcher(103, 10, 43).order(0) != b.order(0));
    b.seek(0);
    CHECK(b.next() == e0.front());

    Batcher dl(103, 10, 42, /*drop_last=*/true);
    CHECK(dl.batches_per_epoch() == 10);
    std::set<index_t> seen;
    for (const auto& batch : dl.epoch_batches(0)) {
        CHECK(batch.size() == 10);
        seen.insert(batch.begin(), batch.end());
    }
    CHECK(seen.size() == 100);

    Batcher ordered(5, 2, 0, false, /*shuffle=*/false);
    CHECK(ordered.epoch_batches(3) == std::vector<std::vector<index_t>>{{0, 1}, {2, 3}, {4}});

    Batcher none(5, 8, 0, true);
    check_throws_mentioning<ValueError>([&] { (void)none.next(); }, {"Batcher", "no batch"},
                                        "empty epoch");
    check_throws_mentioning<ValueError>([] { (void)Batcher(5, 0, 0); }, {"Batcher", "batch size 0"},
                                        "zero batch");
}

TEST_CASE("data::BalancedSampler gives equal class counts per batch") {
    std::vector<index_t> labels(100, 1);
    for (std::size_t i = 0; i < 5; ++i) labels[i * 20] = 0;  // 5 minority examples among 95
    BalancedSampler s(labels, 2, 10, 77);
    std::set<index_t> minority_seen;
    for (int step = 0; step < 200; ++step) {
        const auto batch = s.next();
        REQUIRE(batch.size() == 10);
        std::vector<index_t> counts(2, 0);
        for (index_t i : batch) {
            REQUIRE(i >= 0);
            REQUIRE(i < 100);
            ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
            if (labels[static_cast<std::size_t>(i)] == 0) minority_seen.insert(i);
        }
        CHECK(counts == std::vector<index_t>{5, 5});
    }
    CHECK(minority_seen.size() == 5);  // with replacement, every minority example comes up

    BalancedSampler a(make_dataset(30, 3), 6, 1), b(make_dataset(30, 3), 6, 1);
    CHECK(a.next() == b.next());
    check_throws_mentioning<ValueError>([&] { (void)BalancedSampler(labels, 2, 9, 0); },
                                        {"BalancedSampler", "batch size 9", "2 classes"},
                                        "not a multiple");
    check_throws_mentioning<ValueError>([&] { (void)BalancedSampler(labels, 3, 9, 0); },
                                        {"BalancedSampler", "class 2 has no examples"},
                                        "absent class");
}
