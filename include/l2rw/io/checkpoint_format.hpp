// l2rw/io/checkpoint_format.hpp — the bytes of an l2rw checkpoint: writing them, and reading
// and validating them without a model (io/checkpoint.hpp fits them to one).
//
// File layout (all integers little-endian; version 2 — version 1 is the same without the
// metadata, and is still read):
//
//   offset 0   8 bytes   magic "L2RWCKPT"
//          8   u32       format version
//         12   u32       scalar type code (1 = float32, 2 = float64)
//         16   u64       file size in bytes, CRC included (detects truncation up front)
//         24   u64       entry count
//         32   u8        has optimizer (0 / 1); when 1:
//                          u32 length + bytes: optimizer name ("SGD", "Adam")
//                          i64 optimizer step count
//              entries, each:
//                u32 length + bytes: name
//                u8  kind (0 = parameter, 1 = buffer, 2 = optimizer state)
//                u8  rank, then rank × i64 dims
//                numel × sizeof(scalar) bytes: the values, row-major, little-endian
//              u32       metadata count (version 2), then that many
//                          u32 length + bytes: key (not empty, each key once)
//                          u32 length + bytes: value
//   last 4     u32       CRC-32 (zlib) of every byte before it
//
// parse() checks, in this order: the magic, the version, the scalar type, the size field
// against the file's size, the CRC-32, then the structure (optimizer flag and step count,
// entry kinds, ranks, dimensions, duplicate names, the metadata's keys, nothing after the
// end). A file whose size field and CRC-32 both match is whole, so a field that runs past its
// end is reported as a bad field, not as truncation; a file whose size field does not match
// is told apart as cut short, longer than its checkpoint, or carrying a corrupt size field.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../shape.hpp"

namespace l2rw {

/// A checkpoint file that cannot be written, read, or does not fit the model / optimizer.
class CheckpointError : public Error {
  public:
    using Error::Error;
};

namespace io {

inline constexpr char checkpoint_magic[8] = {'L', '2', 'R', 'W', 'C', 'K', 'P', 'T'};
/// The version written; every version from checkpoint_oldest_version on is read.
inline constexpr std::uint32_t checkpoint_version = 2;
inline constexpr std::uint32_t checkpoint_oldest_version = 1;

/// Text stored beside the tensors (what defines a run, a caller's running statistics):
/// key -> value, both any bytes, keys not empty.
using Metadata = std::map<std::string, std::string>;

/// How `here` differs from `there`, in words: "k is 'a' there, 'b' here; j is not set there,
/// 'c' here; ..." for every key that differs (empty when they are equal).
inline std::string metadata_differences(const Metadata& there, const Metadata& here) {
    std::string diff;
    auto add = [&](const std::string& k, const std::string& a, const std::string& b) {
        diff += (diff.empty() ? "" : "; ") + k + " is " + a + " there, " + b + " here";
    };
    for (const auto& [k, v] : here) {
        const auto it = there.find(k);
        if (it == there.end())
            add(k, "not set", "'" + v + "'");
        else if (it->second != v)
            add(k, "'" + it->second + "'", "'" + v + "'");
    }
    for (const auto& [k, v] : there)
        if (!here.count(k)) add(k, "'" + v + "'", "not set");
    return diff;
}

/// What an entry of a checkpoint is.
enum class EntryKind : std::uint8_t { parameter = 0, buffer = 1, optimizer_state = 2 };

inline const char* to_string(EntryKind k) {
    switch (k) {
        case EntryKind::parameter:
            return "parameter";
        case EntryKind::buffer:
            return "buffer";
        case EntryKind::optimizer_state:
            return "optimizer state";
    }
    return "?";
}

/// The scalar type code stored in the file.
template <class T>
constexpr std::uint32_t scalar_code() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "checkpoints hold float or double tensors");
    return std::is_same_v<T, float> ? 1u : 2u;
}
inline std::string scalar_code_name(std::uint32_t c) {
    return c == 1 ? "float32" : c == 2 ? "float64" : "unknown type code " + std::to_string(c);
}

namespace detail {

// The fixed part of the layout: the size field's place, and where the entry count starts.
inline constexpr std::size_t size_field_at = 16;
inline constexpr std::size_t body_at = 24;

inline std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    uLong c = crc;
    while (n > 0) {
        const auto chunk = static_cast<uInt>(std::min<std::size_t>(n, std::size_t{1} << 30));
        c = ::crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return static_cast<std::uint32_t>(c);
}
inline std::uint32_t crc32_of(const unsigned char* p, std::size_t n) {
    return crc32_update(static_cast<std::uint32_t>(::crc32(0L, Z_NULL, 0)), p, n);
}

template <class U>
U le_at(const unsigned char* p) {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i)
        v |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
    return v;
}

