// tests/test_data_file.cpp — data/file.hpp as the IDX and CIFAR loaders use it: gzip members,
// data after the end of a gzip stream, damaged streams (one test per branch of the reader), and
// gzip bombs, which must fail from what the header declares without being inflated.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <l2rw/data.hpp>
#include <string>
#include <vector>

#include "data_files.hpp"
#include "testing.hpp"

namespace {

using l2rw::DataError;
using l2rw::index_t;
using l2rw::Rng;
using l2rw::testing::check_throws_mentioning;
using namespace l2rw::data;
using namespace l2rw::testing::files;

/// `head` followed by `zeros` zero bytes, gzipped into `path` a chunk at a time (200 MB of
/// zeros deflate to about 200 KB, and never sit in memory).
void write_gz_bomb(const std::string& path, const Bytes& head, std::uint64_t zeros) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!head.empty())
        REQUIRE(gzwrite(f, head.data(), static_cast<unsigned>(head.size())) ==
                static_cast<int>(head.size()));
    const std::vector<std::uint8_t> chunk(std::size_t{1} << 20, 0);
    for (std::uint64_t left = zeros; left > 0;) {
        const auto k = static_cast<unsigned>(std::min<std::uint64_t>(left, chunk.size()));
        REQUIRE(gzwrite(f, chunk.data(), k) == static_cast<int>(k));
        left -= k;
    }
    REQUIRE(gzclose(f) == Z_OK);
}

/// The peak resident set size (VmHWM) in bytes, or 0 when unknown.
std::size_t peak_rss_bytes() {
    std::ifstream f("/proc/self/status");
    std::string key;
    while (f >> key) {
        if (key == "VmHWM:") {
            std::size_t kb = 0;
            f >> kb;
            return kb * 1024;
        }
    }
    return 0;
}

/// Resets the peak resident set size to the current one (Linux >= 4.0: "5" written to
/// /proc/self/clear_refs); false where that is not possible.
bool reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    if (!f) return false;
    f << "5";
    f.flush();
    return f.good() && peak_rss_bytes() != 0;
}

/// Runs `f` and checks that the peak resident set size grew by less than `limit` bytes
/// meanwhile (skipped with a message where the peak cannot be reset).
template <class F>
void check_peak_growth_below(std::size_t limit, F&& f, const std::string& what) {
    if (!reset_peak_rss()) {
        MESSAGE(what << ": the peak RSS cannot be reset here; memory not checked");
        f();
        return;
    }
    const std::size_t before = peak_rss_bytes();
    f();
    const std::size_t after = peak_rss_bytes();
    CHECK_MESSAGE(after - before < limit,
                  what << ": the peak RSS grew by " << (after - before) << " bytes");
}

constexpr std::uint64_t bomb_zeros = std::uint64_t{200} << 20;  // 200 MB
constexpr std::size_t memory_limit = std::size_t{50} << 20;     // 50 MB

}  // namespace

// ---- damaged streams: one test per branch ---------------------------------------------------

