// tests/test_checkpoint_files.cpp — io/checkpoint_format.hpp and io/checkpoint_file.hpp on
// files built here byte by byte: each structural check behind the CRC-32 (reached only by a
// file whose size field and CRC-32 are right), a corrupt size field told apart from a file cut
// short, probe_checkpoint, and the removal of temporaries that killed saves left behind.
// (The round trips and the flipped-byte and truncation cases: test_optim_checkpoint.cpp.)
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <l2rw/io/checkpoint.hpp>
#include <l2rw/optim.hpp>
#include <string>
#include <vector>

#include "data_files.hpp"
#include "testing.hpp"

using namespace l2rw;
using l2rw::testing::check_throws_mentioning;
using namespace l2rw::testing::files;

namespace {

/// A checkpoint image written field by field in the layout io/checkpoint_format.hpp
/// documents; bytes() fills in the size field and appends the CRC-32 (zlib's crc32, as the
/// format says), so the image passes those checks and reaches the structural ones.
struct Image {
    Bytes b;
    template <class U>
    Image& le(U v) {
        for (std::size_t i = 0; i < sizeof(U); ++i)
            b.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i)));
        return *this;
    }
    Image& u8(std::uint8_t v) { return le(v); }
    Image& u32(std::uint32_t v) { return le(v); }
    Image& u64(std::uint64_t v) { return le(v); }
    Image& i64(std::int64_t v) { return le(static_cast<std::uint64_t>(v)); }
    Image& str(const std::string& s) {
        u32(static_cast<std::uint32_t>(s.size()));
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    /// Magic, `version`, scalar type `code`, the size field (filled in by bytes()), the entry
    /// count and the optimizer flag, then the optimizer's name and step count when flag is 1.
    /// (Version 1 has no metadata; a version 2 image ends with metadata(...).)
    static Image header(std::uint64_t entries, std::uint8_t flag = 0, const std::string& opt = "",
                        std::int64_t step = 0, std::uint32_t code = 2, std::uint32_t version = 1) {
        Image m;
        for (char c : std::string("L2RWCKPT")) m.u8(static_cast<std::uint8_t>(c));
        m.u32(version).u32(code).u64(0).u64(entries).u8(flag);
        if (flag == 1) m.str(opt).i64(step);
        return m;
    }
    /// An entry of float64 values; `values` defaults to 0, 1, 2, ... for the dims' product,
    /// and `with_values` false writes none (for dims whose product cannot be written).
    Image& entry(const std::string& name, std::uint8_t kind, const std::vector<std::int64_t>& dims,
                 std::vector<double> values = {}, bool with_values = true) {
        str(name).u8(kind).u8(static_cast<std::uint8_t>(dims.size()));
        for (auto d : dims) i64(d);
        if (!with_values) return *this;  // (the product may not even fit in 64 bits)
        std::int64_t n = 1;
        for (auto d : dims) n *= d;
        if (values.empty())
            for (std::int64_t i = 0; i < n; ++i) values.push_back(static_cast<double>(i));
        for (double v : values) le(std::bit_cast<std::uint64_t>(v));
        return *this;
    }
    /// The metadata section of version 2: a count, then each key and value.
    Image& metadata(const std::vector<std::pair<std::string, std::string>>& kv) {
        u32(static_cast<std::uint32_t>(kv.size()));
        for (const auto& [k, v] : kv) str(k).str(v);
        return *this;
    }
    [[nodiscard]] Bytes bytes() const {
        Bytes out = b;
        const std::uint64_t size = out.size() + 4;
        for (std::size_t i = 0; i < 8; ++i)
            out[16 + i] = static_cast<std::uint8_t>(size >> (8 * i));
        const auto crc = static_cast<std::uint32_t>(
            ::crc32(::crc32(0L, Z_NULL, 0), out.data(), static_cast<uInt>(out.size())));
        for (std::size_t i = 0; i < 4; ++i)
            out.push_back(static_cast<std::uint8_t>(crc >> (8 * i)));
        return out;
    }
};