class Writer {
  public:
    void bytes(const void* p, std::size_t n) {
        const auto* c = static_cast<const unsigned char*>(p);
        buf.insert(buf.end(), c, c + n);
    }
    template <class U>
    void uint(U v) {
        for (std::size_t i = 0; i < sizeof(U); ++i)
            buf.push_back(static_cast<unsigned char>((v >> (8 * i)) & 0xFF));
    }
    void u8(std::uint8_t v) { buf.push_back(v); }
    void u32(std::uint32_t v) { uint(v); }
    void u64(std::uint64_t v) { uint(v); }
    void i64(std::int64_t v) { uint(static_cast<std::uint64_t>(v)); }
    void str(const std::string& s) {
        u32(static_cast<std::uint32_t>(s.size()));
        bytes(s.data(), s.size());
    }
    template <class T>
    void values(const std::vector<T>& v) {
        if constexpr (std::endian::native == std::endian::little) {
            bytes(v.data(), v.size() * sizeof(T));
        } else {
            using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            for (T x : v) uint(std::bit_cast<U>(x));
        }
    }
    std::vector<unsigned char> buf;
};

/// A bounds-checked cursor over the first `n` bytes of a file image, from `start`. Running out
/// of bytes throws CheckpointError: "truncated at byte N while reading <what>", or, over a
/// file known to be whole (`whole`: its size field and CRC-32 match, and `n` stops before the
/// CRC), a message that the field before <what> is wrong.
class Reader {
  public:
    Reader(const std::string& file, const unsigned char* p, std::size_t n, std::size_t start = 0,
           bool whole = false)
        : file_(file), p_(p), n_(n), pos_(start), whole_(whole) {}
    void need(std::uint64_t count, std::size_t unit, const std::string& what) const {
        if (count > (n_ - pos_) / unit) short_of(count, unit, what);
    }
    void need(std::size_t k, const std::string& what) const { need(k, 1, what); }
    template <class U>
    U uint(const std::string& what) {
        need(sizeof(U), what);
        const U v = le_at<U>(p_ + pos_);
        pos_ += sizeof(U);
        return v;
    }
    std::uint8_t u8(const std::string& what) { return uint<std::uint8_t>(what); }
    std::uint32_t u32(const std::string& what) { return uint<std::uint32_t>(what); }
    std::uint64_t u64(const std::string& what) { return uint<std::uint64_t>(what); }
    std::int64_t i64(const std::string& what) {
        return static_cast<std::int64_t>(uint<std::uint64_t>(what));
    }
    std::string str(const std::string& what) {
        const std::uint32_t len = u32(what);
        need(len, what);
        std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
        pos_ += len;
        return s;
    }
    /// `count` values, or none (the bytes only skipped) when `keep` is false.
    template <class T>
    std::vector<T> values(std::uint64_t count, const std::string& what, bool keep = true) {
        need(count, sizeof(T), what);
        std::vector<T> v;
        if (!keep) {
            pos_ += static_cast<std::size_t>(count) * sizeof(T);
            return v;
        }
        v.resize(static_cast<std::size_t>(count));
        if constexpr (std::endian::native == std::endian::little) {
            if (count) std::memcpy(v.data(), p_ + pos_, v.size() * sizeof(T));
            pos_ += v.size() * sizeof(T);
        } else {
            using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            for (auto& x : v) x = std::bit_cast<T>(uint<U>(what));
        }
        return v;
    }
    [[nodiscard]] std::size_t pos() const { return pos_; }
    [[nodiscard]] std::size_t remaining() const { return n_ - pos_; }

  private:
    [[noreturn]] void short_of(std::uint64_t count, std::size_t unit,
                               const std::string& what) const {
        const std::string f = "checkpoint " + file_ + ": ";
        if (!whole_)
            throw CheckpointError(f + "truncated at byte " + std::to_string(n_) +
                                  " while reading " + what);
        throw CheckpointError(
            f + what + " at byte " + std::to_string(pos_) + " needs " +
            (unit == 1 ? std::to_string(count) + " bytes"
                       : std::to_string(count) + " values of " + std::to_string(unit) + " bytes") +
            " but only " + std::to_string(n_ - pos_) +
            " bytes remain before the CRC-32; the file is whole (its size and "
            "CRC-32 match), so a count, length or dimension before it is wrong");
    }

    std::string file_;
    const unsigned char* p_;
    std::size_t n_;
    std::size_t pos_;
    bool whole_;
};

template <class T>
struct Entry {
    std::string name;
    EntryKind kind{};
    Shape shape;
    std::vector<T> values;
};

