// l2rw/data/file.hpp — reading a whole data file into memory, raw or gzip-compressed.
//
// A file that starts with the gzip magic bytes 1f 8b is inflated through zlib; any other
// file is read as it is. Byte offsets in the loaders' messages always refer to the
// (decompressed) content, which is what the format describes.
#pragma once

#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "error.hpp"

namespace l2rw::data {

namespace detail {

inline std::string errno_text(int e) {
    return e ? std::string(std::strerror(e)) : std::string("unknown error");
}

/// True when the file at `path` begins with the gzip magic 1f 8b.
inline bool is_gzip(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        const int e = errno;
        throw DataError(path + ": cannot open (" + errno_text(e) + ")");
    }
    unsigned char m[2] = {0, 0};
    const std::size_t got = std::fread(m, 1, 2, f);
    std::fclose(f);
    return got == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

inline std::vector<std::uint8_t> read_raw(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        const int e = errno;
        throw DataError(path + ": cannot open (" + errno_text(e) + ")");
    }
    std::vector<std::uint8_t> out;
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) out.reserve(static_cast<std::size_t>(size));
    std::uint8_t chunk[1 << 16];
    for (;;) {
        const std::size_t got = std::fread(chunk, 1, sizeof chunk, f);
        out.insert(out.end(), chunk, chunk + got);
        if (got < sizeof chunk) break;
    }
    const bool failed = std::ferror(f) != 0;
    const int e = errno;
    std::fclose(f);
    if (failed)
        throw DataError(path + ": read error at byte " + std::to_string(out.size()) + " (" +
                        errno_text(e) + ")");
    return out;
}

/// zlib's gzerror text without the "<path>: " prefix it adds.
inline std::string gz_message(gzFile f, const std::string& path, int& zerr) {
    const char* msg = gzerror(f, &zerr);
    std::string text = msg ? msg : "";
    if (text.rfind(path + ": ", 0) == 0) text.erase(0, path.size() + 2);
    return text.empty() ? std::string("unknown zlib error") : text;
}

inline std::vector<std::uint8_t> read_gzip(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) {
        const int e = errno;
        throw DataError(path + ": cannot open (" + errno_text(e) + ")");
    }
    gzbuffer(f, 1u << 17);
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> chunk(1u << 20);
    for (;;) {
        const int got = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
        if (got < 0) {
            int zerr = 0;
            const std::string text = gz_message(f, path, zerr);
            gzclose(f);
            throw DataError(path + ": gzip error after byte " + std::to_string(out.size()) +
                            " of the decompressed data (" + text + ")");
        }
        out.insert(out.end(), chunk.begin(), chunk.begin() + got);
        if (got == 0) break;
    }
    // A gzip stream cut short reads as a clean end of data but leaves Z_BUF_ERROR behind.
    int zerr = Z_OK;
    const std::string text = gz_message(f, path, zerr);
    gzclose(f);
    if (zerr != Z_OK)
        throw DataError(path + ": gzip stream is damaged or cut short after byte " +
                        std::to_string(out.size()) + " of the decompressed data (" + text + ")");
    return out;
}

}  // namespace detail

/// Every byte of the file at `path`, inflated first when it is gzip-compressed.
/// Throws DataError naming the file when it cannot be opened, read or inflated.
inline std::vector<std::uint8_t> read_file(const std::string& path) {
    return detail::is_gzip(path) ? detail::read_gzip(path) : detail::read_raw(path);
}

}  // namespace l2rw::data