TEST_CASE("data::FileReader: a gzip stream cut short is reported as cut short") {
    TempDir dir;
    Bytes big = idx_labels(std::vector<std::uint8_t>(5000, 1));
    Rng rng(4);  // incompressible content, so the cut lands inside the deflate data
    for (std::size_t i = 8; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(rng.below(10));
    write_gz(dir / "whole.gz", big);
    Bytes gz = read_raw(dir / "whole.gz");
    REQUIRE(gz.size() > 100);
    gz.resize(gz.size() / 2);  // cut the compressed stream in the middle
    write_raw(dir / "half.gz", gz);
    // Seen failing before the reader told the branches apart: the message was "gzip stream is
    // damaged or cut short after byte 2458 of the decompressed data (unexpected end of file)".
    check_throws_mentioning<DataError>([&] { (void)read_idx_labels(dir / "half.gz"); },
                                       {dir / "half.gz",
                                        "gzip stream is cut short: the file ends at byte " +
                                            std::to_string(gz.size()) + " of the file",
                                        "inside a gzip member"},
                                       "cut gzip stream");
    // Cut inside the 8-byte trailer: the data is all there, the stream still is not.
    gz = read_raw(dir / "whole.gz");
    gz.resize(gz.size() - 3);
    write_raw(dir / "trailer.gz", gz);
    check_throws_mentioning<DataError>([&] { (void)read_file(dir / "trailer.gz"); },
                                       {"gzip stream is cut short", "after 5008 bytes"},
                                       "cut trailer");
}

TEST_CASE("data::FileReader: corrupt gzip data is reported as corrupt, with zlib's reason") {
    TempDir dir;
    const Bytes lab = idx_labels(std::vector<std::uint8_t>(300, 2));
    write_gz(dir / "good.gz", lab);
    const Bytes good = read_raw(dir / "good.gz");
    REQUIRE(good.size() > 20);
    // Byte 10 (after gzopen's 10-byte header) starts the first deflate block: BTYPE 11 is
    // reserved. Seen failing before the branches were told apart: "gzip error after byte 0 of
    // the decompressed data (invalid block type)" did not say "corrupt".
    Bytes bad = good;
    bad[10] = static_cast<std::uint8_t>(bad[10] | 0x06);
    write_raw(dir / "block.gz", bad);
    check_throws_mentioning<DataError>(
        [&] { (void)read_idx_labels(dir / "block.gz"); },
        {dir / "block.gz", "gzip data is corrupt at byte", "(zlib: invalid block type)"},
        "reserved block type");
    // A flipped CRC-32 in the trailer: the data inflates, the check fails.
    bad = good;
    bad[bad.size() - 6] = static_cast<std::uint8_t>(bad[bad.size() - 6] ^ 0x40);
    write_raw(dir / "crc.gz", bad);
    check_throws_mentioning<DataError>(
        [&] { (void)read_idx_labels(dir / "crc.gz"); },
        {"gzip data is corrupt", "after 308 bytes", "(zlib: incorrect data check)"}, "trailer CRC");
}

// ---- after the end of a gzip member ----------------------------------------------------------

TEST_CASE("data::FileReader: concatenated gzip members load, anything else after one fails") {
    TempDir dir;
    const Bytes lab = idx_labels({1, 2, 3, 4, 5, 6});
    write_raw(dir / "lab", lab);
    // Two members, split inside the header: the content is their concatenation.
    write_gz(dir / "a.gz", Bytes(lab.begin(), lab.begin() + 5));
    write_gz(dir / "b.gz", Bytes(lab.begin() + 5, lab.end()));
    Bytes two = read_raw(dir / "a.gz");
    const Bytes b = read_raw(dir / "b.gz");
    two.insert(two.end(), b.begin(), b.end());
    write_raw(dir / "two.gz", two);
    CHECK(read_idx_labels(dir / "two.gz") == read_idx_labels(dir / "lab"));
    CHECK(read_file(dir / "two.gz") == lab);
    // A clean single member loads too.
    write_gz(dir / "one.gz", lab);
    CHECK(read_idx_labels(dir / "one.gz") == read_idx_labels(dir / "lab"));

    // Seen failing before the reader checked what follows a member: all three loaded silently.
    const Bytes one = read_raw(dir / "one.gz");
    for (const auto& [name, tail] :
         {std::pair{"garbage.gz", Bytes{'j', 'u', 'n', 'k', '\n'}},
          std::pair{"zeros.gz", Bytes(512, 0)}, std::pair{"half-magic.gz", Bytes{0x1f}}}) {
        Bytes withtail = one;
        withtail.insert(withtail.end(), tail.begin(), tail.end());
        write_raw(dir / name, withtail);
        check_throws_mentioning<DataError>(
            [&] { (void)read_idx_labels(dir / name); },
            {dir / name,
             std::to_string(tail.size()) +
                 " bytes that are not gzip data follow the end of the gzip stream at byte " +
                 std::to_string(one.size()) + " of the file, after 14 bytes"},
            name);
    }
    // The same for a CIFAR file of whole records.
    write_gz(dir / "c.bin", cifar_records({{1}}));
    Bytes c = read_raw(dir / "c.bin");
    c.push_back('x');
    write_raw(dir / "c.bin", c);
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "c.bin"}, CifarKind::cifar10); },
        {dir / "c.bin", "1 bytes that are not gzip data follow the end of the gzip stream"},
        "CIFAR with garbage");
}

