// examples/common.hpp — what the experiment programs share: timing, mean ± std, CSV writing,
// aligned tables, where output goes, resuming a run (its checkpoint checked against the run,
// its running sums kept in it), and finding gnuplot. Not part of the library.
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <l2rw/io/checkpoint.hpp>
#include <l2rw/meta/train.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace examples {

/// Exit status of a program that has nothing to run on (no data): CTest's SKIP_RETURN_CODE.
inline constexpr int exit_skip = 77;

/// Seconds since construction (steady clock).
class Stopwatch {
  public:
    Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
    [[nodiscard]] double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    }
    void reset() { t0_ = std::chrono::steady_clock::now(); }

  private:
    std::chrono::steady_clock::time_point t0_;
};

/// "42s", "3m05s", "2h07m", "3d04h".
inline std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    char buf[32];
    const auto t = static_cast<long long>(s + 0.5);
    if (t < 60)
        std::snprintf(buf, sizeof buf, "%llds", t);
    else if (t < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
    return buf;
}

/// printf into a std::string.
template <class... Args>
std::string format(const char* fmt, Args... args) {
    const int n = std::snprintf(nullptr, 0, fmt, args...);
    std::string s(static_cast<std::size_t>(std::max(n, 0)) + 1, '\0');
    std::snprintf(s.data(), s.size(), fmt, args...);
    s.resize(static_cast<std::size_t>(std::max(n, 0)));
    return s;
}

/// A run's "seconds" and "seconds_per_step" CSV fields. The per-step figure comes from the
/// seconds as written, so that a row read back (a run finished in an earlier sitting) is
/// written again with the same text.
inline std::pair<std::string, std::string> seconds_fields(double seconds, long long steps) {
    std::string secs = format("%.3f", seconds);
    const double per_step = steps > 0 ? std::stod(secs) / static_cast<double>(steps) : 0.0;
    return {std::move(secs), format("%.6f", per_step)};
}

struct MeanStd {
    double mean = 0, stddev = 0;
    std::size_t count = 0;
};

/// Mean and sample standard deviation (0 for fewer than two values).
inline MeanStd mean_std(const std::vector<double>& v) {
    MeanStd r;
    r.count = v.size();
    if (v.empty()) return r;
    for (double x : v) r.mean += x;
    r.mean /= static_cast<double>(v.size());
    if (v.size() > 1) {
        double ss = 0;
        for (double x : v) ss += (x - r.mean) * (x - r.mean);
        r.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
    }
    return r;
}

/// The shortest text that reads back as exactly `v` ("0.1", "0.001", "1e-05").
inline std::string exact_str(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// A CSV field, quoted when it holds a comma, quote or line break.
inline std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

/// Writes a whole CSV file (header, then rows) through a temporary file and a rename, so a
/// reader never sees half of it. Throws std::runtime_error when it cannot be written.
inline void write_csv(const std::filesystem::path& path, const std::vector<std::string>& header,
                      const std::vector<std::vector<std::string>>& rows) {
    const auto tmp = path.string() + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        auto line = [&](const std::vector<std::string>& cells) {
            for (std::size_t i = 0; i < cells.size(); ++i)
                f << (i ? "," : "") << csv_field(cells[i]);
            f << '\n';
        };
        line(header);
        for (const auto& r : rows) line(r);
        f.flush();
        if (!f) throw std::runtime_error("cannot write " + tmp);
    }
    std::filesystem::rename(tmp, path);
}

/// An aligned text table: the first column left-aligned, the others right-aligned.
class Table {
  public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::FILE* out = stdout) const {
        std::vector<std::size_t> width;
        for (const auto& r : rows_)
            for (std::size_t i = 0; i < r.size(); ++i) {
                if (width.size() <= i) width.push_back(0);
                width[i] = std::max(width[i], display_width(r[i]));
            }
        std::size_t total = 0;
        for (auto w : width) total += w + 2;
        for (std::size_t k = 0; k < rows_.size(); ++k) {
            const auto& r = rows_[k];
            for (std::size_t i = 0; i < r.size(); ++i) {
                const std::string pad(width[i] - display_width(r[i]), ' ');
                if (i == 0)
                    std::fprintf(out, "%s%s", r[i].c_str(), pad.c_str());
                else
                    std::fprintf(out, "  %s%s", pad.c_str(), r[i].c_str());
            }
            std::fprintf(out, "\n");
            if (k == 0)
                std::fprintf(out, "%s\n", std::string(total > 2 ? total - 2 : 0, '-').c_str());
        }
        std::fflush(out);
    }

    /// Characters of a UTF-8 string (bytes that do not continue a sequence: "±" is one).
    static std::size_t display_width(const std::string& s) {
        std::size_t n = 0;
        for (unsigned char ch : s) n += (ch & 0xc0u) != 0x80u;
        return n;
    }

  private:
    std::vector<std::vector<std::string>> rows_;
};

/// Where a program writes its output by default: `name` in the build folder of the examples
/// (L2RW_EXAMPLES_OUT_DIR, set by examples/CMakeLists.txt), else in the current directory.
inline std::string default_out_dir(const std::string& name) {
#ifdef L2RW_EXAMPLES_OUT_DIR
    return (std::filesystem::path(L2RW_EXAMPLES_OUT_DIR) / name).string();
#else
    return name;
#endif
}