/// The tensors of nn::mlp({2, 2}): "0.weight" [2, 2] and "0.bias" [2].
Image mlp22(std::uint64_t entries = 2, std::uint8_t flag = 0, const std::string& opt = "",
            std::int64_t step = 0) {
    return Image::header(entries, flag, opt, step)
        .entry("0.weight", 0, {2, 2})
        .entry("0.bias", 0, {2});
}

/// Loads `image` into an nn::mlp({2, 2}) and checks the CheckpointError names the file and
/// `message`, and that probe_checkpoint rejects it the same way.
void expect_rejected(const Bytes& image, const std::string& message, const std::string& what) {
    TempDir dir;
    const std::string p = dir / "c.l2ck";
    write_raw(p, image);
    auto model = nn::mlp<double, Cpu>({2, 2}, 1);
    check_throws_mentioning<CheckpointError>([&] { io::load_checkpoint(p, *model); }, {p, message},
                                             what);
    check_throws_mentioning<CheckpointError>([&] { (void)io::probe_checkpoint(p); }, {p, message},
                                             what + " (probe)");
}

/// A process id that no process has any more (a child that has exited and been reaped).
long long dead_pid() {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return pid;
}

std::vector<std::string> listing(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

// ---- the builder writes what save_checkpoint writes -------------------------------------------

TEST_CASE("checkpoint format: the test's image builder matches save_checkpoint byte for byte") {
    TempDir dir;
    auto model = nn::mlp<double, Cpu>({2, 2}, 3);
    io::save_checkpoint(dir / "m.l2ck", *model);
    const auto t = nn::named_tensors(*model);
    auto built = [&](const std::vector<std::pair<std::string, std::string>>& kv) {
        return Image::header(2, 0, "", 0, 2, 2)
            .entry("0.weight", 0, {2, 2}, std::get<1>(t[0])->to_host())
            .entry("0.bias", 0, {2}, std::get<1>(t[1])->to_host())
            .metadata(kv)
            .bytes();
    };
    CHECK(built({}) == read_raw(dir / "m.l2ck"));
    io::save_checkpoint(dir / "m.l2ck", *model, {{"run/lr", "0.1"}, {"a", std::string("x\0y", 3)}});
    CHECK(built({{"a", std::string("x\0y", 3)}, {"run/lr", "0.1"}}) == read_raw(dir / "m.l2ck"));
    // And a built image loads (so each test below fails on its one defect only).
    write_raw(dir / "b.l2ck", mlp22().bytes());
    CHECK_NOTHROW(io::load_checkpoint(dir / "b.l2ck", *model));
}

// ---- metadata (format version 2) ---------------------------------------------------------------

TEST_CASE("checkpoint format: metadata is saved, probed and loaded; version 1 files still load") {
    TempDir dir;
    auto model = nn::mlp<double, Cpu>({2, 2}, 3);
    optim::SGD<double, Cpu> opt({.lr = 0.1, .momentum = 0.9});
    const io::Metadata meta{{"run/classes", "4,6"}, {"state/sum", "0x1.8p+1"}, {"empty", ""}};
    io::save_checkpoint(dir / "m.l2ck", *model, opt, meta);
    const auto info = io::probe_checkpoint(dir / "m.l2ck");
    REQUIRE(info);
    CHECK(info->metadata == meta);
    auto other = nn::mlp<double, Cpu>({2, 2}, 4);
    optim::SGD<double, Cpu> other_opt({.lr = 0.1, .momentum = 0.9});
    io::Metadata seen;
    CHECK(io::load_checkpoint(dir / "m.l2ck", *other, other_opt,
                              [&](const io::CheckpointInfo& i) { seen = i.metadata; }) == meta);
    CHECK(seen == meta);
    CHECK(io::load_checkpoint(dir / "m.l2ck", *other) == meta);
    // A version 1 file (no metadata section) loads, with no metadata.
    write_raw(dir / "v1.l2ck", mlp22().bytes());
    CHECK(io::load_checkpoint(dir / "v1.l2ck", *other).empty());
    CHECK(io::probe_checkpoint(dir / "v1.l2ck")->metadata.empty());
    check_throws_mentioning<CheckpointError>(
        [&] {
            io::save_checkpoint(dir / "e.l2ck", *model, {{"", "x"}});
        },
        {"e.l2ck", "a metadata key is empty"}, "saving an empty key");
    CHECK_FALSE(io::checkpoint_exists(dir / "e.l2ck"));
}

TEST_CASE("checkpoint format: a check that refuses the file changes nothing") {
    // Without the early call (accept after the optimizer's load_state) the momentum buffers
    // were replaced though the load threw.
    TempDir dir;
    auto model = nn::mlp<double, Cpu>({2, 2}, 3);
    optim::SGD<double, Cpu> opt({.lr = 0.1, .momentum = 0.9});
    const auto ps = optim::ParamList<double, Cpu>(nn::named_parameters(*model));
    std::vector<Tensor<double, Cpu>> g;
    for (std::size_t i = 0; i < ps.size(); ++i)
        g.push_back(Tensor<double, Cpu>::ones(ps[i].shape()));
    opt.step(ps, g);
    io::save_checkpoint(dir / "m.l2ck", *model, opt, {{"k", "v"}});
    auto other = nn::mlp<double, Cpu>({2, 2}, 9);
    optim::SGD<double, Cpu> fresh({.lr = 0.1, .momentum = 0.9});
    const auto before = nn::named_tensors(*other);
    std::vector<std::vector<double>> values;
    for (const auto& e : before) values.push_back(std::get<1>(e)->to_host());
    check_throws_mentioning<ValueError>(
        [&] {
            (void)io::load_checkpoint(dir / "m.l2ck", *other, fresh,
                                      [](const io::CheckpointInfo& i) {
                                          CHECK(i.optimizer_step == 1);
                                          CHECK(i.metadata.at("k") == "v");
                                          throw ValueError("refused");
                                      });
        },
        {"refused"}, "refusing check");
    for (std::size_t i = 0; i < before.size(); ++i)
        CHECK(std::get<1>(before[i])->to_host() == values[i]);
    CHECK(fresh.step_count() == 0);
    CHECK(fresh.num_params() == 0);
}

TEST_CASE("checkpoint format: bad metadata") {
    // Without each check: an empty key or a repeated one loaded (the second value lost).
    auto v2 = [] {
        return Image::header(2, 0, "", 0, 2, 2)
            .entry("0.weight", 0, {2, 2})
            .entry("0.bias", 0, {2});
    };
    expect_rejected(v2().metadata({{"a", "1"}, {"", "2"}}).bytes(), ": metadata key 1 is empty",
                    "empty key");
    expect_rejected(v2().metadata({{"a", "1"}, {"a", "2"}}).bytes(), ": metadata 'a' appears twice",
                    "duplicate key");
    // A count larger than what follows, and a value length past the end, in a whole file.
    expect_rejected(v2().u32(2).str("a").str("1").bytes(), "metadata key 1 at byte",
                    "count too large");
    expect_rejected(v2().u32(1).str("lr").u32(40).bytes(), "the value of metadata 'lr' at byte",
                    "value too long");
    // A version 2 file cut off before its metadata count.
    Bytes cut = v2().metadata({}).bytes();
    cut.resize(cut.size() - 8);
    expect_rejected(
        cut,
        "truncated at byte " + std::to_string(cut.size()) + " while reading the metadata count",
        "cut before the count");
}

// ---- structural checks, each on a file with a valid size field and CRC-32 ----------------------
// Each was seen failing with its check removed from parse() (the file then loaded, or failed
// later with another message, noted per test).

TEST_CASE("checkpoint format: an unknown entry kind") {
    // Without the check: "'0.weight' is a ? in the file but a parameter in the model" (and the
    // probe passed it).
    expect_rejected(Image::header(2).entry("0.weight", 3, {2, 2}).entry("0.bias", 0, {2}).bytes(),
                    "entry '0.weight' has unknown kind 3", "kind 3");
}

TEST_CASE("checkpoint format: optimizer state in a file that names no optimizer") {
    // Without the check: the file loaded.
    expect_rejected(mlp22(3).entry("momentum_buffer:0.bias", 2, {2}).bytes(),
                    "entry 'momentum_buffer:0.bias' is optimizer state but the file names no "
                    "optimizer",
                    "orphan optimizer state");
}

TEST_CASE("checkpoint format: a rank above the maximum") {
    // Without the check: Shape's own ShapeError ("Shape: rank exceeds the maximum 4"), not a
    // CheckpointError.
    expect_rejected(Image::header(1).entry("0.weight", 0, {1, 1, 1, 2, 2}).bytes(),
                    "entry '0.weight' has rank 5 (at most 4)", "rank 5");
}

TEST_CASE("checkpoint format: a negative dimension") {
    // Without the check: Shape's own ShapeError ("Shape: negative dimension -2"). Before this
    // change the message was "has bad dimension -2", for this and for an overflow alike.
    expect_rejected(Image::header(1).entry("0.weight", 0, {2, -2}, {}, false).bytes(),
                    "entry '0.weight' has negative dimension -2 (dimension 1)", "dim -2");
}

TEST_CASE("checkpoint format: dimensions whose product overflows") {
    // 2^31 · 2^31 · 2^31 = 2^93 elements. Without the check the product wrapped to 0 and the
    // entry read as empty: "has shape [2147483648, ...] in the file but [2, 2] in the model".
    const std::int64_t big = std::int64_t{1} << 31;
    expect_rejected(Image::header(1).entry("0.weight", 0, {big, big, big}, {}, false).bytes(),
                    "entry '0.weight' has dimension 2147483648 (dimension 2) that takes its "
                    "element count past 2^62",
                    "overflowing dims");
}

TEST_CASE("checkpoint format: an entry that appears twice") {
    // Without the check: the file loaded (the second '0.weight' was ignored).
    expect_rejected(mlp22(3).entry("0.weight", 0, {2, 2}).bytes(), "entry '0.weight' appears twice",
                    "duplicate");
}

TEST_CASE("checkpoint format: a negative optimizer step count") {
    // Without the check: SGD's load_state refused it ("optimizer state rejected: SGD::load_state:
    // negative step -3"), and a weights-only load took the file.
    TempDir dir;
    write_raw(dir / "c.l2ck", mlp22(2, 1, "SGD", -3).bytes());
    auto model = nn::mlp<double, Cpu>({2, 2}, 1);
    optim::SGD<double, Cpu> opt({.lr = 0.1, .momentum = 0.9});
    check_throws_mentioning<CheckpointError>(
        [&] { io::load_checkpoint(dir / "c.l2ck", *model, opt); },
        {dir / "c.l2ck", ": negative optimizer step count -3"}, "step -3");
    expect_rejected(mlp22(2, 1, "SGD", -3).bytes(), ": negative optimizer step count -3",
                    "step -3, weights only");
}

TEST_CASE("checkpoint format: an optimizer flag other than 0 or 1") {
    // Without the check: the flag read as "no optimizer" and the file loaded.
    expect_rejected(mlp22(2, 2).bytes(), ": bad optimizer flag 2", "flag 2");
}

TEST_CASE("checkpoint format: bytes after the last entry") {
    // Without the check: the file loaded.
    expect_rejected(mlp22().u8(0).u8(0).u8(0).bytes(), ": 3 unexpected bytes after the last entry",
                    "3 spare bytes");
}

TEST_CASE("checkpoint format: a length or count that runs past the end of a whole file") {
    // Seen failing before whole files were told apart: "truncated at byte 42 while reading the
    // name of entry 0", for a file that is not truncated.
    expect_rejected(Image::header(1).u32(1000).u8('w').bytes(),
                    "the name of entry 0 at byte 37 needs 1000 bytes but only 1 bytes remain "
                    "before the CRC-32; the file is whole",
                    "name length 1000");
    expect_rejected(mlp22(3).bytes(), "the name of entry 2 at byte", "entry count 3 of 2");
}

TEST_CASE("checkpoint format: an unknown scalar type code") {
    // Seen failing before: "holds unknown type code 7 values but the model is float64".
    expect_rejected(Image::header(0, 0, "", 0, 7).bytes(),
                    ": holds values of unknown type code 7 (bytes 12..15", "code 7");
}

// ---- the size field --------------------------------------------------------------------------

TEST_CASE("checkpoint format: a corrupt size field is not reported as truncation") {
    const Bytes good = mlp22().bytes();
    const std::string n = std::to_string(good.size());
    // Seen failing before: "truncated at byte 135 (the header says 4294967431 bytes)" and "10
    // unexpected bytes after the end (the header says 125 bytes, the file has 135)"; with the
    // CRC-with-the-real-size check removed, the first read "... the size field or the data is
    // corrupt".
    Bytes larger = good;
    larger[20] ^= 0x01;  // + 2^32
    const std::string big = std::to_string(good.size() + (std::uint64_t{1} << 32));
    expect_rejected(larger,
                    "the size field (bytes 16..23) says " + big + " bytes but the file has " + n +
                        ", and the rest of the file is intact (its CRC-32 matches with the size "
                        "field set to " +
                        n + "): the size field is corrupt",
                    "size field + 2^32");
    Bytes smaller = good;
    smaller[16] = static_cast<std::uint8_t>(smaller[16] - 10);
    expect_rejected(smaller,
                    "the size field (bytes 16..23) says " + std::to_string(good.size() - 10) +
                        " bytes but the file has " + n + ", and the rest of the file is intact",
                    "size field - 10");
    // The size field and a value both flipped: the file is neither intact nor cut short.
    larger[70] ^= 0x20;  // in the values of 0.weight (bytes 63..94)
    expect_rejected(larger, "the last entry ends exactly at its end, but the CRC-32 does not match",
                    "size field and data");
    smaller[70] ^= 0x20;
    expect_rejected(smaller, "and the CRC-32 fits neither length", "size field and data, smaller");
    // A whole checkpoint with bytes glued on, and one really cut short, are still what they are.
    Bytes longer = good;
    longer.insert(longer.end(), {'x', 'y', 'z'});
    expect_rejected(longer, "3 unexpected bytes after the end (the header says " + n + " bytes",
                    "3 bytes appended");
    expect_rejected(Bytes(good.begin(), good.end() - 10),
                    "truncated at byte " + std::to_string(good.size() - 10) +
                        " while reading the values of entry "
                        "'0.bias'",
                    "cut short");
}

// ---- probe_checkpoint ------------------------------------------------------------------------

TEST_CASE("checkpoint: probe_checkpoint says what a file holds, or that there is none") {
    TempDir dir;
    CHECK_FALSE(io::checkpoint_exists(dir / "none.l2ck"));
    CHECK_FALSE(io::probe_checkpoint(dir / "none.l2ck").has_value());

    write_raw(dir / "sgd.l2ck", mlp22(2, 1, "SGD", 7).bytes());
    const auto info = io::probe_checkpoint(dir / "sgd.l2ck");
    REQUIRE(info.has_value());
    CHECK(info->bytes == mlp22(2, 1, "SGD", 7).bytes().size());
    CHECK(info->scalar_type == "float64");
    CHECK(info->entries == 2);
    CHECK(info->has_optimizer);
    CHECK(info->optimizer == "SGD");
    CHECK(info->optimizer_step == 7);
    auto fm = nn::mlp<float, Cpu>({2, 2}, 1);
    io::save_checkpoint(dir / "f.l2ck", *fm);
    const auto finfo = io::probe_checkpoint(dir / "f.l2ck");
    REQUIRE(finfo.has_value());
    CHECK(finfo->scalar_type == "float32");
    CHECK_FALSE(finfo->has_optimizer);

    // There, but not a checkpoint: an error, never "no checkpoint". (Seen failing in the
    // examples before they probed: "no checkpoint at ..., starting from step 0", then the load
    // failed.)
    write_raw(dir / "empty.l2ck", {});
    CHECK(io::checkpoint_exists(dir / "empty.l2ck"));
    check_throws_mentioning<CheckpointError>(
        [&] { (void)io::probe_checkpoint(dir / "empty.l2ck"); },
        {dir / "empty.l2ck",
         "truncated at byte 0 while reading the magic bytes (the file is empty)"},
        "empty file");
    write_raw(dir / "text.l2ck", {'h', 'e', 'l', 'l', 'o', '\n'});
    check_throws_mentioning<CheckpointError>(
        [&] { (void)io::probe_checkpoint(dir / "text.l2ck"); },
        {dir / "text.l2ck", "not an l2rw checkpoint (bad magic)"}, "text file");
    Bytes flipped = mlp22().bytes();
    flipped[50] ^= 1;
    write_raw(dir / "crc.l2ck", flipped);
    check_throws_mentioning<CheckpointError>([&] { (void)io::probe_checkpoint(dir / "crc.l2ck"); },
                                             {"CRC mismatch"}, "flipped byte");
    std::filesystem::create_directory(dir.path / "adir.l2ck");
    check_throws_mentioning<CheckpointError>([&] { (void)io::probe_checkpoint(dir / "adir.l2ck"); },
                                             {"it is a directory"}, "directory");
}

// ---- temporaries left by killed saves ----------------------------------------------------------

TEST_CASE("checkpoint: a save removes the temporaries of dead saves, and only those") {
    TempDir dir;
    const std::string dead = std::to_string(dead_pid());
    const std::string live = std::to_string(static_cast<long long>(::getppid()));
    // Seen failing without the clean-up: "m.l2ck.tmp.<dead pid>" was still there after the save.
    for (const std::string& name :
         {"m.l2ck.tmp." + dead,                               // a dead save: removed
          "m.l2ck.tmp." + live,                               // a live process's: kept
          "m.l2ck.tmp.0" + dead, "m.l2ck.tmp." + dead + "x",  // not exactly <digits>: kept
          std::string("m.l2ck.tmp."), "m.l2ck.tmp.-" + dead,  // no pid: kept
          "other.l2ck.tmp." + dead, "xm.l2ck.tmp." + dead})   // another file's: kept
        write_raw(dir / name, {'x'});
    std::filesystem::create_directory(dir.path / ("m.l2ck.tmp.1" + dead));  // not a file: kept
    auto model = nn::mlp<double, Cpu>({2, 2}, 1);
    io::save_checkpoint(dir.path / "m.l2ck", *model);
    std::vector<std::string> want = {"m.l2ck",
                                     "m.l2ck.tmp." + live,
                                     "m.l2ck.tmp.0" + dead,
                                     "m.l2ck.tmp." + dead + "x",
                                     "m.l2ck.tmp.",
                                     "m.l2ck.tmp.-" + dead,
                                     "m.l2ck.tmp.1" + dead,
                                     "other.l2ck.tmp." + dead,
                                     "xm.l2ck.tmp." + dead};
    std::sort(want.begin(), want.end());
    CHECK(listing(dir.path) == want);
}
