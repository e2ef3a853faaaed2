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
#include <vector>

#include "common.hpp"
#include "figure2.hpp"
#include "flags.hpp"
#include "imbalance_runs.hpp"
#include "progress.hpp"

using namespace l2rw;
using namespace examples::imbalance;
namespace fs = std::filesystem;

namespace {

void write_results(const Config& c, const std::vector<RunResult>& runs,
                   const std::vector<EvalRow>& evals) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : runs)
        rows.push_back(
            {r.method, pstr(r.proportion), std::to_string(r.seed),
             examples::format("%.6f", r.error), examples::format("%.6f", r.loss),
             std::to_string(r.train_n), std::to_string(r.train_minority), std::to_string(c.steps),
             std::to_string(r.steps_done), std::to_string(r.first_step),
             std::to_string(r.steps_run), examples::format("%.3f", r.seconds),
             examples::format(
                 "%.6f", r.steps_done > 0 ? r.seconds / static_cast<double>(r.steps_done) : 0.0),
             std::to_string(r.skipped), std::to_string(r.zero_total), r.zero_at_evals});
    examples::write_csv(
        fs::path(c.out) / "results.csv",
        {"method", "proportion", "seed", "test_error", "test_loss", "train_size", "train_minority",
         "steps", "steps_done", "resumed_from_step", "steps_run", "seconds", "seconds_per_step",
         "skipped_batches", "zero_weight_examples", "zero_weight_at_evals"},
        rows);
    rows.clear();
    for (const auto& e : evals)
        rows.push_back({e.method, pstr(e.proportion), std::to_string(e.seed),
                        std::to_string(e.step), examples::format("%.6f", e.error),
                        std::to_string(e.zero_last_batch), std::to_string(e.zero_since),
                        std::to_string(e.examples_since)});
    examples::write_csv(
        fs::path(c.out) / "evals.csv",
        {"method", "proportion", "seed", "step", "test_error", "zero_weight_last_batch",
         "zero_weight_since_last_eval", "examples_since_last_eval"},
        rows);
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
    const auto gp = fs::path(c.out) / "figure2.gp";
    const std::string err = examples::draw_figure2(c.out, title, labels, lines);
    if (err.empty())
        std::printf("Figure 2 written to %s (redraw: cd %s && gnuplot figure2.gp)\n",
                    (fs::path(c.out) / "figure2.png").string().c_str(), c.out.c_str());
    else
        std::printf("Figure 2 not drawn: %s; the script, with its data, is %s\n", err.c_str(),
                    gp.string().c_str());
}

int run(Config c) {
    check_flags(c);
    const Data d = load_data(c);  // checks what depends on the data too
    auto plan = plan_runs(c, d);  // checks every checkpoint to resume from

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

    examples::Sweep sweep;
    for (const auto& r : plan) {
        const std::int64_t first = r.resume_at.value_or(0);
        sweep.plan(r.method,
                   c.session_steps > 0 ? std::min(c.steps, first + c.session_steps) : c.steps,
                   first, method_cost(r.method));
    }
    std::vector<RunResult> runs;
    std::vector<EvalRow> evals;
    examples::Stopwatch all;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        runs.push_back(train_run(c, d, plan[i], i, plan.size(), sweep, evals));
        write_results(c, runs, evals);  // after every run: partial results survive
    }
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
