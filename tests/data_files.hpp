// tests/data_files.hpp — small data files written by the data tests (test_data.cpp,
// test_data_file.cpp): a temporary directory, raw and gzipped writers, and IDX / CIFAR
// images of known content.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <l2rw/config.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace l2rw::testing::files {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

/// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("l2rw_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] std::string operator/(const std::string& name) const {
        return (path / name).string();
    }
};

inline void write_raw(const std::string& path, const Bytes& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(f.good());
}

inline void write_gz(const std::string& path, const Bytes& b) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!b.empty())
        REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) ==
                static_cast<int>(b.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

inline Bytes read_raw(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
}

inline void put_be32(Bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

inline std::uint8_t pixel(index_t i, index_t k) {
    return static_cast<std::uint8_t>((i * 37 + k * 11) % 256);
}

inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols,
                        std::uint32_t magic = 0x00000803) {
    Bytes b;
    put_be32(b, magic);
    put_be32(b, n);
    put_be32(b, rows);
    put_be32(b, cols);
    for (index_t i = 0; i < n; ++i)
        for (index_t k = 0; k < index_t{rows} * cols; ++k) b.push_back(pixel(i, k));
    return b;
}

inline Bytes idx_labels(const std::vector<std::uint8_t>& labels, std::uint32_t magic = 0x00000801) {
    Bytes b;
    put_be32(b, magic);
    put_be32(b, static_cast<std::uint32_t>(labels.size()));
    b.insert(b.end(), labels.begin(), labels.end());
    return b;
}

/// CIFAR records: `labels` holds 1 (CIFAR-10) or 2 (CIFAR-100) label bytes per record.
inline Bytes cifar_records(const std::vector<std::vector<std::uint8_t>>& labels,
                           index_t first_row = 0) {
    Bytes b;
    for (std::size_t r = 0; r < labels.size(); ++r) {
        b.insert(b.end(), labels[r].begin(), labels[r].end());
        for (index_t k = 0; k < 3072; ++k)
            b.push_back(pixel(first_row + static_cast<index_t>(r), k));
    }
    return b;
}

}  // namespace l2rw::testing::files
