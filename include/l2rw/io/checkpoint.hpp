// l2rw/io/checkpoint.hpp — save and load a model's parameters and buffers, and optionally an
// optimizer's state, in a versioned, checksummed binary file.
//
// File layout (all integers little-endian; version 1):
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
//   last 4     u32       CRC-32 (zlib) of every byte before it
//
// Model entries are named as nn::named_tensors names them; optimizer state entries are
// named "<slot>:<parameter name>" ("momentum_buffer:fc.weight", "exp_avg:fc.bias").
//
// save_checkpoint writes the whole file to "<path>.tmp.<pid>" in the same directory, flushes,
// syncs and closes it, checks the stream, and renames it over `path`: a reader sees the old
// file or the new one, never half of one. load_checkpoint reads the whole file into host
// memory and validates everything — magic, version, scalar type, size, CRC, structure, and
// that names, kinds and shapes match the model (and optimizer) exactly — before it changes
// anything; on any problem it throws CheckpointError naming the file and the problem, and the
// model and optimizer are left as they were. Files are backend-neutral: save from Cpu, load
// into Thrust<...> (or the other way round).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define L2RW_CHECKPOINT_POSIX 1
#else
#include <random>
#define L2RW_CHECKPOINT_POSIX 0
#endif

#include "../error.hpp"
#include "../nn/module.hpp"
#include "../tensor.hpp"

