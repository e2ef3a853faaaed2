// examples/common.hpp — what the experiment programs share: a progress display (a bar with ETA
// on a terminal, plain lines otherwise), timing, mean ± std, CSV writing, aligned tables,
// where a resumed run starts (from its checkpoint), and finding gnuplot. Not part of the
// library.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <l2rw/io/checkpoint.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

/// Exit status of a program that has nothing to run on (no data): CTest's SKIP_RETURN_CODE.
inline constexpr int exit_skip = 77;

inline bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

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

/// "42s", "3m05s", "2h07m".
inline std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    char buf[32];
    const auto t = static_cast<long>(s + 0.5);
    if (t < 60)
        std::snprintf(buf, sizeof buf, "%lds", t);
    else if (t < 3600)
        std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
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

/// Progress of one training run, steps [first, total). On a terminal: one line redrawn in place
/// (at most ~8 times a second) with a bar, steps, ETA, running loss and whatever `status` the
/// caller adds; otherwise a plain line every `log_every` steps and at the end.
class Progress {
  public:
    Progress(std::string label, std::int64_t total, std::int64_t first, std::int64_t log_every)
        : label_(std::move(label)),
          total_(total),
          first_(first),
          log_every_(std::max<std::int64_t>(log_every, 1)),
          tty_(stdout_is_terminal()) {}

    /// After step `done` (1-based count of steps done), with that step's training loss.
    void step(std::int64_t done, double loss, const std::string& status = {}) {
        loss_ = have_loss_ ? 0.98 * loss_ + 0.02 * loss : loss;
        have_loss_ = true;
        status_ = status;
        done_ = done;
        if (tty_) {
            if (done == total_ || clock_.seconds() - last_draw_ >= 0.125) draw();
        } else if (done % log_every_ == 0 || done == total_) {
            std::printf("%s step %lld/%lld  loss %.4f%s%s  %.1fs, ETA %s\n", label_.c_str(),
                        static_cast<long long>(done), static_cast<long long>(total_), loss_,
                        status_.empty() ? "" : "  ", status_.c_str(), clock_.seconds(),
                        format_duration(eta()).c_str());
            std::fflush(stdout);
        }
    }
    /// A message of its own line (an evaluation), without breaking the bar.
    void note(const std::string& line) {
        if (tty_) std::printf("\r\x1b[K");
        std::printf("%s %s\n", label_.c_str(), line.c_str());
        if (tty_) draw();
        std::fflush(stdout);
    }
    /// Ends the bar's line (terminal only).
    void finish() {
        if (tty_ && drawn_) {
            std::printf("\r\x1b[K");
            std::fflush(stdout);
        }
    }
    [[nodiscard]] double seconds() const { return clock_.seconds(); }
    [[nodiscard]] double running_loss() const { return loss_; }

  private:
    [[nodiscard]] double eta() const {
        const auto ran = done_ - first_;
        if (ran <= 0) return -1;
        return clock_.seconds() / static_cast<double>(ran) * static_cast<double>(total_ - done_);
    }
    void draw() {
        constexpr int width = 24;
        const double frac =
            total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1;
        const int full = static_cast<int>(frac * width);
        std::string bar(static_cast<std::size_t>(full), '#');
        bar.resize(width, '.');
        std::printf("\r\x1b[K%s [%s] %lld/%lld ETA %s loss %.4f%s%s", label_.c_str(), bar.c_str(),
                    static_cast<long long>(done_), static_cast<long long>(total_),
                    format_duration(eta()).c_str(), loss_, status_.empty() ? "" : " ",
                    status_.c_str());
        std::fflush(stdout);
        last_draw_ = clock_.seconds();
        drawn_ = true;
    }

    std::string label_, status_;
    std::int64_t total_, first_, log_every_, done_ = 0;
    bool tty_, have_loss_ = false, drawn_ = false;
    double loss_ = 0, last_draw_ = -1;
    Stopwatch clock_;
};

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

/// Where a run given --resume starts: the optimizer step count in its checkpoint at `path`,
/// with a line saying so after `label`, or step 0 and "no checkpoint" when nothing is at
/// `path`. A file that is there but is no checkpoint to resume from (empty, another format,
/// damaged, no optimizer state) throws CheckpointError before anything is printed.
inline std::int64_t resume_step(const std::filesystem::path& path, const std::string& label,
                                std::int64_t steps) {
    const auto info = l2rw::io::probe_checkpoint(path);
    if (!info) {
        std::printf("%s: no checkpoint at %s, starting from step 0\n", label.c_str(),
                    path.string().c_str());
        return 0;
    }
    if (!info->has_optimizer)
        throw l2rw::CheckpointError("checkpoint " + path.string() +
                                    ": holds no optimizer state, so a run cannot resume from it");
    std::printf("%s: resuming from checkpoint %s (step %lld of %lld)\n", label.c_str(),
                path.string().c_str(), static_cast<long long>(info->optimizer_step),
                static_cast<long long>(steps));
    return info->optimizer_step;
}

/// Whether `program` is on the PATH.
inline bool have_program(const std::string& program) {
    const std::string cmd = "command -v " + program + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

/// Runs gnuplot on `script` (which must `set output`); tries the pngcairo terminal, then png.
/// Returns an empty string on success, else what went wrong.
inline std::string run_gnuplot(const std::filesystem::path& script) {
    if (!have_program("gnuplot")) return "gnuplot is not installed (apt-get install gnuplot-nox)";
    for (const char* term : {"pngcairo size 900,560", "png size 900,560"}) {
        const std::string cmd = std::string("gnuplot -e \"set terminal ") + term + "\" '" +
                                script.string() + "' 2>/dev/null";
        if (std::system(cmd.c_str()) == 0) return {};
    }
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
