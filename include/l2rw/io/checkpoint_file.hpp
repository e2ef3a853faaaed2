// l2rw/io/checkpoint_file.hpp — a checkpoint on disk: read whole, written atomically.
//
// write_atomically writes the whole file to "<path>.tmp.<pid>" in the same directory, flushes,
// syncs and closes it, checks the stream, and renames it over `path`: a reader sees the old
// file or the new one, never half of one. A save that is killed leaves its temporary file
// behind; the next save into the same path removes such leftovers — exactly the files named
// "<file>.tmp.<digits>" whose process no longer exists (kill(pid, 0) fails with ESRCH). A
// live process's file (another save may be in flight) and our own are left alone, and so is
// anything that is not a regular file. Without POSIX the temporary name carries a random
// number instead of a pid, and leftovers are not cleaned up.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#define L2RW_CHECKPOINT_POSIX 1
#else
#include <random>
#define L2RW_CHECKPOINT_POSIX 0
#endif

#include "checkpoint_format.hpp"

namespace l2rw::io::detail {

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

/// The pid in `name` when it is exactly "<base>.tmp.<pid>" (decimal digits, no leading zero,
/// a positive pid_t), else nothing.
inline std::optional<long long> temporary_pid(const std::string& name, const std::string& base) {
    const std::string prefix = base + ".tmp.";
    if (base.empty() || name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix))
        return std::nullopt;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 18 || digits[0] == '0') return std::nullopt;
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    const long long pid = std::stoll(digits);
#if L2RW_CHECKPOINT_POSIX
    if (pid > static_cast<long long>(std::numeric_limits<pid_t>::max())) return std::nullopt;
#endif
    return pid;
}

/// Removes what killed saves into `path` left behind (see the top of this file). Best effort:
/// a leftover that cannot be removed does not fail the save.
inline void remove_stale_temporaries([[maybe_unused]] const std::filesystem::path& path) {
#if L2RW_CHECKPOINT_POSIX
    namespace fs = std::filesystem;
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const std::string base = path.filename().string();
    const long long self = static_cast<long long>(::getpid());
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const auto pid = temporary_pid(it->path().filename().string(), base);
        if (!pid || *pid == self) continue;
        if (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno != ESRCH) continue;  // alive
        std::error_code e2;
        if (it->symlink_status(e2).type() != fs::file_type::regular || e2) continue;
        fs::remove(it->path(), e2);
    }
#endif
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory + rename).
inline void write_atomically(const std::filesystem::path& path,
                             const std::vector<unsigned char>& bytes) {
    namespace fs = std::filesystem;
    const std::string f = file_str(path);
    remove_stale_temporaries(path);
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

}  // namespace l2rw::io::detail
