// examples/noisy_report.hpp — what examples/noisy_labels.cpp reports: results.csv (a row per
// method, noise ratio and seed), the summary table (with several noise ratios, method × ratio,
// and Figure 5), and Figure 3 from the weight dumps. Not part of the library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "common.hpp"
#include "figure3.hpp"
#include "figure5.hpp"
#include "noisy_runs.hpp"
#include "weight_dump.hpp"

namespace examples::noisy {

struct RunResult {
    std::string method;
    std::uint64_t seed = 0;
    double ratio = 0, flipped_fraction = 0;
    index_t background = -1;
    double accuracy = 0, loss = 0, seconds = 0, flipped_share = -1;
    std::int64_t steps_done = 0, steps_run = 0, first_step = 0, ft_steps_done = 0, skipped = 0;
};

/// OUT/results.csv: the rows of runs outside this invocation's plan (`other`, as read) and
/// a row per result of this one.
inline void write_results(const Config& c, const std::vector<RunResult>& runs, const Data& d,
                          const std::vector<std::vector<std::string>>& other) {
    std::vector<std::vector<std::string>> rows = other;
    for (const auto& r : runs) {
        const auto [secs, per_step] = seconds_fields(r.seconds, r.steps_done + r.ft_steps_done);
        rows.push_back({r.method, std::to_string(r.seed), d.name, c.model, c.noise,
                        ratio_str(r.ratio), std::to_string(r.background), std::to_string(d.clean_n),
                        format("%.6f", r.flipped_fraction), format("%.6f", r.accuracy),
                        format("%.6f", r.loss),
                        r.flipped_share < 0 ? std::string{} : format("%.6f", r.flipped_share),
                        std::to_string(r.steps_done), std::to_string(r.first_step),
                        std::to_string(r.steps_run), std::to_string(r.ft_steps_done),
                        std::to_string(r.skipped), secs, per_step});
    }
    write_csv(fs::path(c.out) / "results.csv",
              {"method", "seed", "dataset", "model", "noise", "ratio", "background_class",
               "clean_size", "flipped_fraction", "test_accuracy", "test_loss",
               "flipped_weight_share", "steps_done", "resumed_from_step", "steps_run",
               "ft_steps_done", "skipped_batches", "seconds", "seconds_per_step"},
              rows);
}

/// The summary: a table of test accuracy (mean ± std over seeds) per method — with several
/// noise ratios, a column per ratio (in increasing order) and Figure 5. `flipped[k]` is the
/// share of flipped labels at ratio c.ratios[k].
inline void print_summary(const Config& c, const Data& d, const std::vector<RunResult>& runs,
                          const std::vector<double>& flipped) {
    const bool sweep = c.ratios.size() > 1;
    const char* noise = c.noise == "uniform" ? "UniformFlip" : "BackgroundFlip";
    std::vector<std::size_t> by_ratio(c.ratios.size());
    std::iota(by_ratio.begin(), by_ratio.end(), std::size_t{0});
    std::sort(by_ratio.begin(), by_ratio.end(),
              [&](std::size_t a, std::size_t b) { return c.ratios[a] < c.ratios[b]; });
    std::string ratios, shares;
    for (auto k : by_ratio) {
        ratios += (ratios.empty() ? "" : ", ") + ratio_str(c.ratios[k]);
        shares += (shares.empty() ? "" : ", ") + format("%.1f%%", 100 * flipped[k]);
    }
    std::printf(
        "\nTest accuracy (%%), mean ± std over %d seed(s): %s, %s, %s noise %s%s, %ld clean "
        "images, %lld steps\n",
        c.seeds, d.name.c_str(), c.model.c_str(), noise, sweep ? "ratios " : "", ratios.c_str(),
        static_cast<long>(d.clean_n), static_cast<long long>(c.steps));
    std::vector<std::string> header{"method"};
    if (sweep)
        for (auto k : by_ratio) header.push_back("ratio " + ratio_str(c.ratios[k]));
    else
        header.insert(header.end(), {"test acc %", "flipped weight %"});
    header.insert(header.end(), {"s/step", "time"});
    Table table(header);
    std::vector<std::string> order;
    std::size_t unfinished = 0;
    for (const auto& r : runs) {
        if (std::find(order.begin(), order.end(), r.method) == order.end())
            order.push_back(r.method);
        unfinished += r.steps_done < c.steps;
    }
    std::vector<FigureLine> lines;
    for (const auto& m : order) {
        std::vector<std::string> row{m};
        FigureLine line{m, {}};
        std::vector<double> share;
        double secs = 0;
        std::int64_t n = 0;
        for (auto k : by_ratio) {
            std::vector<double> acc;
            for (const auto& r : runs)
                if (r.method == m && r.ratio == c.ratios[k]) {
                    acc.push_back(r.accuracy);
                    if (r.flipped_share >= 0) share.push_back(r.flipped_share);
                    secs += r.seconds;
                    n += r.steps_done + r.ft_steps_done;
                }
            const auto a = mean_std(acc);
            line.points.push_back(a);
            row.push_back(acc.empty() ? "-" : format("%.2f ± %.2f", 100 * a.mean, 100 * a.stddev));
        }
        if (!sweep) row.push_back(share.empty() ? "-" : format("%.1f", 100 * mean_std(share).mean));
        row.push_back(n ? format("%.4f", secs / static_cast<double>(n)) : "-");
        row.push_back(format_duration(secs));
        table.add(row);
        lines.push_back(std::move(line));
    }
    table.print();
    if (unfinished)
        std::printf(
            "%zu of %zu results are of runs stopped before step %lld (--session-steps); run again "
            "with --resume to finish them.\n",
            unfinished, runs.size(), static_cast<long long>(c.steps));
    if (sweep)
        std::printf("Flipped labels: %s of the training set at noise ratios %s.\n", shares.c_str(),
                    ratios.c_str());
    else
        std::printf(
            "Flipped labels: %s of the training set. \"flipped weight\" is the mean share of a "
            "batch's weight on them (uniform weights give about that fraction).\n",
            shares.c_str());
    std::printf("Results: %s\n", (fs::path(c.out) / "results.csv").string().c_str());
    if (!sweep) return;
    std::vector<double> sorted;
    for (auto k : by_ratio) sorted.push_back(c.ratios[k]);
    const std::string title =
        format("%s noise (%s, %s), %d seed(s), %lld steps", noise, d.name.c_str(), c.model.c_str(),
               c.seeds, static_cast<long long>(c.steps));
    print_figure_note("Figure 5", c.out, "figure5", draw_figure5(c.out, title, sorted, lines));
}

/// A run's weight dump, for Figure 3.
struct DumpedRun {
    std::string method;
    double ratio = 0;
    std::vector<WeightRow> rows;
};

/// Figure 3: a panel per method and noise ratio (in the order first dumped), seeds pooled.
inline void draw_weight_figure(const Config& c, const Data& d,
                               const std::vector<DumpedRun>& dumps) {
    std::vector<WeightPanel> panels;
    std::vector<std::pair<std::string, double>> keys;
    for (const auto& r : dumps) {
        if (r.rows.empty()) continue;
        const auto key = std::pair{r.method, r.ratio};
        auto it = std::find(keys.begin(), keys.end(), key);
        if (it == keys.end()) {
            keys.push_back(key);
            panels.push_back(
                {format("%s, noise ratio %s", r.method.c_str(), ratio_str(r.ratio).c_str()), {}});
            it = keys.end() - 1;
        }
        auto& rows = panels[static_cast<std::size_t>(it - keys.begin())].rows;
        rows.insert(rows.end(), r.rows.begin(), r.rows.end());
    }
    if (panels.empty()) return;
    const std::string title = format(
        "Example weights from step %lld, %lld batches (%s, %s noise, %d seed(s))",
        static_cast<long long>(c.weight_dump_step), static_cast<long long>(c.weight_dump_batches),
        d.name.c_str(), c.noise.c_str(), c.seeds);
    print_figure_note("Figure 3 (weights over their batch's mean, clean vs flipped)", c.out,
                      "figure3", draw_figure3(c.out, title, panels));
}

}  // namespace examples::noisy
