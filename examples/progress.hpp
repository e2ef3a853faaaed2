// examples/progress.hpp — progress of an experiment program: one training run at a time (a bar
// redrawn in place on a terminal, a plain line every few seconds otherwise) and the ETA of the
// whole sweep of runs, from what the runs so far have cost. Not part of the library.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"

namespace examples {

inline bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

/// The runs of a sweep and what they have cost so far: the time left for all of them.
/// A run's steps are costed at the seconds per step measured for its kind (its method) so
/// far; a kind not yet timed at the measured seconds per unit of `cost` (the caller's guess of
/// how many plain steps one of its steps is worth), so the estimate corrects itself as runs
/// finish.
class Sweep {
  public:
    /// Adds a run that will take steps [first, total); returns its index.
    std::size_t plan(std::string kind, std::int64_t total, std::int64_t first = 0,
                     double cost = 1) {
        runs_.push_back({std::move(kind), total, first, first, cost, 0});
        return runs_.size() - 1;
    }
    /// Run i has reached step `done` (of its total), `seconds` after it started at `first`.
    void update(std::size_t i, std::int64_t first, std::int64_t done, double seconds) {
        auto& r = runs_.at(i);
        r.first = first;
        r.done = done;
        r.seconds = seconds;
    }
    /// Run i will not run (or run no further): nothing is left of it.
    void drop(std::size_t i) {
        auto& r = runs_.at(i);
        r.total = std::max(r.done, r.first);
    }
    /// Seconds left for every run, or -1 while no step has been timed.
    [[nodiscard]] double seconds_left() const {
        std::map<std::string, std::pair<double, double>> kind;  // seconds, steps
        double secs = 0, units = 0;
        for (const auto& r : runs_) {
            const auto ran = static_cast<double>(r.done - r.first);
            if (ran <= 0) continue;
            kind[r.kind].first += r.seconds;
            kind[r.kind].second += ran;
            secs += r.seconds;
            units += ran * r.cost;
        }
        if (units <= 0) return -1;
        double left = 0;
        for (const auto& r : runs_) {
            const auto rest = static_cast<double>(r.total - std::max(r.done, r.first));
            if (rest <= 0) continue;
            const auto it = kind.find(r.kind);
            left += rest * (it != kind.end() ? it->second.first / it->second.second
                                             : secs / units * r.cost);
        }
        return left;
    }

  private:
    struct Run {
        std::string kind;
        std::int64_t total, first, done;
        double cost, seconds;
    };
    std::vector<Run> runs_;
};

/// Progress of one training run, steps [first, total). On a terminal: one line redrawn in place
/// (at most ~8 times a second) with a bar, the run's ETA, the sweep's, the running loss and
/// whatever `status` the caller adds; otherwise a plain line every `every_seconds` seconds (0:
/// none) and one at the end.
class Progress {
  public:
    Progress(std::string label, std::int64_t total, std::int64_t first, double every_seconds,
             Sweep* sweep = nullptr, std::size_t run = 0)
        : label_(std::move(label)),
          total_(total),
          first_(first),
          done_(first),
          every_(every_seconds),
          tty_(stdout_is_terminal()),
          sweep_(sweep),
          run_(run) {
        if (sweep_) sweep_->update(run_, first_, first_, 0);
    }

    /// After step `done` (1-based count of steps done), with that step's training loss.
    void step(std::int64_t done, double loss, const std::string& status = {}) {
        loss_ = have_loss_ ? 0.98 * loss_ + 0.02 * loss : loss;
        have_loss_ = true;
        status_ = status;
        done_ = done;
        const double now = clock_.seconds();
        if (sweep_) sweep_->update(run_, first_, done_, now);
        if (tty_) {
            if (done == total_ || now - last_draw_ >= 0.125) draw();
        } else if (done == total_ || (every_ > 0 && now - last_line_ >= every_)) {
            line();
        }
    }
    /// A message of its own line (an evaluation), without breaking the bar.
    void note(const std::string& text) {
        if (tty_) std::printf("\r\x1b[K");
        std::printf("%s %s\n", label_.c_str(), text.c_str());
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

  private:
    [[nodiscard]] double eta() const {
        const auto ran = done_ - first_;
        if (ran <= 0) return -1;
        return clock_.seconds() / static_cast<double>(ran) * static_cast<double>(total_ - done_);
    }
    [[nodiscard]] std::string sweep_eta() const {
        if (!sweep_) return {};
        return ", all runs ~" + format_duration(sweep_->seconds_left()) + " left";
    }
    void line() {
        std::printf("%s step %lld/%lld  loss %.4f%s%s  %s, ETA %s%s\n", label_.c_str(),
                    static_cast<long long>(done_), static_cast<long long>(total_), loss_,
                    status_.empty() ? "" : "  ", status_.c_str(),
                    format_duration(clock_.seconds()).c_str(), format_duration(eta()).c_str(),
                    sweep_eta().c_str());
        std::fflush(stdout);
        last_line_ = clock_.seconds();
    }
    void draw() {
        constexpr int width = 24;
        const double frac =
            total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1;
        const int full = static_cast<int>(frac * width);
        std::string bar(static_cast<std::size_t>(full), '#');
        bar.resize(width, '.');
        std::printf("\r\x1b[K%s [%s] %lld/%lld ETA %s%s loss %.4f%s%s", label_.c_str(), bar.c_str(),
                    static_cast<long long>(done_), static_cast<long long>(total_),
                    format_duration(eta()).c_str(), sweep_eta().c_str(), loss_,
                    status_.empty() ? "" : " ", status_.c_str());
        std::fflush(stdout);
        last_draw_ = clock_.seconds();
        drawn_ = true;
    }

    std::string label_, status_;
    std::int64_t total_, first_, done_;
    double every_;
    bool tty_, have_loss_ = false, drawn_ = false;
    double loss_ = 0, last_draw_ = -1, last_line_ = 0;
    Sweep* sweep_;
    std::size_t run_;
    Stopwatch clock_;
};

}  // namespace examples
