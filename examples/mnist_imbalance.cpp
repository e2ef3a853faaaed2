// examples/mnist_imbalance.cpp — the class-imbalance experiment of Ren et al. (2018), §4.1 and
// Figure 2: a two-class task cut from MNIST (digits 4 and 9, 5,000 training images of which a
// proportion p are of the majority class 9), 10 balanced clean validation images split off the
// training set, a LeNet with a one-output sigmoid head trained by SGD (lr 1e-3, momentum 0.9,
// batch 100, 8,000 steps) under each weighting method, several seeds (random splits) per
// proportion. Reports the test error (test set restricted to the two classes) as mean ± std,
// writes results.csv and evals.csv, and draws Figure 2 with gnuplot when it is installed.
// Every flag is checked, and every checkpoint to resume from, before anything is printed.
//
//   mnist_imbalance --data ~/mnist                      # the paper's set-up (5 seeds)
//   mnist_imbalance --steps 500 --proportions 0.9,0.99  # a quick look on Fashion-MNIST
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.hpp"
#include "figure2.hpp"
#include "finished_runs.hpp"
#include "flags.hpp"
#include "imbalance_runs.hpp"
#include "progress.hpp"

using namespace l2rw;
using namespace examples::imbalance;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> result_columns{"method",
                                              "proportion",
                                              "seed",
                                              "test_error",
                                              "test_loss",
                                              "train_size",
                                              "train_minority",
                                              "steps",
                                              "steps_done",
                                              "resumed_from_step",
                                              "steps_run",
                                              "seconds",
                                              "seconds_per_step",
                                              "skipped_batches",
                                              "zero_weight_examples",
                                              "zero_weight_at_evals"};
const std::vector<std::string> eval_columns{"method",
                                            "proportion",
                                            "seed",
                                            "step",
                                            "test_error",
                                            "zero_weight_last_batch",
                                            "zero_weight_since_last_eval",
                                            "examples_since_last_eval"};

std::vector<std::string> result_row(const Config& c, const RunResult& r) {
    auto [secs, per_step] = examples::seconds_fields(r.seconds, r.steps_done);
    return {r.method,
            pstr(r.proportion),
            std::to_string(r.seed),
            examples::format("%.6f", r.error),
            examples::format("%.6f", r.loss),
            std::to_string(r.train_n),
            std::to_string(r.train_minority),
            std::to_string(c.steps),
            std::to_string(r.steps_done),
            std::to_string(r.first_step),
            std::to_string(r.steps_run),
            std::move(secs),
            std::move(per_step),
            std::to_string(r.skipped),
            std::to_string(r.zero_total),
            r.zero_at_evals};
}

std::vector<std::string> eval_row(const EvalRow& e) {
    return {e.method,
            pstr(e.proportion),
            std::to_string(e.seed),
            std::to_string(e.step),
            examples::format("%.6f", e.error),
            std::to_string(e.zero_last_batch),
            std::to_string(e.zero_since),
            std::to_string(e.examples_since)};
}

/// What earlier sittings left in OUT's CSVs: the finished runs of this plan (key: run_key)
/// with their evaluations, and every row of runs outside it, which are written back as read.
struct Finished {
    std::map<std::string, std::pair<RunResult, std::vector<EvalRow>>> planned;
    std::vector<std::vector<std::string>> other_results, other_evals;
};