namespace l2rw {

/// A checkpoint file that cannot be written, read, or does not fit the model / optimizer.
class CheckpointError : public Error {
  public:
    using Error::Error;
};

namespace io {

inline constexpr char checkpoint_magic[8] = {'L', '2', 'R', 'W', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t checkpoint_version = 1;

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

/// What an optimizer shows a checkpoint (SGD and Adam have it): a name, per-parameter state
/// slots, a step count, a read view of the state and a validating replace-all.
template <class O>
concept CheckpointOptimizer = requires(
    O& o, const O& co, std::vector<std::vector<std::optional<typename O::tensor_type>>> s) {
    { O::type_name() } -> std::convertible_to<std::string_view>;
    O::state_slots();
    { co.step_count() } -> std::convertible_to<std::int64_t>;
    { co.num_params() } -> std::convertible_to<std::size_t>;
    co.state(std::size_t{0}, std::size_t{0});
    o.load_state(std::int64_t{0}, std::move(s));
};

namespace detail {

// ---- bytes -------------------------------------------------------------------------------

inline std::uint32_t crc32_of(const unsigned char* p, std::size_t n) {
    uLong c = ::crc32(0L, Z_NULL, 0);
    while (n > 0) {
        const auto chunk = static_cast<uInt>(std::min<std::size_t>(n, std::size_t{1} << 30));
        c = ::crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return static_cast<std::uint32_t>(c);
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

/// A bounds-checked cursor; running out of bytes throws CheckpointError "truncated at byte N
/// while reading <what>".
class Reader {
  public:
    Reader(const std::string& file, const unsigned char* p, std::size_t n)
        : file_(file), p_(p), n_(n) {}
    void need(std::size_t k, const std::string& what) const {
        if (n_ - pos_ < k) truncated(what);
    }
    [[noreturn]] void truncated(const std::string& what) const {
        throw CheckpointError("checkpoint " + file_ + ": truncated at byte " + std::to_string(n_) +
                              " while reading " + what);
    }
    template <class U>
    U uint(const std::string& what) {
        need(sizeof(U), what);
        U v = 0;
        for (std::size_t i = 0; i < sizeof(U); ++i)
            v |= static_cast<U>(static_cast<U>(p_[pos_ + i]) << (8 * i));
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
    template <class T>
    std::vector<T> values(std::size_t count, const std::string& what) {
        if (count > (n_ - pos_) / sizeof(T)) truncated(what);
        std::vector<T> v(count);
        if constexpr (std::endian::native == std::endian::little) {
            if (count) std::memcpy(v.data(), p_ + pos_, count * sizeof(T));
            pos_ += count * sizeof(T);
        } else {
            using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            for (auto& x : v) x = std::bit_cast<T>(uint<U>(what));
        }
        return v;
    }
    [[nodiscard]] std::size_t pos() const { return pos_; }
    [[nodiscard]] std::size_t remaining() const { return n_ - pos_; }

  private:
    std::string file_;
    const unsigned char* p_;
    std::size_t n_;
    std::size_t pos_ = 0;
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
    bool has_optimizer = false;
    std::string optimizer;
    std::int64_t optimizer_step = 0;
    std::vector<Entry<T>> entries;
};

inline std::string kind_str(nn::Kind k) {
    return k == nn::Kind::parameter ? "parameter" : "buffer";
}
inline EntryKind entry_kind(nn::Kind k) {
    return k == nn::Kind::parameter ? EntryKind::parameter : EntryKind::buffer;
}

inline std::string file_str(const std::filesystem::path& p) { return p.string(); }

inline std::string errno_str() { return std::generic_category().message(errno); }

/// Reads a whole file into memory.
inline std::vector<unsigned char> read_file(const std::filesystem::path& path) {
    const std::string f = file_str(path);
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw CheckpointError("checkpoint " + f + ": cannot read: it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CheckpointError("checkpoint " + f + ": cannot open for reading: " + errno_str());
    std::vector<unsigned char> buf((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
    if (in.bad()) throw CheckpointError("checkpoint " + f + ": read error: " + errno_str());
    return buf;
}

/// Parses and validates a checkpoint image (everything but the fit to a model).
template <class T>
Contents<T> parse(const std::string& f, const std::vector<unsigned char>& buf) {
    const std::size_t n = buf.size();
    // Magic: a short file that starts like the magic is a truncated checkpoint.
    const std::size_t mlen = std::min<std::size_t>(n, sizeof checkpoint_magic);
    if (mlen != 0 && std::memcmp(buf.data(), checkpoint_magic, mlen) != 0)
        throw CheckpointError("checkpoint " + f + ": not an l2rw checkpoint (bad magic)");
    Reader r(f, buf.data(), n);
    if (n == 0) r.need(sizeof checkpoint_magic, "the magic bytes (the file is empty)");
    r.need(sizeof checkpoint_magic, "the magic bytes");
    for (std::size_t i = 0; i < sizeof checkpoint_magic; ++i) r.u8("the magic bytes");
    const std::uint32_t version = r.u32("the format version");
    if (version != checkpoint_version)
        throw CheckpointError("checkpoint " + f + ": format version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(checkpoint_version) + ")");
    const std::uint32_t code = r.u32("the scalar type code");
    if (code != scalar_code<T>())
        throw CheckpointError("checkpoint " + f + ": holds " + scalar_code_name(code) +
                              " values but the model is " + scalar_code_name(scalar_code<T>()));
    const std::uint64_t size = r.u64("the file size");
    if (size > n) {
        // Truncated: walk the structure to say where it ends (this throws "truncated at ...").
    } else if (size < n) {
        throw CheckpointError("checkpoint " + f + ": " + std::to_string(n - size) +
                              " unexpected bytes after the end (the header says " +
                              std::to_string(size) + " bytes, the file has " + std::to_string(n) +
                              ")");
    } else {
        if (n < 4) r.need(4, "the CRC-32");
        std::uint32_t stored = 0;
        for (std::size_t i = 0; i < 4; ++i)
            stored |= static_cast<std::uint32_t>(buf[n - 4 + i]) << (8 * i);
        const std::uint32_t actual = crc32_of(buf.data(), n - 4);
        if (stored != actual) {
            char msg[96];
            std::snprintf(msg, sizeof msg,
                          ": CRC mismatch (stored %08x, computed %08x): the file is corrupted",
                          static_cast<unsigned>(stored), static_cast<unsigned>(actual));
            throw CheckpointError("checkpoint " + f + msg);
        }
    }

    Contents<T> c;
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
            if (d < 0 ||
                (d > 0 && numel > (std::uint64_t{1} << 62) / static_cast<std::uint64_t>(d)))
                throw CheckpointError("checkpoint " + f + ": " + what + " has bad dimension " +
                                      std::to_string(d));
            numel *= static_cast<std::uint64_t>(d);
            dims.push_back(d);
        }
        en.shape = Shape::from_range(dims.begin(), dims.end());
        if (!seen.insert(en.name).second)
            throw CheckpointError("checkpoint " + f + ": entry '" + en.name + "' appears twice");
        en.values = r.template values<T>(static_cast<std::size_t>(numel), "the values of " + what);
        c.entries.push_back(std::move(en));
    }
    r.need(4, "the CRC-32");
    if (r.remaining() != 4)
        throw CheckpointError("checkpoint " + f + ": " + std::to_string(r.remaining() - 4) +
                              " unexpected bytes after the last entry");
    if (size != n)  // a file that parsed but is shorter than its header says
        throw CheckpointError("checkpoint " + f + ": truncated at byte " + std::to_string(n) +
                              " (the header says " + std::to_string(size) + " bytes)");
    return c;
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory + rename).
inline void write_atomically(const std::filesystem::path& path,
                             const std::vector<unsigned char>& bytes) {
    namespace fs = std::filesystem;
    const std::string f = file_str(path);
#if L2RW_CHECKPOINT_POSIX
    const auto pid = static_cast<long long>(::getpid());
#else
    const auto pid = static_cast<long long>(std::random_device{}());
#endif
    fs::path tmp = path;
    tmp += ".tmp." + std::to_string(pid);
    auto fail = [&](const std::string& what) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw CheckpointError("checkpoint " + f + ": " + what);
    };
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) fail("cannot create the temporary file " + file_str(tmp) + ": " + errno_str());
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) fail("cannot write the temporary file " + file_str(tmp) + ": " + errno_str());
        out.close();
        if (!out) fail("cannot close the temporary file " + file_str(tmp) + ": " + errno_str());
    }
#if L2RW_CHECKPOINT_POSIX
    {
        const int fd = ::open(tmp.c_str(), O_RDONLY);
        if (fd < 0)
            fail("cannot reopen the temporary file " + file_str(tmp) +
                 " to sync it: " + errno_str());
        const int rc = ::fsync(fd);
        const std::string err = rc != 0 ? errno_str() : std::string();
        ::close(fd);
        if (rc != 0) fail("cannot sync the temporary file " + file_str(tmp) + ": " + err);
    }
#endif
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) fail("cannot rename " + file_str(tmp) + " to it: " + ec.message());
#if L2RW_CHECKPOINT_POSIX
    // Make the rename itself durable (best effort: some file systems refuse a directory fsync).
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
#endif
}

template <class T, Backend B>
void put_entry(Writer& w, const std::string& name, EntryKind kind, const Tensor<T, B>& t) {
    w.str(name);
    w.u8(static_cast<std::uint8_t>(kind));
    w.u8(static_cast<std::uint8_t>(t.rank()));
    for (int k = 0; k < t.rank(); ++k) w.i64(t.shape()[k]);
    w.values(t.to_host());
}

template <class T, Backend B, class Opt>
void save_impl(const std::filesystem::path& path, nn::Module<T, B>& model, const Opt* opt) {
    const std::string f = file_str(path);
    const auto tensors = nn::named_tensors(model);
    const auto params = nn::named_parameters(model);
    std::uint64_t count = tensors.size();
    std::set<std::string> names;
    for (const auto& [name, t, kind] : tensors)
        if (!names.insert(name).second)
            throw CheckpointError("checkpoint " + f + ": the model has two tensors named '" + name +
                                  "'");
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            if (opt->num_params() > params.size())
                throw CheckpointError("checkpoint " + f + ": the optimizer state covers " +
                                      std::to_string(opt->num_params()) +
                                      " parameters but the model has " +
                                      std::to_string(params.size()));
            const auto slots = Opt::state_slots();
            for (std::size_t s = 0; s < slots.size(); ++s)
                for (std::size_t i = 0; i < opt->num_params(); ++i)
                    if (const auto& st = opt->state(s, i)) {
                        if (!(st->shape() == params[i].second->shape()))
                            throw CheckpointError("checkpoint " + f + ": the optimizer's " +
                                                  std::string(slots[s]) + " of parameter '" +
                                                  params[i].first + "' has shape " +
                                                  st->shape().str() + " but the parameter has " +
                                                  params[i].second->shape().str());
                        ++count;
                    }
        }
    }

