// l2rw/data/cifar.hpp — the binary versions of CIFAR-10 and CIFAR-100.
//
// A CIFAR-10 file is a run of 3073-byte records: 1 label byte (0..9), then 3072 pixel bytes
// (1024 red, 1024 green, 1024 blue, each a 32×32 image in row-major order) — already the
// [c, h, w] layout of a Dataset. A CIFAR-100 record has 2 label bytes, coarse (0..19) then
// fine (0..99), before the pixels; the loaders use the fine label.
// Files may also be gzip-compressed (detected by their magic bytes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "../config.hpp"
#include "dataset.hpp"
#include "error.hpp"
#include "file.hpp"

namespace l2rw::data {

enum class CifarKind {
    cifar10,   ///< 1 label byte (0..9) + 3072 pixel bytes
    cifar100,  ///< coarse label (0..19) + fine label (0..99) + 3072 pixel bytes; fine label used
};

/// The most records load_cifar() takes from one file unless told otherwise: the whole of
/// CIFAR-10 or CIFAR-100, training and test sets together (the largest real file, CIFAR-100's
/// train.bin, holds 50000). A file with more is a DataError, read no further than the cap.
inline constexpr std::size_t cifar_max_records = 60000;

/// Loads and concatenates CIFAR binary files in the order given; origin rows run on across
/// files. Each file must be a whole, non-zero number of records (at most `max_records`) with
/// labels in range; otherwise DataError names the file and the byte offset. Files are read a
/// record at a time, so a file cannot take more memory than `max_records` records.
inline Dataset load_cifar(const std::vector<std::string>& files, CifarKind kind,
                          std::size_t max_records = cifar_max_records) {
    constexpr std::size_t pixels = 3 * 32 * 32;
    const std::size_t label_bytes = kind == CifarKind::cifar10 ? 1 : 2;
    const std::size_t record = label_bytes + pixels;
    const index_t classes = kind == CifarKind::cifar10 ? 10 : 100;
    if (files.empty()) throw ValueError("load_cifar: no files given");
    if (max_records == 0) throw ValueError("load_cifar: max_records must be positive");

    Dataset ds;
    ds.c = 3;
    ds.h = 32;
    ds.w = 32;
    ds.classes = classes;
    std::vector<std::uint8_t> b(record);
    for (const std::string& path : files) {
        FileReader in(path);
        std::size_t count = 0;
        for (;; ++count) {
            const std::size_t at = count * record;
            if (count == max_records) {
                if (in.skip(1) != 0)
                    throw DataError(path + ": more than " + std::to_string(max_records) + " " +
                                    std::to_string(record) +
                                    "-byte records (the most load_cifar takes from one file): "
                                    "the data goes on at byte " +
                                    std::to_string(at));
                break;
            }
            const std::size_t got = in.read(b.data(), record);
            if (got == 0) break;
            if (got < record)
                throw DataError(path + ": " + std::to_string(at + got) +
                                " bytes is not a whole number of " + std::to_string(record) +
                                "-byte records: partial record of " + std::to_string(got) +
                                " bytes at byte " + std::to_string(at));
            if (kind == CifarKind::cifar100 && b[0] >= 20)
                throw DataError(path + ": coarse label " + std::to_string(b[0]) + " at byte " +
                                std::to_string(at) + " is outside [0, 19]");
            const index_t y = b[label_bytes - 1];
            if (y >= classes)
                throw DataError(path + ": " + (kind == CifarKind::cifar100 ? "fine " : "") +
                                "label " + std::to_string(y) + " at byte " +
                                std::to_string(at + label_bytes - 1) + " is outside [0, " +
                                std::to_string(classes - 1) + "]");
            ds.labels.push_back(y);
            const std::size_t old = ds.images.size();
            ds.images.resize(old + pixels);
            for (std::size_t k = 0; k < pixels; ++k)
                ds.images[old + k] = static_cast<float>(b[label_bytes + k]) / 255.0f;
        }
        if (count == 0)
            throw DataError(path + ": empty file (0 bytes, want " + std::to_string(record) +
                            "-byte records)");
        ds.n += static_cast<index_t>(count);
    }
    ds.origin = iota_indices(ds.n);
    return ds;
}

namespace detail {

/// `dir` itself when it holds `probe`, else `dir/sub` when that does, else `dir`.
inline std::filesystem::path cifar_dir(const std::filesystem::path& dir, const char* sub,
                                       const char* probe) {
    std::error_code ec;
    if (std::filesystem::exists(dir / probe, ec)) return dir;
    if (std::filesystem::exists(dir / sub / probe, ec)) return dir / sub;
    return dir;
}

}  // namespace detail

/// CIFAR-10 from `dir` (or its subfolder cifar-10-batches-bin): data_batch_1..5.bin for
/// training (50000 images), test_batch.bin for testing (10000); each file at most 10000.
inline Dataset load_cifar10(const std::string& dir, bool train = true) {
    const auto d = detail::cifar_dir(dir, "cifar-10-batches-bin",
                                     train ? "data_batch_1.bin" : "test_batch.bin");
    std::vector<std::string> files;
    if (train)
        for (int i = 1; i <= 5; ++i)
            files.push_back((d / ("data_batch_" + std::to_string(i) + ".bin")).string());
    else
        files.push_back((d / "test_batch.bin").string());
    return load_cifar(files, CifarKind::cifar10, 10000);
}

/// CIFAR-100 (fine labels) from `dir` (or its subfolder cifar-100-binary): train.bin
/// (50000 images) or test.bin (10000), each at most that many.
inline Dataset load_cifar100(const std::string& dir, bool train = true) {
    const char* name = train ? "train.bin" : "test.bin";
    const auto d = detail::cifar_dir(dir, "cifar-100-binary", name);
    return load_cifar({(d / name).string()}, CifarKind::cifar100, train ? 50000 : 10000);
}

}  // namespace l2rw::data
