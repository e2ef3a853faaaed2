// examples/mnist_imbalance.cpp — the class-imbalance experiment of Ren et al. (2018), §4.1 and
// Figure 2: a two-class task cut from MNIST (digits 4 and 9, 5,000 training images of which a
// proportion p are of the majority class 9), 10 balanced clean validation images split off the
// training set, a LeNet with a one-output sigmoid head trained by SGD (lr 1e-3, momentum 0.9,
// batch 100, 8,000 steps) under each weighting method, several seeds (random splits) per
// proportion. Reports the test error (test set restricted to the two classes) as mean ± std,
// writes results.csv and evals.csv, and draws Figure 2 with gnuplot when it is installed.
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

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;
namespace fs = std::filesystem;

namespace {

struct Config {
    std::string data_dir;
    std::vector<index_t> classes{4, 9};  // minority, majority
    index_t train_size = 5000;
    std::vector<double> proportions{0.9, 0.95, 0.98, 0.99, 0.995};
    index_t clean = 10;
    std::int64_t steps = 8000;
    index_t batch = 100;
    double lr = 1e-3, momentum = 0.9;
    std::vector<std::string> methods{"uniform",     "proportion", "resample",
                                     "hard_mining", "random",     "l2rw"};
    int seeds = 5;
    std::uint64_t first_seed = 1;
    std::int64_t eval_every = 1000, log_every = 500, checkpoint_every = 0;
    bool resume = false;
    std::string out = "mnist_imbalance_out";
};

/// One training run's outcome.
struct RunResult {
    std::string method;
    double proportion = 0;
    std::uint64_t seed = 0;
    double error = 0, loss = 0, seconds = 0;  // seconds: training, without the evaluations
    std::int64_t steps_run = 0, first_step = 0, skipped = 0, zero_total = 0;
    std::string zero_at_evals;  // "step:count;..." zero-weight examples since the last eval
    index_t train_n = 0, train_minority = 0;
};

struct EvalRow {
    std::string method;
    double proportion = 0;
    std::uint64_t seed = 0;
    std::int64_t step = 0;
    double error = 0;
    index_t zero_last_batch = 0;
    std::int64_t zero_since = 0, examples_since = 0;
};

std::string pstr(double p) { return examples::format("%g", p); }

/// The test set restricted to the two classes, relabelled like data::imbalanced_binary does
/// (minority -> 0, majority -> 1); every test image of the two classes is kept.
data::Dataset binary_test_set(const data::Dataset& test, index_t minority, index_t majority) {
    std::vector<index_t> rows;
    for (index_t i = 0; i < test.n; ++i) {
        const index_t y = test.labels[static_cast<std::size_t>(i)];
        if (y == minority || y == majority) rows.push_back(i);
    }
    data::Dataset out = test.subset(rows);
    for (auto& y : out.labels) y = y == majority ? data::majority_label : data::minority_label;
    out.classes = 2;
    return out;
}

void write_results(const Config& c, const std::vector<RunResult>& runs,
                   const std::vector<EvalRow>& evals) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : runs)
        rows.push_back(
            {r.method, pstr(r.proportion), std::to_string(r.seed),
             examples::format("%.6f", r.error), examples::format("%.6f", r.loss),
             std::to_string(r.train_n), std::to_string(r.train_minority), std::to_string(c.steps),
             std::to_string(r.first_step), std::to_string(r.steps_run),
             examples::format("%.3f", r.seconds),
             examples::format("%.6f",
                              r.steps_run > 0 ? r.seconds / static_cast<double>(r.steps_run) : 0.0),
             std::to_string(r.skipped), std::to_string(r.zero_total), r.zero_at_evals});
    examples::write_csv(
        fs::path(c.out) / "results.csv",
        {"method", "proportion", "seed", "test_error", "test_loss", "train_size", "train_minority",
         "steps", "resumed_from_step", "steps_run", "seconds", "seconds_per_step",
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

/// Figure 2: test error (%) against the majority proportion, one line per method (mean, error
/// bars ± std), the proportions evenly spaced as in the paper.
void draw_figure(const Config& c,
                 const std::map<std::string, std::map<double, examples::MeanStd>>& table,
                 const std::string& dataset_name) {
    const fs::path dat = fs::path(c.out) / "figure2.dat", gp = fs::path(c.out) / "figure2.gp",
                   png = fs::path(c.out) / "figure2.png";
    {
        std::ofstream f(dat);
        for (const auto& m : c.methods) {
            f << "# " << m << "\n";
            for (std::size_t k = 0; k < c.proportions.size(); ++k) {
                const auto& s = table.at(m).at(c.proportions[k]);
                f << k << ' ' << pstr(c.proportions[k]) << ' ' << 100 * s.mean << ' '
                  << 100 * s.stddev << '\n';
            }
            f << "\n\n";
        }
    }
    {
        std::ofstream f(gp);
        f << "set output '" << png.string() << "'\n"
          << "set title 'Class imbalance (" << dataset_name << ", classes " << c.classes[0]
          << " vs " << c.classes[1] << "), " << c.seeds << " seed(s), " << c.steps << " steps'\n"
          << "set xlabel 'Proportion of the majority class'\n"
          << "set ylabel 'Test error (%)'\n"
          << "set termoption noenhanced\nset key outside right top\nset grid\n"
          << "set yrange [0:*]\n"
          << "set xrange [-0.3:" << static_cast<double>(c.proportions.size()) - 0.7 << "]\n"
          << "plot ";
        for (std::size_t i = 0; i < c.methods.size(); ++i)
            f << (i ? ", \\\n     " : "") << "'" << dat.string() << "' index " << i
              << " using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title '" << c.methods[i] << "'";
        f << "\n";
    }
    const std::string err = examples::run_gnuplot(gp);
    if (err.empty())
        std::printf("Figure 2 written to %s (gnuplot script %s)\n", png.string().c_str(),
                    gp.string().c_str());
    else
        std::printf("Figure 2 not drawn: %s; its data is in %s and the script in %s\n", err.c_str(),
                    dat.string().c_str(), gp.string().c_str());
}

int run(Config c) {
    if (c.classes.size() != 2 || c.classes[0] == c.classes[1])
        throw ValueError("--classes wants two different classes: MINORITY,MAJORITY");
    const index_t minority = c.classes[0], majority = c.classes[1];
    for (auto& m : c.methods) std::replace(m.begin(), m.end(), '-', '_');
    for (const auto& m : c.methods) (void)meta::make_policy<Model>(m);  // unknown names fail now
    for (double p : c.proportions)
        if (!(p > 0 && p < 1)) throw ValueError("--proportions must lie in (0, 1), got " + pstr(p));

    std::string dataset_name = "MNIST";
    fs::path dir = c.data_dir;
    bool fashion = false;
    if (c.data_dir.empty()) {
        const auto d = examples::default_fashion_mnist_dir();
        if (!d) {
            std::printf(
                "mnist_imbalance: no --data DIR given and no Fashion-MNIST found (Debian package "
                "dataset-fashion-mnist); nothing to run.\n");
            return examples::exit_skip;
        }
        dir = *d;
        fashion = true;
        dataset_name = "Fashion-MNIST";
        std::printf(
            "No --data given: using Fashion-MNIST from %s in place of MNIST.\n"
            "  minority class %ld (%s) -> label 0, majority class %ld (%s) -> label 1\n",
            dir.string().c_str(), static_cast<long>(minority),
            examples::fashion_class_name(minority), static_cast<long>(majority),
            examples::fashion_class_name(majority));
    } else {
        std::printf("MNIST from %s: minority digit %ld -> label 0, majority digit %ld -> label 1\n",
                    dir.string().c_str(), static_cast<long>(minority), static_cast<long>(majority));
    }
    const data::Dataset train_all = fashion ? data::load_fashion_mnist(dir.string(), true)
                                            : data::load_mnist(dir.string(), true);
    const data::Dataset test_all = fashion ? data::load_fashion_mnist(dir.string(), false)
                                           : data::load_mnist(dir.string(), false);
    const data::Dataset test = binary_test_set(test_all, minority, majority);
    const auto test_counts = test.class_counts();
    std::printf(
        "%ld training images per run (%ld of them split off as the clean validation set), test "
        "set %ld images (%ld minority, %ld majority)\n"
        "LeNet (1-output sigmoid head), SGD lr %g momentum %g, batch %ld, %lld steps; methods:",
        static_cast<long>(c.train_size), static_cast<long>(c.clean), static_cast<long>(test.n),
        static_cast<long>(test_counts[0]), static_cast<long>(test_counts[1]), c.lr, c.momentum,
        static_cast<long>(c.batch), static_cast<long long>(c.steps));
    for (const auto& m : c.methods) std::printf(" %s", m.c_str());
    std::printf("; %d seed(s) from %llu\n", c.seeds, static_cast<unsigned long long>(c.first_seed));
    fs::create_directories(c.out);

    std::vector<RunResult> runs;
    std::vector<EvalRow> evals;
    const std::size_t total_runs =
        c.proportions.size() * static_cast<std::size_t>(c.seeds) * c.methods.size();
    std::size_t run_no = 0;
    examples::Stopwatch all;
    for (double p : c.proportions) {
        for (int r = 0; r < c.seeds; ++r) {
            const std::uint64_t seed = c.first_seed + static_cast<std::uint64_t>(r);
            // The split depends on (seed, proportion) only: every method sees the same data.
            Rng rng(examples::derive_seed(seed, 0x1b, std::llround(p * 1e6)));
            const data::Dataset cut =
                data::imbalanced_binary(train_all, majority, minority, c.train_size, p, rng);
            const auto split = data::split_clean_validation(cut, data::Total{c.clean}, rng);
            const data::Dataset& train = split.train;
            const data::Dataset& clean = split.val;
            const auto counts = train.class_counts();
            for (const auto& method : c.methods) {
                ++run_no;
                const std::string label = examples::format(
                    "[%zu/%zu] %s p=%s seed %llu", run_no, total_runs, method.c_str(),
                    pstr(p).c_str(), static_cast<unsigned long long>(seed));
                auto model = nn::lenet<T, B>(nn::LeNetOptions{train.c, train.h, 1},
                                             examples::derive_seed(seed, 0x4d));
                optim::SGD<T, B> opt({.lr = c.lr, .momentum = c.momentum});
                meta::PolicyConfig pc;
                pc.seed = examples::derive_seed(seed, 0x90);
                pc.majority_class = data::majority_label;
                auto policy = meta::make_policy<Model>(method, pc);

                meta::TrainOptions o;
                o.steps = c.steps;
                o.batch_size = c.batch;
                o.validation_batch_size = 100;
                o.seed = examples::derive_seed(seed, 0x7e);
                o.eval_every = c.eval_every;
                o.checkpoint_every = c.checkpoint_every;
                o.resume = c.resume;
                if (c.checkpoint_every > 0 || c.resume)
                    o.checkpoint_path =
                        fs::path(c.out) / ("ckpt_" + method + "_p" + pstr(p) + "_seed" +
                                           std::to_string(seed) + ".l2ck");
                std::int64_t first = 0;
                if (c.resume) first = examples::resume_step(o.checkpoint_path, label, c.steps);

                examples::Progress progress(label, c.steps, first, c.log_every);
                RunResult res;
                res.method = method;
                res.proportion = p;
                res.seed = seed;
                res.train_n = train.n;
                res.train_minority = counts[data::minority_label];
                index_t zero_last = 0;
                std::int64_t zero_since = 0, examples_since = 0;
                double last_error = -1;
                std::int64_t last_eval_step = -1;
                meta::EvalResult last_eval;
                meta::Callbacks<T> cb;
                cb.on_step = [&](std::int64_t s, const meta::StepReport<T>& rep, double loss) {
                    zero_last = rep.zero_count;
                    zero_since += rep.zero_count;
                    examples_since += static_cast<std::int64_t>(rep.weights.size());
                    res.zero_total += rep.zero_count;
                    progress.step(s + 1, loss,
                                  last_error < 0
                                      ? std::string{}
                                      : examples::format("test err %.2f%%", 100 * last_error));
                };
                double eval_seconds = 0;
                cb.on_eval = [&](std::int64_t done) {
                    const examples::Stopwatch ew;
                    const auto ev = meta::evaluate(*model, test, 500);
                    eval_seconds += ew.seconds();
                    last_error = 1 - ev.accuracy;
                    last_eval = ev;
                    last_eval_step = done;
                    progress.note(examples::format(
                        "step %lld: test error %.2f%%, zero-weight examples: %ld in the last "
                        "batch, "
                        "%lld of %lld since the last evaluation",
                        static_cast<long long>(done), 100 * last_error,
                        static_cast<long>(zero_last), static_cast<long long>(zero_since),
                        static_cast<long long>(examples_since)));
                    evals.push_back(
                        {method, p, seed, done, last_error, zero_last, zero_since, examples_since});
                    res.zero_at_evals += (res.zero_at_evals.empty() ? "" : ";") +
                                         std::to_string(done) + ":" + std::to_string(zero_since);
                    zero_since = examples_since = 0;
                };
                const auto sum = meta::train(*model, opt, *policy, train, clean, o, cb);
                progress.finish();
                res.seconds = progress.seconds() - eval_seconds;  // training only
                res.first_step = sum.first_step;
                res.steps_run = sum.steps_done - sum.first_step;
                res.skipped = sum.skipped;
                const auto ev = last_eval_step == sum.steps_done && res.steps_run > 0
                                    ? last_eval  // evaluated after the last step already
                                    : meta::evaluate(*model, test, 500);
                res.error = 1 - ev.accuracy;
                res.loss = ev.loss;
                std::printf(
                    "%s: test error %.2f%%  (%lld steps in %.1f s, %.2f ms/step; %lld zero-weight "
                    "examples, %lld skipped batches)\n",
                    label.c_str(), 100 * res.error, static_cast<long long>(res.steps_run),
                    res.seconds,
                    res.steps_run ? 1e3 * res.seconds / static_cast<double>(res.steps_run) : 0.0,
                    static_cast<long long>(res.zero_total), static_cast<long long>(res.skipped));
                std::fflush(stdout);
                runs.push_back(res);
                write_results(c, runs, evals);  // after every run: partial results survive
            }
        }
    }

    // Mean ± std of the test error per method (rows) and proportion (columns).
    std::map<std::string, std::map<double, examples::MeanStd>> summary;
    for (const auto& m : c.methods)
        for (double p : c.proportions) {
            std::vector<double> e;
            for (const auto& r : runs)
                if (r.method == m && r.proportion == p) e.push_back(r.error);
            summary[m][p] = examples::mean_std(e);
        }
    std::printf(
        "\nTest error (%%), mean ± std over %d seed(s), %s classes %ld (minority) vs %ld "
        "(majority), %lld steps:\n",
        c.seeds, dataset_name.c_str(), static_cast<long>(minority), static_cast<long>(majority),
        static_cast<long long>(c.steps));
    std::vector<std::string> header{"method"};
    for (double p : c.proportions) header.push_back("p=" + pstr(p));
    header.push_back("s/step");
    examples::Table table(header);
    for (const auto& m : c.methods) {
        std::vector<std::string> row{m};
        for (double p : c.proportions) {
            const auto& s = summary[m][p];
            row.push_back(examples::format("%.2f ± %.2f", 100 * s.mean, 100 * s.stddev));
        }
        double secs = 0;
        std::int64_t n = 0;
        for (const auto& r : runs)
            if (r.method == m) secs += r.seconds, n += r.steps_run;
        row.push_back(n ? examples::format("%.4f", secs / static_cast<double>(n)) : "-");
        table.add(row);
    }
    table.print();
    std::printf("Results: %s (one row per method, proportion and seed), %s (every evaluation)\n",
                (fs::path(c.out) / "results.csv").string().c_str(),
                (fs::path(c.out) / "evals.csv").string().c_str());
    draw_figure(c, summary, dataset_name);
    std::printf("Total time %s\n", examples::format_duration(all.seconds()).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Config c;
    CLI::App app{
        "Class imbalance (Ren et al. 2018, sec. 4.1, Figure 2): LeNet on a two-class MNIST task "
        "with a majority proportion p, trained with each example-weighting method; test error "
        "mean ± std over seeds. Without --data it runs on Fashion-MNIST (Debian's "
        "dataset-fashion-mnist) and says so."};
    app.add_option("--data", c.data_dir,
                   "directory of the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); "
                   "default: Fashion-MNIST from the system");
    app.add_option(
           "--classes", c.classes,
           "MINORITY,MAJORITY: the two classes, the minority first (the paper: 4,9, class 9 "
           "dominating). As in data::imbalanced_binary, the minority becomes label 0 and "
           "the majority label 1 (the sigmoid's positive class)")
        ->delimiter(',')
        ->expected(2)
        ->capture_default_str();
    app.add_option("--train-size", c.train_size,
                   "training images per run before the clean split (the paper: 5000)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--proportions", c.proportions,
                   "majority-class proportions p, comma-separated (one column each)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--clean", c.clean,
                   "clean validation images split off the training set, balanced over the two "
                   "classes (the paper: 10, i.e. 5 per class)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--steps", c.steps, "SGD steps per run (the paper: 8000)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--batch", c.batch, "minibatch size (the paper: 100)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--lr", c.lr, "SGD learning rate (the paper: 1e-3)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
    app.add_option("--methods", c.methods,
                   "weighting methods, comma-separated: uniform, proportion, resample, "
                   "hard_mining, random, l2rw (also reed_soft, reed_hard)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--seeds", c.seeds,
                   "runs (random splits and initialisations) per method and proportion; the paper "
                   "averages 10, the default is 5 to halve the time")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--first-seed", c.first_seed, "seeds are first-seed, first-seed + 1, ...")
        ->capture_default_str();
    app.add_option("--eval-every", c.eval_every,
                   "evaluate on the test set, and report the zero-weight examples, every N steps "
                   "(0: only at the end)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--log-every", c.log_every,
                   "when stdout is not a terminal, a progress line every N steps")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--out", c.out,
                   "output directory: results.csv, evals.csv, figure2.{dat,gp,png}, checkpoints")
        ->capture_default_str();
    app.add_option("--checkpoint-every", c.checkpoint_every,
                   "save each run's model and optimizer to OUT/ckpt_<method>_p<p>_seed<s>.l2ck "
                   "every N steps and at the end (0: never)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_flag("--resume", c.resume,
                 "continue every run from its checkpoint in OUT when there is one (a finished run "
                 "is only evaluated again)");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(c);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mnist_imbalance: %s\n", e.what());
        return 1;
    }
}