    Writer w;
    w.bytes(checkpoint_magic, sizeof checkpoint_magic);
    w.u32(checkpoint_version);
    w.u32(scalar_code<T>());
    const std::size_t size_at = w.buf.size();
    w.u64(0);  // the file size, patched below
    w.u64(count);
    bool has_opt = false;
    if constexpr (!std::is_same_v<Opt, void>) has_opt = opt != nullptr;
    w.u8(has_opt ? 1 : 0);
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            w.str(std::string(Opt::type_name()));
            w.i64(static_cast<std::int64_t>(opt->step_count()));
        }
    }
    for (const auto& [name, t, kind] : tensors) put_entry(w, name, entry_kind(kind), *t);
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            const auto slots = Opt::state_slots();
            for (std::size_t s = 0; s < slots.size(); ++s)
                for (std::size_t i = 0; i < opt->num_params(); ++i)
                    if (const auto& st = opt->state(s, i))
                        put_entry(w, std::string(slots[s]) + ":" + params[i].first,
                                  EntryKind::optimizer_state, *st);
        }
    }
    const std::uint64_t total = w.buf.size() + 4;
    for (std::size_t i = 0; i < 8; ++i)
        w.buf[size_at + i] = static_cast<unsigned char>((total >> (8 * i)) & 0xFF);
    w.u32(crc32_of(w.buf.data(), w.buf.size()));
    write_atomically(path, w.buf);
}

