// l2rw/data/idx.hpp — the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//
// An IDX file is a big-endian header followed by unsigned bytes:
//   images  00 00 08 03 | n | rows | cols | n·rows·cols pixels     (magic 0x00000803)
//   labels  00 00 08 01 | n | n labels                              (magic 0x00000801)
// load_idx() checks the magic, the dimensions, that each file holds exactly the bytes its
// header declares (no more, no less), the label range and that both files count the same
// examples; every failure is a DataError naming the file and the byte offset. The header is
// checked before anything else is read, and no more than it declares is ever read (plus a
// bounded look past the end to count trailing bytes), so a gzip bomb cannot take memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "dataset.hpp"
#include "error.hpp"
#include "file.hpp"

namespace l2rw::data {

namespace detail {

inline std::string hex32(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xfu];
    return s;
}

inline std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

/// The content ended at byte `have`, before the `expected` bytes its header declares.
[[noreturn]] inline void idx_truncated(const std::string& path, std::uint64_t have,
                                       std::uint64_t expected, const std::string& what) {
    throw DataError(path + ": truncated: expected " + std::to_string(expected) + " bytes (" + what +
                    "), file ends at byte " + std::to_string(have));
}

/// How many trailing bytes an error message counts before it stops (so that a file with
/// gigabytes after its data is not inflated to the end just to count them).
inline constexpr std::uint64_t idx_trailing_count_limit = std::uint64_t{1} << 20;

/// Checks that `in` has delivered exactly `expected` bytes and holds no more.
inline void check_idx_end(FileReader& in, std::uint64_t expected, const std::string& what) {
    if (in.offset() < expected) idx_truncated(in.path(), in.offset(), expected, what);
    const std::uint64_t extra = in.skip(idx_trailing_count_limit + 1);
    if (extra != 0)
        throw DataError(in.path() + ": trailing bytes: expected " + std::to_string(expected) +
                        " bytes (" + what + "), " +
                        (extra > idx_trailing_count_limit
                             ? "more than " + std::to_string(idx_trailing_count_limit)
                             : std::to_string(extra)) +
                        " more bytes follow from byte " + std::to_string(expected));
}

/// Reads a header of `size` bytes (`what`) starting with the magic `want` of `kind` files;
/// throws unless the magic matches and the header is whole.
inline std::vector<std::uint8_t> read_idx_header(FileReader& in, std::size_t size,
                                                 std::uint32_t want, const char* kind,
                                                 const char* what) {
    std::vector<std::uint8_t> b(size);
    b.resize(in.read(b.data(), size));
    if (b.size() < 4) idx_truncated(in.path(), b.size(), 4, "the 4-byte magic number");
    const std::uint32_t magic = be32(b, 0);
    if (magic != want)
        throw DataError(in.path() + ": bad magic " + hex32(magic) + " at byte 0 (want " +
                        hex32(want) + " for " + kind + ")");
    if (b.size() < size) idx_truncated(in.path(), b.size(), size, what);
    return b;
}

}  // namespace detail

/// Pixels of an IDX image file (magic 0x00000803).
struct IdxImages {
    index_t n = 0, rows = 0, cols = 0;
    std::vector<std::uint8_t> pixels;  ///< n·rows·cols bytes
};