Finished read_finished(const Config& c, const std::vector<PlannedRun>& plan) {
    Finished f;
    const auto results = examples::read_csv(fs::path(c.out) / "results.csv");
    if (!results) return f;
    const auto evals = examples::read_csv(fs::path(c.out) / "evals.csv");
    std::map<std::string, bool> in_plan;
    for (const auto& r : plan) in_plan[run_key(r.method, r.proportion, r.seed)] = true;
    auto key = [](const examples::Csv& csv, const std::vector<std::string>& row) {
        return row[csv.column("method")] + " " + row[csv.column("proportion")] + " " +
               row[csv.column("seed")];
    };
    for (const auto& row : results->rows) {
        if (!in_plan.count(key(*results, row))) {
            f.other_results.push_back(row);
            continue;
        }
        RunResult r;
        r.method = row[results->column("method")];
        r.proportion = examples::csv_field<double>(*results, row, "proportion");
        r.seed = examples::csv_field<std::uint64_t>(*results, row, "seed");
        r.steps_done = examples::csv_field<std::int64_t>(*results, row, "steps_done");
        if (r.steps_done != c.steps) continue;  // stopped early, or another --steps: run again
        r.error = examples::csv_field<double>(*results, row, "test_error");
        r.loss = examples::csv_field<double>(*results, row, "test_loss");
        r.train_n = examples::csv_field<index_t>(*results, row, "train_size");
        r.train_minority = examples::csv_field<index_t>(*results, row, "train_minority");
        r.first_step = examples::csv_field<std::int64_t>(*results, row, "resumed_from_step");
        r.steps_run = examples::csv_field<std::int64_t>(*results, row, "steps_run");
        r.seconds = examples::csv_field<double>(*results, row, "seconds");
        r.skipped = examples::csv_field<std::int64_t>(*results, row, "skipped_batches");
        r.zero_total = examples::csv_field<std::int64_t>(*results, row, "zero_weight_examples");
        r.zero_at_evals = row[results->column("zero_weight_at_evals")];
        f.planned[key(*results, row)].first = r;
    }
    if (!evals) {
        if (!f.planned.empty())
            throw CheckpointError((fs::path(c.out) / "evals.csv").string() +
                                  " is missing, but results.csv holds finished runs: both come "
                                  "from one sweep; restore it or move results.csv away");
        return f;
    }
    for (const auto& row : evals->rows) {
        const std::string k = key(*evals, row);
        if (!in_plan.count(k)) {
            f.other_evals.push_back(row);
            continue;
        }
        const auto it = f.planned.find(k);
        if (it == f.planned.end()) continue;  // a run that goes again
        EvalRow e{it->second.first.method, it->second.first.proportion, it->second.first.seed};
        e.step = examples::csv_field<std::int64_t>(*evals, row, "step");
        e.error = examples::csv_field<double>(*evals, row, "test_error");
        e.zero_last_batch =
            examples::csv_field<std::int64_t>(*evals, row, "zero_weight_last_batch");
        e.zero_since =
            examples::csv_field<std::int64_t>(*evals, row, "zero_weight_since_last_eval");
        e.examples_since =
            examples::csv_field<std::int64_t>(*evals, row, "examples_since_last_eval");
        it->second.second.push_back(e);
    }
    return f;
}

void write_results(const Config& c, const std::vector<RunResult>& runs,
                   const std::vector<EvalRow>& evals, const Finished& kept) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : runs) rows.push_back(result_row(c, r));
    rows.insert(rows.end(), kept.other_results.begin(), kept.other_results.end());
    examples::write_csv(fs::path(c.out) / "results.csv", result_columns, rows);
    rows.clear();
    for (const auto& e : evals) rows.push_back(eval_row(e));
    rows.insert(rows.end(), kept.other_evals.begin(), kept.other_evals.end());
    examples::write_csv(fs::path(c.out) / "evals.csv", eval_columns, rows);
}

void print_summary(const Config& c, const Data& d, const std::vector<RunResult>& runs) {
    std::vector<examples::FigureLine> lines;
    std::printf(
        "\nTest error (%%), mean ± std over %d seed(s), %s classes %ld (minority) vs %ld "
        "(majority), %lld steps:\n",
        c.seeds, d.name.c_str(), static_cast<long>(c.classes[0]), static_cast<long>(c.classes[1]),
        static_cast<long long>(c.steps));
    std::vector<std::string> header{"method"}, labels;
    for (double p : c.proportions) {
        header.push_back("p=" + pstr(p));
        labels.push_back(pstr(p));
    }
    header.push_back("s/step");
    examples::Table table(header);
    std::size_t unfinished = 0;
    for (const auto& r : runs) unfinished += r.steps_done < c.steps;
    for (const auto& m : c.methods) {
        std::vector<std::string> row{m};
        examples::FigureLine line{m, {}};
        for (double p : c.proportions) {
            std::vector<double> e;
            for (const auto& r : runs)
                if (r.method == m && r.proportion == p) e.push_back(r.error);
            const auto s = examples::mean_std(e);
            line.points.push_back(s);
            row.push_back(examples::format("%.2f ± %.2f", 100 * s.mean, 100 * s.stddev));
        }
        double secs = 0;
        std::int64_t n = 0;
        for (const auto& r : runs)
            if (r.method == m) secs += r.seconds, n += r.steps_done;
        row.push_back(n ? examples::format("%.4f", secs / static_cast<double>(n)) : "-");
        table.add(row);
        lines.push_back(std::move(line));
    }
    table.print();
    if (unfinished)
        std::printf(
            "%zu of %zu runs stopped before step %lld (--session-steps): the table counts them "
            "where they stopped; run again with --resume to finish them.\n",
            unfinished, runs.size(), static_cast<long long>(c.steps));
    std::printf("Results: %s (one row per method, proportion and seed), %s (every evaluation)\n",
                (fs::path(c.out) / "results.csv").string().c_str(),
                (fs::path(c.out) / "evals.csv").string().c_str());
    const std::string title =
        examples::format("Class imbalance (%s, classes %ld vs %ld), %d seed(s), %lld steps",
                         d.name.c_str(), static_cast<long>(c.classes[0]),
                         static_cast<long>(c.classes[1]), c.seeds, static_cast<long long>(c.steps));
    examples::print_figure_note("Figure 2", c.out, "figure2",
                                examples::draw_figure2(c.out, title, labels, lines));
}