template <class T, Backend B, class Opt>
void load_impl(const std::filesystem::path& path, nn::Module<T, B>& model, Opt* opt) {
    const std::string f = file_str(path);
    const auto bytes = read_file(path);
    Contents<T> c = parse<T>(f, bytes);

    // ---- the model: same names, kinds and shapes, nothing missing, nothing extra ----
    const auto tensors = nn::named_tensors(model);
    std::map<std::string, const Entry<T>*> by_name;
    for (const auto& e : c.entries)
        if (e.kind != EntryKind::optimizer_state) by_name.emplace(e.name, &e);
    std::vector<const Entry<T>*> src;
    std::set<std::string> model_names;
    for (const auto& [name, t, kind] : tensors) {
        model_names.insert(name);
        auto it = by_name.find(name);
        if (it == by_name.end())
            throw CheckpointError("checkpoint " + f + ": the model's " + kind_str(kind) + " '" +
                                  name + "' is not in the file");
        const Entry<T>& e = *it->second;
        if (e.kind != entry_kind(kind))
            throw CheckpointError("checkpoint " + f + ": '" + name + "' is a " + to_string(e.kind) +
                                  " in the file but a " + kind_str(kind) + " in the model");
        if (!(e.shape == t->shape()))
            throw CheckpointError("checkpoint " + f + ": " + kind_str(kind) + " '" + name +
                                  "' has shape " + e.shape.str() + " in the file but " +
                                  t->shape().str() + " in the model");
        src.push_back(&e);
    }
    for (const auto& [name, e] : by_name)
        if (!model_names.count(name))
            throw CheckpointError("checkpoint " + f + ": the file has " + to_string(e->kind) +
                                  " '" + name + "' which the model does not have");

    // ---- build every new tensor before assigning any ----
    std::vector<Tensor<T, B>> fresh;
    fresh.reserve(src.size());
    for (const Entry<T>* e : src) fresh.push_back(Tensor<T, B>::from_host(e->shape, e->values));

    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            if (!c.has_optimizer)
                throw CheckpointError(
                    "checkpoint " + f + ": holds no optimizer state, but an optimizer (" +
                    std::string(Opt::type_name()) + ") was given to load it into");
            if (c.optimizer != Opt::type_name())
                throw CheckpointError("checkpoint " + f + ": holds " + c.optimizer +
                                      " state but the optimizer is " +
                                      std::string(Opt::type_name()));
            const auto params = nn::named_parameters(model);
            std::map<std::string, std::size_t> pidx;
            for (std::size_t i = 0; i < params.size(); ++i) pidx.emplace(params[i].first, i);
            const auto slots = Opt::state_slots();
            std::vector<std::vector<std::optional<Tensor<T, B>>>> state(
                slots.size(), std::vector<std::optional<Tensor<T, B>>>(params.size()));
            for (const auto& e : c.entries) {
                if (e.kind != EntryKind::optimizer_state) continue;
                const auto colon = e.name.find(':');
                const std::string slot =
                    colon == std::string::npos ? std::string() : e.name.substr(0, colon);
                const std::string pname =
                    colon == std::string::npos ? e.name : e.name.substr(colon + 1);
                std::size_t s = slots.size();
                for (std::size_t k = 0; k < slots.size(); ++k)
                    if (slots[k] == slot) s = k;
                if (s == slots.size())
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' is not a " + std::string(Opt::type_name()) +
                                          " state slot");
                auto it = pidx.find(pname);
                if (it == pidx.end())
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' belongs to parameter '" + pname +
                                          "' which the model does not have");
                const auto& p = *params[it->second].second;
                if (!(e.shape == p.shape()))
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' has shape " + e.shape.str() +
                                          " in the file but parameter '" + pname + "' has " +
                                          p.shape().str() + " in the model");
                state[s][it->second] = Tensor<T, B>::from_host(e.shape, e.values);
            }
            try {
                opt->load_state(c.optimizer_step, std::move(state));  // validates, then replaces
            } catch (const CheckpointError&) {
                throw;
            } catch (const Error& ex) {
                throw CheckpointError("checkpoint " + f +
                                      ": optimizer state rejected: " + ex.what());
            }
        }
    }

    // ---- everything checked: assign (in place, so the parameters keep their buffers) ----
    for (std::size_t i = 0; i < fresh.size(); ++i) std::get<1>(tensors[i])->assign(fresh[i]);
}

}  // namespace detail

/// Saves the parameters and buffers of `model`.
template <class T, Backend B>
void save_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model) {
    detail::save_impl<T, B, void>(path, model, nullptr);
}
/// Saves the parameters and buffers of `model` and the state of `opt` (which must have been
/// stepped on nn::named_parameters(model), in that order).
template <class T, Backend B, CheckpointOptimizer Opt>
void save_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model, const Opt& opt) {
    detail::save_impl<T, B, Opt>(path, model, &opt);
}

/// Loads parameters and buffers into `model` (optimizer state in the file is ignored).
/// Throws CheckpointError, leaving the model unchanged, unless the file fits the model exactly.
template <class T, Backend B>
void load_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model) {
    detail::load_impl<T, B, void>(path, model, nullptr);
}
/// Loads parameters, buffers and the optimizer state; on any problem neither changes.
template <class T, Backend B, CheckpointOptimizer Opt>
void load_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model, Opt& opt) {
    detail::load_impl<T, B, Opt>(path, model, &opt);
}

}  // namespace io
}  // namespace l2rw