/// Where a run given --resume starts: nullopt when there is no checkpoint at `path`, else the
/// step it was saved at. A file that is there but is no checkpoint to resume this run from —
/// empty, another format, damaged, no optimizer state, saved by another run (`run` differs) or
/// after more than `steps` steps — throws CheckpointError. A program calls it for every run
/// before it prints anything, so that a bad resume stops it at once.
inline std::optional<std::int64_t> resume_point(const std::filesystem::path& path,
                                                const l2rw::io::Metadata& run, std::int64_t steps) {
    const auto info = l2rw::io::probe_checkpoint(path);
    if (!info) return std::nullopt;
    if (!info->has_optimizer)
        throw l2rw::CheckpointError("checkpoint " + path.string() +
                                    ": holds no optimizer state, so a run cannot resume from it");
    l2rw::meta::check_resume(path.string(), *info, run, steps);
    return info->optimizer_step;
}

/// The line a resumed run prints: "<label>: resuming from checkpoint P (step k of n)", or that
/// it starts from step 0. Returns the first step.
inline std::int64_t announce_resume(const std::filesystem::path& path, const std::string& label,
                                    std::optional<std::int64_t> at, std::int64_t steps) {
    if (!at) {
        std::printf("%s: no checkpoint at %s, starting from step 0\n", label.c_str(),
                    path.string().c_str());
        return 0;
    }
    std::printf("%s: resuming from checkpoint %s (step %lld of %lld)\n", label.c_str(),
                path.string().c_str(), static_cast<long long>(*at), static_cast<long long>(steps));
    return *at;
}

/// Running sums kept in a checkpoint (meta::Callbacks::on_checkpoint / on_resume): integers,
/// doubles (written exactly, as hexadecimal floats) and text under string keys.
class State {
  public:
    State() = default;
    explicit State(l2rw::io::Metadata m) : m_(std::move(m)) {}
    void put(const std::string& k, std::int64_t v) { m_[k] = std::to_string(v); }
    void put(const std::string& k, double v) { m_[k] = format("%a", v); }
    void put(const std::string& k, const std::string& v) { m_[k] = v; }
    void get(const std::string& k, std::int64_t& v) const { v = std::stoll(at(k)); }
    void get(const std::string& k, double& v) const { v = std::strtod(at(k).c_str(), nullptr); }
    void get(const std::string& k, std::string& v) const { v = at(k); }
    [[nodiscard]] const l2rw::io::Metadata& metadata() const { return m_; }

  private:
    [[nodiscard]] const std::string& at(const std::string& k) const {
        const auto it = m_.find(k);
        if (it == m_.end())
            throw l2rw::CheckpointError("checkpoint: the run's saved state lacks '" + k + "'");
        return it->second;
    }
    l2rw::io::Metadata m_;
};

/// Whether `program` is on the PATH.
inline bool have_program(const std::string& program) {
    const std::string cmd = "command -v " + program + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

/// Runs gnuplot on `script` in the script's own folder (a script that sets its terminal and
/// output, and names its files relative to that folder, as a user would run it by hand).
/// Returns an empty string on success, else what went wrong.
inline std::string run_gnuplot(const std::filesystem::path& script) {
    if (!have_program("gnuplot")) return "gnuplot is not installed (apt-get install gnuplot-nox)";
    const auto dir =
        script.parent_path().empty() ? std::filesystem::path(".") : script.parent_path();
    const std::string cmd =
        "cd '" + dir.string() + "' && gnuplot '" + script.filename().string() + "' 2>/dev/null";
    if (std::system(cmd.c_str()) == 0) return {};
    return "gnuplot failed on " + script.string();
}

/// A file-name-safe rendering of a number: 0.995 -> "0.995", characters other than
/// [A-Za-z0-9.+-] become '_'.
inline std::string file_safe(std::string s) {
    for (char& c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+'))
            c = '_';
    return s;
}

/// The Fashion-MNIST names of classes 0..9.
inline const char* fashion_class_name(long k) {
    static const char* names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return k >= 0 && k < 10 ? names[k] : "?";
}

/// Where Fashion-MNIST is, when no --data is given: the directory configured at build time
/// (L2RW_DEFAULT_FASHION_MNIST_DIR), else $L2RW_FASHION_MNIST_DIR, else Debian's
/// /usr/share/datasets/fashion-mnist — the first that holds the training images. nullopt
/// when none does.
inline std::optional<std::filesystem::path> default_fashion_mnist_dir() {
    std::vector<std::filesystem::path> candidates;
#ifdef L2RW_DEFAULT_FASHION_MNIST_DIR
    candidates.emplace_back(L2RW_DEFAULT_FASHION_MNIST_DIR);
#endif
    if (const char* env = std::getenv("L2RW_FASHION_MNIST_DIR"); env && *env)
        candidates.emplace_back(env);
    candidates.emplace_back("/usr/share/datasets/fashion-mnist");
    for (const auto& d : candidates) {
        std::error_code ec;
        for (const char* f : {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"})
            if (std::filesystem::is_regular_file(d / f, ec)) return d;
    }
    return std::nullopt;
}

/// A seed for (seed, tag, value), so that a data split depends on what it is for, not on the
/// order of the runs (SplitMix64).
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t tag, std::int64_t value = 0) {
    auto mix = [](std::uint64_t z) {
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    return mix(mix(mix(seed) ^ tag) ^ static_cast<std::uint64_t>(value));
}

}  // namespace examples
