// examples/noisy_finished.hpp — noisy_labels' runs across sittings without their checkpoints
// (finished_runs.hpp says why): what every run of OUT shares goes to OUT/sweep.txt, and with
// --resume a training run whose results (its plain row and, when asked, its +ft row) are
// finished in OUT/results.csv, under the same sweep.txt, is taken from there instead of being
// trained again. Rows of runs outside this invocation's plan are written back as read. Not
// part of the library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "finished_runs.hpp"
#include "noisy_report.hpp"
#include "noisy_runs.hpp"

namespace examples::noisy {

/// The settings a phase's checkpoint must have been made with (its method, seed and, for
/// +ft, the fine-tuning settings are added per phase).
inline l2rw::io::Metadata base_definition(const Config& c, const Data& d, double ratio) {
    return {{"program", "noisy_labels"},
            {"data", d.name + " " + d.dir},
            {"train_size", std::to_string(c.train_size)},
            {"first_seed", std::to_string(c.first_seed)},
            {"noise", c.noise},
            {"ratio", exact_str(ratio)},
            {"clean",
             std::to_string(d.clean_n) +
                 (d.per_class ? " (" + std::to_string(d.clean_n / d.train.classes) + " per class)"
                              : " in all")},
            {"background_class", std::to_string(c.background_class)},
            {"model", c.model},
            {"lr", exact_str(c.lr)},
            {"momentum", exact_str(c.momentum)},
            {"weight_decay", exact_str(c.weight_decay)},
            {"batch", std::to_string(c.batch)},
            {"augment", c.augment},
            {"steps", std::to_string(c.steps)},
            {"eval_every", std::to_string(c.eval_every)}};
}

/// OUT/sweep.txt: what every row of OUT's results.csv shares. The ratio and the seed are in
/// each row (a run is "method ratio seed"), and so are the steps (a row with other steps is
/// run again); the first seed only names which seeds a plan holds, so it is left out too.
/// The +FT settings are in, since a +ft row depends on them.
inline l2rw::io::Metadata sweep_definition(const Config& c, const Data& d) {
    auto def = base_definition(c, d, 0);
    def.erase("ratio");
    def.erase("steps");
    def.erase("first_seed");
    def["ft_steps"] = std::to_string(c.ft_steps);
    def["ft_lr"] = exact_str(c.ft_lr);
    return def;
}

/// Which result a row of results.csv is: "method ratio seed".
inline std::string run_key(const std::string& method, double ratio, std::uint64_t seed) {
    return method + " " + ratio_str(ratio) + " " + std::to_string(seed);
}

/// The finished rows of this plan (key: run_key) and every row outside it.
struct Finished {
    std::map<std::string, RunResult> planned;
    std::vector<std::vector<std::string>> other;
    /// The finished result `key`, or null.
    [[nodiscard]] const RunResult* find(const std::string& key) const {
        const auto it = planned.find(key);
        return it == planned.end() ? nullptr : &it->second;
    }
    /// Whether every result of v's training run at (ratio, seed) is finished: it is taken
    /// from the CSV, not trained again.
    [[nodiscard]] bool taken(const Variant& v, double ratio, std::uint64_t seed) const {
        return (!v.plain || find(run_key(v.base, ratio, seed))) &&
               (!v.ft || find(run_key(v.base + "+ft", ratio, seed)));
    }
};

/// Reads OUT/results.csv: the rows of the results `variants` give at every ratio and seed
/// that finished at this invocation's steps (and, for +ft rows, its +FT steps), and the
/// rows of other runs.
inline Finished read_finished(const Config& c, const std::vector<Variant>& variants) {
    std::map<std::string, bool> plan;
    for (double ratio : c.ratios)
        for (int r = 0; r < c.seeds; ++r)
            for (const auto& v : variants) {
                const std::uint64_t seed = c.first_seed + static_cast<std::uint64_t>(r);
                if (v.plain) plan[run_key(v.base, ratio, seed)] = true;
                if (v.ft) plan[run_key(v.base + "+ft", ratio, seed)] = true;
            }
    Finished f;
    const auto csv = read_csv(std::filesystem::path(c.out) / "results.csv");
    if (!csv) return f;
    for (const auto& row : csv->rows) {
        RunResult r;
        r.method = row[csv->column("method")];
        r.seed = csv_field<std::uint64_t>(*csv, row, "seed");
        r.ratio = csv_field<double>(*csv, row, "ratio");
        const std::string key = run_key(r.method, r.ratio, r.seed);
        if (!plan.count(key)) {
            f.other.push_back(row);
            continue;
        }
        r.steps_done = csv_field<std::int64_t>(*csv, row, "steps_done");
        r.ft_steps_done = csv_field<std::int64_t>(*csv, row, "ft_steps_done");
        const bool ft = r.method.size() > 3 && r.method.ends_with("+ft");
        if (r.steps_done != c.steps || (ft && r.ft_steps_done != c.ft_steps)) continue;
        r.background = csv_field<index_t>(*csv, row, "background_class");
        r.flipped_fraction = csv_field<double>(*csv, row, "flipped_fraction");
        r.accuracy = csv_field<double>(*csv, row, "test_accuracy");
        r.loss = csv_field<double>(*csv, row, "test_loss");
        const std::string& share = row[csv->column("flipped_weight_share")];
        r.flipped_share = share.empty() ? -1 : csv_field<double>(*csv, row, "flipped_weight_share");
        r.first_step = csv_field<std::int64_t>(*csv, row, "resumed_from_step");
        r.steps_run = csv_field<std::int64_t>(*csv, row, "steps_run");
        r.skipped = csv_field<std::int64_t>(*csv, row, "skipped_batches");
        r.seconds = csv_field<double>(*csv, row, "seconds");
        f.planned[key] = r;
    }
    return f;
}

}  // namespace examples::noisy