template <class T>
struct Contents {
    std::uint64_t size = 0;  // bytes
    bool has_optimizer = false;
    std::string optimizer;
    std::int64_t optimizer_step = 0;
    std::vector<Entry<T>> entries;
    Metadata metadata;
};

/// Checks the stored CRC-32 (the last 4 bytes) against the bytes before it.
inline void check_crc(const std::string& f, const std::vector<unsigned char>& buf) {
    const std::size_t n = buf.size();
    const std::uint32_t stored = le_at<std::uint32_t>(buf.data() + n - 4);
    const std::uint32_t actual = crc32_of(buf.data(), n - 4);
    if (stored != actual) {
        char msg[96];
        std::snprintf(msg, sizeof msg,
                      ": CRC mismatch (stored %08x, computed %08x): the file is corrupted",
                      static_cast<unsigned>(stored), static_cast<unsigned>(actual));
        throw CheckpointError("checkpoint " + f + msg);
    }
}

/// The size field says `size`, the file has buf.size() bytes (they differ). Throws when the
/// file is longer than its checkpoint, or its CRC-32 shows that only the size field is wrong;
/// returns when the file may be cut short (the caller's walk then says where it ends).
inline void check_size_field(const std::string& f, const std::vector<unsigned char>& buf,
                             std::uint64_t size) {
    const std::size_t n = buf.size();
    const std::string field = "checkpoint " + f + ": the size field (bytes 16..23) says " +
                              std::to_string(size) + " bytes but the file has " + std::to_string(n);
    if (n >= body_at + 4) {
        // The CRC-32 of the file as it would be with the size field set to its real size.
        unsigned char real[8];
        for (std::size_t i = 0; i < 8; ++i)
            real[i] = static_cast<unsigned char>((std::uint64_t{n} >> (8 * i)) & 0xFF);
        std::uint32_t c = crc32_of(buf.data(), size_field_at);
        c = crc32_update(c, real, 8);
        c = crc32_update(c, buf.data() + body_at, n - 4 - body_at);
        if (c == le_at<std::uint32_t>(buf.data() + n - 4))
            throw CheckpointError(field +
                                  ", and the rest of the file is intact (its CRC-32 "
                                  "matches with the size field set to " +
                                  std::to_string(n) + "): the size field is corrupt");
    }
    if (size < n) {
        if (size >= body_at + 4 && crc32_of(buf.data(), static_cast<std::size_t>(size) - 4) ==
                                       le_at<std::uint32_t>(buf.data() + size - 4))
            throw CheckpointError("checkpoint " + f + ": " + std::to_string(n - size) +
                                  " unexpected bytes after the end (the header says " +
                                  std::to_string(size) + " bytes, the file has " +
                                  std::to_string(n) + ")");
        throw CheckpointError(field +
                              ", and the CRC-32 fits neither length: the size field or "
                              "the data is corrupt");
    }
}

