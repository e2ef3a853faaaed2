// examples/flags.hpp — what the example programs share on the command line: CLI11 validators
// whose messages give the real bounds ("--steps: must be at least 1, got 0"), line-buffered
// output, and the error a program gives for a bad combination of flags. Not part of the
// library.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <l2rw/meta/policies.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

/// A bad flag or a bad combination of flags, found before the program prints anything.
class FlagError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Makes stdout line-buffered, so that when it is a pipe or a file each line arrives as it is
/// printed and an error on stderr comes after the lines before it.
inline void line_buffered_stdout() { std::setvbuf(stdout, nullptr, _IOLBF, 0); }

namespace detail {

inline std::string number_str(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

/// A validator of one number: `ok` says whether it is acceptable, `want` what is wanted.
template <class Ok>
CLI::Validator number_check(Ok ok, const std::string& want) {
    return CLI::Validator(
        [ok, want](std::string& s) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v))
                return "must be a number " + want + ", got '" + s + "'";
            return ok(v) ? std::string{} : "must be " + want + ", got " + s;
        },
        want);
}

}  // namespace detail

/// A number >= lo.
inline CLI::Validator at_least(double lo) {
    return detail::number_check([lo](double v) { return v >= lo; },
                                "at least " + detail::number_str(lo));
}
/// A finite number > lo.
inline CLI::Validator greater_than(double lo) {
    return detail::number_check([lo](double v) { return v > lo; },
                                "greater than " + detail::number_str(lo));
}
/// A number in [lo, hi].
inline CLI::Validator between(double lo, double hi) {
    return detail::number_check(
        [lo, hi](double v) { return v >= lo && v <= hi; },
        "in [" + detail::number_str(lo) + ", " + detail::number_str(hi) + "]");
}
/// A number in [lo, hi).
inline CLI::Validator from_below(double lo, double hi) {
    return detail::number_check(
        [lo, hi](double v) { return v >= lo && v < hi; },
        "in [" + detail::number_str(lo) + ", " + detail::number_str(hi) + ")");
}
/// A number in (lo, hi).
inline CLI::Validator open_interval(double lo, double hi) {
    return detail::number_check(
        [lo, hi](double v) { return v > lo && v < hi; },
        "in (" + detail::number_str(lo) + ", " + detail::number_str(hi) + ")");
}
/// One of `names`.
inline CLI::Validator one_of(std::vector<std::string> names) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    return CLI::Validator(
        [names, list](std::string& s) -> std::string {
            return std::find(names.begin(), names.end(), s) != names.end()
                       ? std::string{}
                       : "must be one of " + list + ", got '" + s + "'";
        },
        "one of " + list);
}

/// Throws FlagError when `values` holds a value twice, naming the flag and the value.
template <class V, class Str>
void require_distinct(const std::vector<V>& values, const char* flag, Str str) {
    for (std::size_t i = 0; i < values.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (values[i] == values[j])
                throw FlagError(std::string(flag) + " names " + str(values[i]) + " twice");
}

/// Throws FlagError unless `name` is a weighting method ('-' may stand for '_').
inline void check_method(std::string name) {
    std::replace(name.begin(), name.end(), '-', '_');
    std::string known;
    for (auto k : l2rw::meta::policy_names()) {
        if (name == k) return;
        known += (known.empty() ? "" : ", ") + std::string(k);
    }
    throw FlagError("--methods: unknown method '" + name + "' (known: " + known + ")");
}

/// What every experiment program's sweep of runs takes: seeds, evaluation, progress,
/// checkpoints, resuming, where the output goes. A program's Config derives from it and sets
/// its own defaults.
struct SweepConfig {
    int seeds = 1;
    std::uint64_t first_seed = 1;
    std::int64_t eval_every = 0, checkpoint_every = 0, session_steps = 0;
    double progress_every = 15;
    bool resume = false;
    std::string out;
};

/// The help texts that differ between programs.
struct SweepHelp {
    std::string seeds, eval_every, out, checkpoint_every, resume;
};

/// Adds the sweep's flags to `app`, bound to `c`.
inline void add_sweep_flags(CLI::App& app, SweepConfig& c, const SweepHelp& help) {
    app.add_option("--seeds", c.seeds, help.seeds)->check(at_least(1))->capture_default_str();
    app.add_option("--first-seed", c.first_seed, "seeds are first-seed, first-seed + 1, ...")
        ->capture_default_str();
    app.add_option("--eval-every", c.eval_every, help.eval_every)
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--progress-every", c.progress_every,
                   "when stdout is not a terminal, a progress line every this many seconds (0: "
                   "at the end of each run only)")
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--out", c.out, help.out)->capture_default_str();
    app.add_option("--checkpoint-every", c.checkpoint_every, help.checkpoint_every)
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--session-steps", c.session_steps,
                   "run at most this many steps of each run now, then save its checkpoint (needs "
                   "--checkpoint-every); --resume goes on from there. 0: all")
        ->check(at_least(0))
        ->capture_default_str();
    app.add_flag("--resume", c.resume, help.resume);
}

/// The checks of the sweep's flags that need more than one of them.
inline void check_sweep_flags(const SweepConfig& c) {
    if (c.session_steps > 0 && c.checkpoint_every == 0)
        throw FlagError(
            "--session-steps saves each run to go on later: it needs --checkpoint-every");
    std::error_code ec;
    if (std::filesystem::exists(c.out, ec) && !std::filesystem::is_directory(c.out, ec))
        throw FlagError("--out " + c.out + " is a file, not a directory");
}

/// Runs a program's body: a FlagError or any other exception becomes one line on stderr,
/// "<program>: <what>", and exit status 1 (2 for a FlagError, as CLI11 gives for bad flags).
template <class F>
int run_main(const char* program, F&& body) {
    try {
        return body();
    } catch (const FlagError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: %s\nRun with --help for more information.\n", program, e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
}

}  // namespace examples