int run(Config c) {
    check_flags(c);
    const Data d = load_data(c);  // checks what depends on the data too
    auto plan = plan_runs(c, d);  // checks every checkpoint to resume from
    // With --resume, the settings of OUT's earlier runs must be these, and its finished runs
    // are taken from its CSVs (they outlive the checkpoints: see examples/finished_runs.hpp).
    const bool carry = c.resume && examples::check_sweep_file(c.out, sweep_definition(c, d));
    const Finished finished = carry ? read_finished(c, plan) : Finished{};

    if (d.fashion)
        std::printf(
            "No --data given: using Fashion-MNIST from %s in place of MNIST.\n"
            "  minority class %ld (%s) -> label 0, majority class %ld (%s) -> label 1\n",
            d.dir.c_str(), static_cast<long>(c.classes[0]),
            examples::fashion_class_name(c.classes[0]), static_cast<long>(c.classes[1]),
            examples::fashion_class_name(c.classes[1]));
    else
        std::printf("MNIST from %s: minority digit %ld -> label 0, majority digit %ld -> label 1\n",
                    d.dir.c_str(), static_cast<long>(c.classes[0]),
                    static_cast<long>(c.classes[1]));
    const auto test_counts = d.test.class_counts();
    std::printf(
        "%ld training images per run (%ld of them split off as the clean validation set), test "
        "set %ld images (%ld minority, %ld majority)\n"
        "LeNet (1-output sigmoid head), SGD lr %g momentum %g, batch %ld, %lld steps; methods:",
        static_cast<long>(c.train_size), static_cast<long>(c.clean), static_cast<long>(d.test.n),
        static_cast<long>(test_counts[0]), static_cast<long>(test_counts[1]), c.lr, c.momentum,
        static_cast<long>(c.batch), static_cast<long long>(c.steps));
    for (const auto& m : c.methods) std::printf(" %s", m.c_str());
    std::printf(
        "; %d seed(s) from %llu\n%zu runs; progress every %gs, and the time left for all "
        "runs (estimated from the steps so far)\n",
        c.seeds, static_cast<unsigned long long>(c.first_seed), plan.size(), c.progress_every);
    fs::create_directories(c.out);
    examples::write_sweep_file(c.out, sweep_definition(c, d));

    examples::Sweep sweep;
    for (const auto& r : plan) {
        const bool done = finished.planned.count(run_key(r.method, r.proportion, r.seed)) != 0;
        const std::int64_t first = done ? c.steps : r.resume_at.value_or(0);
        sweep.plan(r.method,
                   c.session_steps > 0 ? std::min(c.steps, first + c.session_steps) : c.steps,
                   first, method_cost(r.method));
    }
    std::vector<RunResult> runs;
    std::vector<EvalRow> evals;
    examples::Stopwatch all;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const PlannedRun& r = plan[i];
        const auto it = finished.planned.find(run_key(r.method, r.proportion, r.seed));
        if (it != finished.planned.end()) {
            runs.push_back(it->second.first);
            evals.insert(evals.end(), it->second.second.begin(), it->second.second.end());
            std::printf(
                "[%zu/%zu] %s p=%s seed %llu: finished in an earlier sitting (%s): test "
                "error %.2f%%\n",
                i + 1, plan.size(), r.method.c_str(), pstr(r.proportion).c_str(),
                static_cast<unsigned long long>(r.seed),
                (fs::path(c.out) / "results.csv").string().c_str(), 100 * it->second.first.error);
            continue;
        }
        runs.push_back(train_run(c, d, r, i, plan.size(), sweep, evals));
        write_results(c, runs, evals, finished);  // after every run: partial results survive
    }
    write_results(c, runs, evals, finished);  // also when every run was finished before
    print_summary(c, d, runs);
    std::printf("Total time %s\n", examples::format_duration(all.seconds()).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    examples::line_buffered_stdout();
    Config c;
    CLI::App app{
        "Class imbalance (Ren et al. 2018, sec. 4.1, Figure 2): LeNet on a two-class MNIST task "
        "with a majority proportion p, trained with each example-weighting method; test error "
        "mean ± std over seeds. Without --data it runs on Fashion-MNIST (Debian's "
        "dataset-fashion-mnist) and says so. Every flag is checked before anything runs."};
    add_flags(app, c);
    CLI11_PARSE(app, argc, argv);
    return examples::run_main("mnist_imbalance", [&] { return run(c); });
}
