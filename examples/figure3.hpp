// examples/figure3.hpp — Figure 3 of Ren et al. (2018) from noisy_labels's weight dumps
// (examples/weight_dump.hpp): the distribution of the example weights on clean and on flipped
// labels, as two histograms per panel (the share of each group's examples per bin), one panel
// per method and noise ratio, the seeds pooled. The weights are drawn relative to their
// batch's mean (batch size × weight: 1 for uniform weights); the weights of exactly 0 have a
// bin of their own, left of the dashed line at 0. The script holds its data and sets its own
// terminal, so `cd OUT && gnuplot figure3.gp` redraws OUT/figure3.png by itself
// (examples/figure.hpp). Not part of the library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "figure.hpp"
#include "weight_dump.hpp"

namespace examples {

/// One panel of Figure 3: its title and the weights it pools.
struct WeightPanel {
    std::string title;
    std::vector<WeightRow> rows;
};

/// Writes `dir`/figure3.gp (a bin for weight 0, and `bins` bins over (0, the panel's 99th
/// percentile of the non-zero relative weights], the last bin holding the larger ones too) and
/// runs gnuplot on it. Returns "" when figure3.png was drawn, else why not.
inline std::string draw_figure3(const std::filesystem::path& dir, const std::string& title,
                                const std::vector<WeightPanel>& panels, int bins = 20) {
    const std::size_t cols = std::min<std::size_t>(2, std::max<std::size_t>(1, panels.size()));
    const std::size_t lines = (panels.size() + cols - 1) / cols;
    const std::filesystem::path gp = dir / "figure3.gp";
    {
        std::ofstream f(gp);
        gnuplot_preamble(f, dir, "figure3", title,
                         format("%zu,%zu", 900 * cols, 80 + 420 * std::max<std::size_t>(1, lines)));
        f << "set style fill solid 0.6 border -1\nset grid ytics\nset key top right\n"
          << "set xlabel 'weight / batch mean (= batch size x weight); left of the dashed line: "
             "weight 0; last bin: the top 1%'\n"
          << "set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2\n"
          << "set ylabel 'share of the group''s examples (%)'\nset yrange [0:*]\n"
          << "set multiplot layout " << lines << "," << cols << " title '" << title << "'\n";
        for (std::size_t p = 0; p < panels.size(); ++p) {
            // The bins span (0, the 99th percentile of the non-zero weights]: the few larger
            // ones go into the last bin, so that a handful of outliers cannot flatten the rest.
            std::vector<double> nonzero;
            for (const auto& r : panels[p].rows)
                if (r.weight != 0) nonzero.push_back(r.relative());
            double hi = 0;
            if (!nonzero.empty()) {
                const auto q =
                    nonzero.begin() +
                    static_cast<std::ptrdiff_t>(0.99 * static_cast<double>(nonzero.size() - 1));
                std::nth_element(nonzero.begin(), q, nonzero.end());
                hi = *q;
            }
            if (!(hi > 0)) hi = 1;
            const double width = hi / bins;
            // count[g][0]: weight 0; count[g][k], k >= 1: [(k - 1)·width, k·width), the last
            // closed.
            const auto nb = static_cast<std::size_t>(bins) + 1;
            std::vector<double> count[2] = {std::vector<double>(nb), std::vector<double>(nb)};
            double total[2] = {0, 0}, zero[2] = {0, 0};
            for (const auto& r : panels[p].rows) {
                const auto k =
                    r.weight == 0
                        ? 0
                        : 1 + std::min(static_cast<std::size_t>(r.relative() / width), nb - 2);
                count[r.flipped][k] += 1;
                total[r.flipped] += 1;
                zero[r.flipped] += r.weight == 0;
            }
            f << "set title '" << panels[p].title;
            for (int g = 0; g < 2; ++g)
                if (total[g] > 0)
                    f << format("%s weight 0: %.0f%% of %s", g ? "," : " -",
                                100 * zero[g] / total[g], g ? "flipped" : "clean");
            f << "'\nset boxwidth " << width * 0.45 << " absolute\n"
              << "set xrange [" << -width << ":" << hi * 1.02 << "]\n";
            std::string plot;
            for (int g = 0; g < 2; ++g) {
                if (total[g] <= 0) continue;
                const std::string block = format("$h%zu_%d", p, g);
                f << block << " << EOD\n";
                for (std::size_t k = 0; k < count[g].size(); ++k)
                    f << (static_cast<double>(k) - (g ? 0.25 : 0.75)) * width << ' '
                      << 100 * count[g][k] / total[g] << '\n';
                f << "EOD\n";
                plot += (plot.empty() ? "plot " : ", \\\n     ") + block +
                        " using 1:2 with boxes lc rgb '" + figure_colour(g ? 3 : 0) + "' title '" +
                        (g ? "flipped" : "clean") + format(" (%.0f)'", total[g]);
            }
            f << (plot.empty() ? "plot 0 notitle" : plot) << "\n";
        }
        f << "unset multiplot\n";
        if (!f) return "cannot write " + gp.string();
    }
    return run_gnuplot(gp);
}

}  // namespace examples
