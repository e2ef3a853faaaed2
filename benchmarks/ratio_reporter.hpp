// benchmarks/ratio_reporter.hpp — a google-benchmark console reporter that also keeps the
// time per iteration of every run and, at the end, prints the meta-step / plain-step ratios.
//
// Benchmark names follow [<prefix>/]<model>/plain/train:N and
// [<prefix>/]<model>/meta/<strategy>/train:N/val:M, where the prefix may have several parts
// (e.g. `thr:2/lenet/meta/exact/train:100/val:10`, `torch/thr:1/mlp/plain/train:100`).
// failures() counts the runs that reported an error, so that a program can exit non-zero. Times are
// real times, with the CPU-time ratio beside them (on a shared machine the real time of a
// single-threaded run also counts the time other processes hold the core); with repetitions the
// median is used. Shared by bench_meta_step.cpp and torch/bench_torch_meta_step.cpp; no l2rw
// dependency.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace l2rw_bench {

inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t k = v.size() / 2;
    return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

template <class Run>
bool run_failed(const Run& r) {
    if constexpr (requires { r.error_occurred; })
        return r.error_occurred;  // google-benchmark <= 1.7
    else
        return r.skipped != 0;  // google-benchmark >= 1.8
}

class RatioReporter : public benchmark::ConsoleReporter {
  public:
    RatioReporter()
        : ConsoleReporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                : benchmark::ConsoleReporter::OO_Tabular) {}

    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            if (run_failed(r)) ++failures_;
            if (run_failed(r) || r.iterations <= 0) continue;
            const double iters = static_cast<double>(r.iterations);
            Times t{r.real_accumulated_time / iters, r.cpu_accumulated_time / iters};
            if (const auto c = r.counters.find("peak_MB"); c != r.counters.end())
                t.peak_mb = c->second.value;
            const std::string& name = r.run_name.function_name;
            if (r.run_type == Run::RT_Iteration)
                samples_[name].push_back(t);
            else if (r.aggregate_name == "median")
                medians_[name] = t;
        }
    }

    void Finalize() override {
        ConsoleReporter::Finalize();
        std::map<std::string, Times> time;  // seconds per step, by benchmark name
        for (const auto& [name, v] : medians_) time[name] = v;
        for (const auto& [name, v] : samples_) {  // own samples win
            std::vector<double> real, cpu, peak;
            for (const auto& t : v) {
                real.push_back(t.real);
                cpu.push_back(t.cpu);
                peak.push_back(t.peak_mb);
            }
            time[name] =
                Times{median(real), median(cpu), *std::max_element(peak.begin(), peak.end())};
        }

        struct Meta {
            std::string prefix, model, strategy, train, val;
        };
        auto parse = [](const std::string& name, Meta& m) {
            auto p = split(name, '/');
            while (p.size() > 5) {
                m.prefix += p[0] + "/";
                p.erase(p.begin());
            }
            if (p.size() != 5 || p[1] != "meta") return false;
            m.model = p[0];
            m.strategy = p[2];
            m.train = p[3];
            m.val = p[4];
            return true;
        };

        bool header = false;
        for (const auto& [name, t] : time) {
            Meta m;
            if (!parse(name, m)) continue;
            const auto plain = time.find(m.prefix + m.model + "/plain/" + m.train);
            if (plain == time.end()) continue;
            if (!header) {
                std::printf(
                    "\nmeta step / plain step (real time, median over repetitions; peak "
                    "memory a case added, MB, the largest)\n");
                std::printf("%-16s %-10s %-8s %-16s %10s %10s %10s %7s %9s %9s %10s\n", "model",
                            "train", "val", "strategy", "plain ms", "meta ms", "meta/plain",
                            "(cpu)", "plain MB", "meta MB", "meta/plain");
                header = true;
            }
            const double pm = plain->second.peak_mb;
            std::printf("%-16s %-10s %-8s %-16s %10.3f %10.3f %10.2f %7.2f %9.0f %9.0f %10.2f\n",
                        (m.prefix + m.model).c_str(), m.train.c_str(), m.val.c_str(),
                        m.strategy.c_str(), 1e3 * plain->second.real, 1e3 * t.real,
                        t.real / plain->second.real, t.cpu / plain->second.cpu, pm, t.peak_mb,
                        pm > 0 ? t.peak_mb / pm : 0.0);
        }

        bool header2 = false;
        for (const auto& [name, t] : time) {
            Meta m;
            if (!parse(name, m) || m.strategy != "exact") continue;
            const auto general =
                time.find(m.prefix + m.model + "/meta/general/" + m.train + "/" + m.val);
            if (general == time.end()) continue;
            if (!header2) {
                std::printf("\nexact / general (meta step time)\n");
                std::printf("%-16s %-10s %-8s %13s %10s\n", "model", "train", "val",
                            "exact/general", "(cpu)");
                header2 = true;
            }
            std::printf("%-16s %-10s %-8s %13.2f %10.2f\n", (m.prefix + m.model).c_str(),
                        m.train.c_str(), m.val.c_str(), t.real / general->second.real,
                        t.cpu / general->second.cpu);
        }
        std::fflush(stdout);
    }

    /// Runs that reported an error (SkipWithError).
    [[nodiscard]] int failures() const { return failures_; }

  private:
    int failures_ = 0;
    struct Times {
        double real = 0, cpu = 0;  // seconds per iteration
        double peak_mb = 0;        // the case's peak_MB counter, when it has one
    };
    std::map<std::string, std::vector<Times>> samples_;
    std::map<std::string, Times> medians_;
};

}  // namespace l2rw_bench