/// Reads an IDX image file (raw or gzip). Throws DataError naming the file and the byte.
/// The header is read and checked first; then exactly the bytes it declares are read.
inline IdxImages read_idx_images(const std::string& path) {
    FileReader in(path);
    const std::vector<std::uint8_t> b = detail::read_idx_header(
        in, 16, 0x00000803u, "images", "the 16-byte header of an image file");
    const std::uint64_t n = detail::be32(b, 4), rows = detail::be32(b, 8),
                        cols = detail::be32(b, 12);
    if (rows == 0 || cols == 0)
        throw DataError(path + ": image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                        " (bytes 8..15) has a zero dimension");
    if (rows * cols > (std::uint64_t{1} << 24))
        throw DataError(path + ": image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                        " (bytes 8..15) is implausibly large");
    const std::uint64_t expected = 16 + n * rows * cols;
    IdxImages out;
    out.n = static_cast<index_t>(n);
    out.rows = static_cast<index_t>(rows);
    out.cols = static_cast<index_t>(cols);
    in.read(out.pixels, expected - 16);
    detail::check_idx_end(in, expected,
                          "16-byte header + " + std::to_string(n) + " images of " +
                              std::to_string(rows) + "x" + std::to_string(cols));
    return out;
}

/// Reads an IDX label file (raw or gzip); every label must lie in [0, max_label].
/// Throws DataError naming the file and the byte.
inline std::vector<index_t> read_idx_labels(const std::string& path, index_t max_label = 9) {
    FileReader in(path);
    const std::vector<std::uint8_t> head =
        detail::read_idx_header(in, 8, 0x00000801u, "labels", "the 8-byte header of a label file");
    const std::uint64_t n = detail::be32(head, 4);
    std::vector<std::uint8_t> b;
    in.read(b, n);
    detail::check_idx_end(in, 8 + n, "8-byte header + " + std::to_string(n) + " labels");
    std::vector<index_t> labels(b.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const index_t y = b[i];
        if (y > max_label)
            throw DataError(path + ": label " + std::to_string(y) + " at byte " +
                            std::to_string(8 + i) + " is outside [0, " + std::to_string(max_label) +
                            "]");
        labels[i] = y;
    }
    return labels;
}

/// Loads an IDX image file and its label file as a Dataset of [n, 1, rows, cols] images in
/// [0, 1] with `max_label + 1` classes.
inline Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                        index_t max_label = 9) {
    if (max_label < 0 || max_label > 255)
        throw ValueError("load_idx: max_label " + std::to_string(max_label) +
                         " is outside [0, 255]");
    IdxImages img = read_idx_images(images_path);
    std::vector<index_t> labels = read_idx_labels(labels_path, max_label);
    if (static_cast<index_t>(labels.size()) != img.n)
        throw DataError(images_path + " declares " + std::to_string(img.n) +
                        " images (count at byte 4) but " + labels_path + " declares " +
                        std::to_string(labels.size()) + " labels (count at byte 4)");
    Dataset ds;
    ds.n = img.n;
    ds.c = 1;
    ds.h = img.rows;
    ds.w = img.cols;
    ds.classes = max_label + 1;
    ds.images.resize(img.pixels.size());
    for (std::size_t i = 0; i < img.pixels.size(); ++i)
        ds.images[i] = static_cast<float>(img.pixels[i]) / 255.0f;
    ds.labels = std::move(labels);
    ds.origin = iota_indices(ds.n);
    return ds;
}

namespace detail {

/// The first of `names` (each tried as given, then with ".gz") that exists in `dir`.
inline std::string find_data_file(const std::filesystem::path& dir,
                                  std::initializer_list<const char*> names, const char* who) {
    std::string tried;
    for (const char* name : names) {
        for (const char* suffix : {".gz", ""}) {
            const auto p = dir / (std::string(name) + suffix);
            std::error_code ec;
            if (std::filesystem::is_regular_file(p, ec)) return p.string();
            if (!tried.empty()) tried += ", ";
            tried += p.string();
        }
    }
    throw DataError(std::string(who) + ": no data file in " + dir.string() + " (tried " + tried +
                    ")");
}

inline Dataset load_mnist_like(const std::filesystem::path& dir, bool train, const char* who) {
    const char* split = train ? "train" : "t10k";
    const std::string s = split;
    const std::string i3 = s + "-images-idx3-ubyte", i3dot = s + "-images.idx3-ubyte";
    const std::string l1 = s + "-labels-idx1-ubyte", l1dot = s + "-labels.idx1-ubyte";
    const std::string images = find_data_file(dir, {i3.c_str(), i3dot.c_str()}, who);
    const std::string labels = find_data_file(dir, {l1.c_str(), l1dot.c_str()}, who);
    return load_idx(images, labels, 9);
}

}  // namespace detail

/// MNIST from `dir`: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each raw or ".gz".
inline Dataset load_mnist(const std::string& dir, bool train = true) {
    return detail::load_mnist_like(dir, train, "load_mnist");
}

/// Fashion-MNIST from `dir` (same file names and format as MNIST; Debian's
/// dataset-fashion-mnist installs them gzipped in /usr/share/datasets/fashion-mnist).
inline Dataset load_fashion_mnist(const std::string& dir, bool train = true) {
    return detail::load_mnist_like(dir, train, "load_fashion_mnist");
}

}  // namespace l2rw::data
