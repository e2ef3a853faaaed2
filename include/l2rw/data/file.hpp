// l2rw/data/file.hpp — reading a data file as a stream of bytes, raw or gzip-compressed.
//
// A file that starts with the gzip magic bytes 1f 8b is inflated through zlib's inflate();
// any other file is read as it is. Byte offsets in the loaders' messages refer to the
// (decompressed) content, which is what the formats describe; a damaged gzip stream also
// names the byte of the file where the damage shows.
//
// FileReader hands out the content in pieces and inflates no further ahead than the piece
// asked for, so a loader reads a header first, validates it and then asks for exactly the
// bytes it declares: a small file that inflates to gigabytes (a "gzip bomb") costs no more
// memory than its header promises. read_file() reads a whole file up to a byte limit.
//
// Gzip: a file may hold several gzip members one after the other (what `cat a.gz b.gz`
// makes; gzip -d reads it as the concatenation, and so does this reader). Anything else
// after the end of a member (zero padding, garbage, another file glued on) is a DataError,
// as it is for a raw file with bytes beyond what its header declares. So are a stream that
// is cut short (the file ends inside a member) and corrupt data (a bad member header, a bad
// deflate block, a CRC-32 or length mismatch in a member's trailer).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"

namespace l2rw::data {

namespace detail {

inline std::string errno_text(int e) {
    return e ? std::string(std::strerror(e)) : std::string("unknown error");
}

}  // namespace detail

/// The content of a data file, read front to back: the file's bytes, or what they inflate
/// to when the file is gzip-compressed. Every failure is a DataError naming the file.
class FileReader {
  public:
    explicit FileReader(std::string path) : path_(std::move(path)), in_(std::size_t{1} << 16) {
        f_ = std::fopen(path_.c_str(), "rb");
        if (!f_) {
            const int e = errno;
            throw DataError(path_ + ": cannot open (" + detail::errno_text(e) + ")");
        }
        std::error_code ec;
        const auto size = std::filesystem::file_size(path_, ec);
        if (!ec) file_size_ = static_cast<std::uint64_t>(size);
        try {
            ensure(2);
        } catch (...) {  // no destructor runs for a constructor that throws
            std::fclose(f_);
            throw;
        }
        gzip_ = avail_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
        if (gzip_) {
            if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
                std::fclose(f_);
                throw DataError(path_ + ": cannot start zlib's inflate");
            }
            zs_ready_ = true;
        }
    }
    ~FileReader() {
        if (zs_ready_) inflateEnd(&zs_);
        if (f_) std::fclose(f_);
    }
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] bool compressed() const { return gzip_; }
    /// Bytes of content handed out so far (the offset of the next one).
    [[nodiscard]] std::uint64_t offset() const { return offset_; }

    /// Reads up to `n` bytes into `dst`; fewer only at the end of the content.
    std::size_t read(std::uint8_t* dst, std::size_t n) {
        return gzip_ ? inflate_into(dst, n) : copy_into(dst, n);
    }

    /// Appends up to `n` bytes to `out` (fewer only at the end of the content), growing it as
    /// the bytes arrive rather than by `n` up front; returns how many it appended.
    std::uint64_t read(std::vector<std::uint8_t>& out, std::uint64_t n) {
        const std::uint64_t hint = gzip_ ? std::uint64_t{1} << 26 : remaining_raw();
        out.reserve(out.size() + static_cast<std::size_t>(std::min(n, hint)));
        std::uint64_t got = 0;
        while (got < n) {
            const auto step = static_cast<std::size_t>(
                std::min<std::uint64_t>(n - got, std::max<std::size_t>(in_.size(), out.size())));
            const std::size_t old = out.size();
            out.resize(old + step);
            const std::size_t k = read(out.data() + old, step);
            out.resize(old + k);
            got += k;
            if (k < step) break;
        }
        return got;
    }

    /// Reads and drops up to `n` bytes; returns how many there were (fewer only at the end).
    std::uint64_t skip(std::uint64_t n) {
        std::vector<std::uint8_t> sink(std::min<std::uint64_t>(n, in_.size()));
        std::uint64_t got = 0;
        while (got < n) {
            const auto step =
                static_cast<std::size_t>(std::min<std::uint64_t>(n - got, sink.size()));
            const std::size_t k = read(sink.data(), step);
            got += k;
            if (k < step) break;
        }
        return got;
    }

  private:
    /// File offset of the next unread input byte.
    [[nodiscard]] std::uint64_t file_pos() const { return base_ + pos_; }
    [[nodiscard]] std::uint64_t remaining_raw() const {
        return file_size_ > file_pos() ? file_size_ - file_pos() : 0;
    }

    /// Makes at least `k` unread input bytes available unless the file ends first; returns
    /// how many are available.
    std::size_t ensure(std::size_t k) {
        if (avail_ - pos_ >= k || eof_) return avail_ - pos_;
        std::memmove(in_.data(), in_.data() + pos_, avail_ - pos_);
        base_ += pos_;
        avail_ -= pos_;
        pos_ = 0;
        while (avail_ < k && !eof_) {
            const std::size_t got = std::fread(in_.data() + avail_, 1, in_.size() - avail_, f_);
            avail_ += got;
            if (got == 0) {
                if (std::ferror(f_)) {
                    const int e = errno;
                    throw DataError(path_ + ": read error at byte " +
                                    std::to_string(base_ + avail_) + " of the file (" +
                                    detail::errno_text(e) + ")");
                }
                eof_ = true;
            }
        }
        return avail_ - pos_;
    }

    std::size_t copy_into(std::uint8_t* dst, std::size_t n) {
        std::size_t got = 0;
        while (got < n && ensure(1) > 0) {
            const std::size_t k = std::min(n - got, avail_ - pos_);
            std::memcpy(dst + got, in_.data() + pos_, k);
            pos_ += k;
            got += k;
            offset_ += k;
        }
        return got;
    }

    std::string where() const {
        return "at byte " + std::to_string(file_pos()) + " of the file, after " +
               std::to_string(offset_) + " bytes of decompressed data";
    }

    /// After the end of a member: true when another member follows, false at the end of the
    /// file; anything else is trailing data, which is rejected.
    bool next_member() {
        const std::size_t have = ensure(2);
        if (have == 0) return false;
        if (have >= 2 && in_[pos_] == 0x1f && in_[pos_ + 1] == 0x8b) {
            inflateReset(&zs_);
            return true;
        }
        const std::uint64_t extra = remaining_raw() > 0 ? remaining_raw() : have;
        throw DataError(path_ + ": " + std::to_string(extra) +
                        " bytes that are not gzip data follow the end of the gzip stream " +
                        where() + " (only further gzip members may follow one)");
    }

    std::size_t inflate_into(std::uint8_t* dst, std::size_t n) {
        std::size_t got = 0;
        while (got < n && !ended_) {
            if (between_) {
                if (!next_member()) {
                    ended_ = true;
                    break;
                }
                between_ = false;
            }
            if (ensure(1) == 0)
                throw DataError(path_ + ": gzip stream is cut short: the file ends " + where() +
                                ", inside a gzip member");
            const std::size_t in_before = avail_ - pos_;
            const std::size_t out_want =
                std::min<std::size_t>(n - got, std::numeric_limits<uInt>::max());
            zs_.next_in = in_.data() + pos_;
            zs_.avail_in = static_cast<uInt>(std::min<std::size_t>(in_before, 1u << 30));
            zs_.next_out = dst + got;
            zs_.avail_out = static_cast<uInt>(out_want);
            const uInt avail_in_before = zs_.avail_in;
            const int rc = ::inflate(&zs_, Z_NO_FLUSH);
            pos_ += avail_in_before - zs_.avail_in;
            got += out_want - zs_.avail_out;
            offset_ += out_want - zs_.avail_out;
            if (rc == Z_STREAM_END) {
                between_ = true;
            } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
                const std::string msg = zs_.msg ? zs_.msg : "invalid data";
                throw DataError(path_ + ": gzip data is corrupt " + where() + " (zlib: " + msg +
                                ")");
            } else if (rc == Z_MEM_ERROR) {
                throw DataError(path_ + ": out of memory while inflating");
            } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
                throw DataError(path_ + ": zlib inflate error " + std::to_string(rc) + " " +
                                where());
            }
        }
        return got;
    }

    std::string path_;
    std::FILE* f_ = nullptr;
    std::uint64_t file_size_ = 0;
    std::vector<std::uint8_t> in_;  // input buffer: unread bytes are [pos_, avail_)
    std::size_t pos_ = 0, avail_ = 0;
    std::uint64_t base_ = 0;  // file offset of in_[0]
    bool eof_ = false;
    bool gzip_ = false;
    z_stream zs_{};
    bool zs_ready_ = false;
    bool between_ = false;  // a member has ended; the next one has not begun
    bool ended_ = false;    // the last member has ended and the file with it
    std::uint64_t offset_ = 0;
};

/// Every byte of the file at `path`, inflated first when it is gzip-compressed. Throws
/// DataError naming the file when it cannot be opened, read or inflated, and as soon as its
/// content runs past `max_bytes`.
inline std::vector<std::uint8_t> read_file(
    const std::string& path, std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max()) {
    FileReader in(path);
    std::vector<std::uint8_t> out;
    in.read(out, max_bytes);
    if (in.offset() == max_bytes && in.skip(1) != 0)
        throw DataError(path + ": holds more than " + std::to_string(max_bytes) + " bytes" +
                        (in.compressed() ? " of decompressed data" : "") +
                        " (the most read_file was asked to read)");
    return out;
}

}  // namespace l2rw::data