// ---- gzip bombs -----------------------------------------------------------------------------

TEST_CASE("data: a gzip bomb fails from its header without being inflated") {
    TempDir dir;
    // An IDX header for 10 images of 28x28 (7856 bytes in all), then 200 MB of zeros.
    write_gz_bomb(dir / "bomb.gz", idx_images(10, 28, 28), bomb_zeros);
    REQUIRE(read_raw(dir / "bomb.gz").size() < (std::size_t{1} << 20));

    // Seen failing with the reader that inflated everything first: the peak RSS grew by
    // over 200 MB, and the message counted "209715200 more bytes".
    check_peak_growth_below(
        memory_limit,
        [&] {
            check_throws_mentioning<DataError>(
                [&] { (void)read_idx_images(dir / "bomb.gz"); },
                {dir / "bomb.gz", "trailing bytes: expected 7856 bytes",
                 "more than 1048576 more bytes follow from byte 7856"},
                "IDX bomb");
        },
        "IDX bomb");
    // read_file with a limit stops as soon as the content passes it.
    check_peak_growth_below(
        memory_limit,
        [&] {
            check_throws_mentioning<DataError>(
                [&] { (void)read_file(dir / "bomb.gz", 1 << 20); },
                {dir / "bomb.gz", "holds more than 1048576 bytes of decompressed data"},
                "read_file limit");
        },
        "read_file limit");
    // Zeros are valid CIFAR-10 records (label 0, black pixels): the record cap stops them.
    write_gz_bomb(dir / "cifar.gz", {}, bomb_zeros);
    check_peak_growth_below(
        memory_limit,
        [&] {
            check_throws_mentioning<DataError>(
                [&] { (void)load_cifar({dir / "cifar.gz"}, CifarKind::cifar10, 100); },
                {dir / "cifar.gz", "more than 100 3073-byte records",
                 "the data goes on at byte 307300"},
                "CIFAR bomb");
        },
        "CIFAR bomb");
}

TEST_CASE("data::read_file: the byte limit, raw and gzipped") {
    TempDir dir;
    const Bytes lab = idx_labels({1, 2, 3});
    write_raw(dir / "lab", lab);
    write_gz(dir / "lab.gz", lab);
    CHECK(read_file(dir / "lab", lab.size()) == lab);
    CHECK(read_file(dir / "lab.gz", lab.size()) == lab);
    check_throws_mentioning<DataError>([&] { (void)read_file(dir / "lab", lab.size() - 1); },
                                       {dir / "lab", "holds more than 10 bytes (the most"},
                                       "raw over the limit");
    check_throws_mentioning<DataError>([&] { (void)read_file(dir / "lab.gz", 4); },
                                       {"holds more than 4 bytes of decompressed data"},
                                       "gzip over the limit");
}

TEST_CASE("data::load_cifar: at most max_records records per file") {
    TempDir dir;
    write_raw(dir / "three.bin", cifar_records({{1}, {2}, {3}}));
    CHECK(load_cifar({dir / "three.bin"}, CifarKind::cifar10, 3).size() == 3);
    // Seen failing with the cap check removed: all three records loaded.
    check_throws_mentioning<DataError>(
        [&] { (void)load_cifar({dir / "three.bin"}, CifarKind::cifar10, 2); },
        {dir / "three.bin", "more than 2 3073-byte records", "goes on at byte 6146"}, "cap 2");
    CHECK_THROWS_AS((void)load_cifar({dir / "three.bin"}, CifarKind::cifar10, 0), l2rw::ValueError);
}