/// Parses and validates a checkpoint image (everything but the fit to a model). With
/// `keep_values` false the values are checked for length only and not copied.
template <class T>
Contents<T> parse(const std::string& f, const std::vector<unsigned char>& buf,
                  bool keep_values = true) {
    const std::size_t n = buf.size();
    // Magic: a short file that starts like the magic is a truncated checkpoint.
    const std::size_t mlen = std::min<std::size_t>(n, sizeof checkpoint_magic);
    if (mlen != 0 && std::memcmp(buf.data(), checkpoint_magic, mlen) != 0)
        throw CheckpointError("checkpoint " + f + ": not an l2rw checkpoint (bad magic)");
    Reader h(f, buf.data(), n);
    if (n == 0) h.need(sizeof checkpoint_magic, "the magic bytes (the file is empty)");
    h.need(sizeof checkpoint_magic, "the magic bytes");
    for (std::size_t i = 0; i < sizeof checkpoint_magic; ++i) h.u8("the magic bytes");
    const std::uint32_t version = h.u32("the format version");
    if (version < checkpoint_oldest_version || version > checkpoint_version)
        throw CheckpointError("checkpoint " + f + ": format version " + std::to_string(version) +
                              " is not supported (this build reads versions " +
                              std::to_string(checkpoint_oldest_version) + " to " +
                              std::to_string(checkpoint_version) + ")");
    const std::uint32_t code = h.u32("the scalar type code");
    if (code != scalar_code<float>() && code != scalar_code<double>())
        throw CheckpointError("checkpoint " + f + ": holds values of " + scalar_code_name(code) +
                              " (bytes 12..15; 1 = float32, 2 = float64)");
    if (code != scalar_code<T>())
        throw CheckpointError("checkpoint " + f + ": holds " + scalar_code_name(code) +
                              " values but the model is " + scalar_code_name(scalar_code<T>()));
    Contents<T> c;
    c.size = h.u64("the file size");
    const bool whole = c.size == n && n >= body_at + 4;
    if (whole)
        check_crc(f, buf);
    else if (c.size != n)
        check_size_field(f, buf, c.size);

    Reader r(f, buf.data(), whole ? n - 4 : n, body_at, whole);
    const std::uint64_t count = r.u64("the entry count");
    const std::uint8_t has_opt = r.u8("the optimizer flag");
    if (has_opt > 1)
        throw CheckpointError("checkpoint " + f + ": bad optimizer flag " +
                              std::to_string(has_opt));
    c.has_optimizer = has_opt == 1;
    if (c.has_optimizer) {
        c.optimizer = r.str("the optimizer name");
        c.optimizer_step = r.i64("the optimizer step count");
        if (c.optimizer_step < 0)
            throw CheckpointError("checkpoint " + f + ": negative optimizer step count " +
                                  std::to_string(c.optimizer_step));
    }
    std::set<std::string> seen;
    for (std::uint64_t e = 0; e < count; ++e) {
        const std::string idx = "entry " + std::to_string(e);
        Entry<T> en;
        en.name = r.str("the name of " + idx);
        const std::string what = "entry '" + en.name + "'";
        const std::uint8_t kind = r.u8("the kind of " + what);
        if (kind > 2)
            throw CheckpointError("checkpoint " + f + ": " + what + " has unknown kind " +
                                  std::to_string(kind));
        en.kind = static_cast<EntryKind>(kind);
        if (en.kind == EntryKind::optimizer_state && !c.has_optimizer)
            throw CheckpointError("checkpoint " + f + ": " + what +
                                  " is optimizer state but the file names no optimizer");
        const std::uint8_t rank = r.u8("the rank of " + what);
        if (rank > max_rank)
            throw CheckpointError("checkpoint " + f + ": " + what + " has rank " +
                                  std::to_string(rank) + " (at most " + std::to_string(max_rank) +
                                  ")");
        std::vector<index_t> dims;
        std::uint64_t numel = 1;
        for (int k = 0; k < rank; ++k) {
            const std::int64_t d = r.i64("the dims of " + what);
            if (d < 0)
                throw CheckpointError("checkpoint " + f + ": " + what + " has negative dimension " +
                                      std::to_string(d) + " (dimension " + std::to_string(k) + ")");
            if (d > 0 && numel > (std::uint64_t{1} << 62) / static_cast<std::uint64_t>(d))
                throw CheckpointError("checkpoint " + f + ": " + what + " has dimension " +
                                      std::to_string(d) + " (dimension " + std::to_string(k) +
                                      ") that takes its element count past 2^62");
            numel *= static_cast<std::uint64_t>(d);
            dims.push_back(d);
        }
        en.shape = Shape::from_range(dims.begin(), dims.end());
        if (!seen.insert(en.name).second)
            throw CheckpointError("checkpoint " + f + ": entry '" + en.name + "' appears twice");
        en.values = r.template values<T>(numel, "the values of " + what, keep_values);
        c.entries.push_back(std::move(en));
    }
    if (version >= 2) {
        const std::uint32_t m = r.u32("the metadata count");
        for (std::uint32_t k = 0; k < m; ++k) {
            std::string key = r.str("metadata key " + std::to_string(k));
            if (key.empty())
                throw CheckpointError("checkpoint " + f + ": metadata key " + std::to_string(k) +
                                      " is empty");
            std::string value = r.str("the value of metadata '" + key + "'");
            if (!c.metadata.emplace(key, std::move(value)).second)
                throw CheckpointError("checkpoint " + f + ": metadata '" + key + "' appears twice");
        }
    }
    const std::string last = version >= 2 ? "the metadata" : "the last entry";
    const std::size_t tail = whole ? 0 : 4;  // the CRC-32, when the reader spans it
    r.need(tail, "the CRC-32");
    if (r.remaining() != tail)
        throw CheckpointError("checkpoint " + f + ": " + std::to_string(r.remaining() - tail) +
                              " unexpected bytes after " + last);
    if (!whole)  // the entries and a CRC-32 fill the file, which is shorter than the size field
        throw CheckpointError("checkpoint " + f + ": the size field (bytes 16..23) says " +
                              std::to_string(c.size) + " bytes but the file has " +
                              std::to_string(n) + "; " + last +
                              " ends exactly at its end, but the CRC-32 does "
                              "not match: the size field or the data is corrupt");
    return c;
}

}  // namespace detail
}  // namespace io
}  // namespace l2rw
