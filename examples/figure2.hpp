// examples/figure2.hpp — Figure 2 of Ren et al. (2018) from mnist_imbalance's results: test
// error (%) against the majority proportion, one line per method with ± std error bars. The
// gnuplot script holds its data and sets its own terminal, so `cd OUT && gnuplot figure2.gp`
// redraws OUT/figure2.png by itself. Not part of the library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace examples {

/// One line of the figure: a method's mean and std (fractions) at each proportion.
struct FigureLine {
    std::string method;
    std::vector<MeanStd> points;
};

/// Writes `dir`/figure2.gp (the proportions evenly spaced, as in the paper, labelled with
/// `labels`) and runs gnuplot on it. Returns "" when figure2.png was drawn, else why not.
inline std::string draw_figure2(const std::filesystem::path& dir, const std::string& title,
                                const std::vector<std::string>& labels,
                                const std::vector<FigureLine>& lines) {
    // Distinct colour, dash type and point shape per method; a small sideways offset per
    // method, so that lines at the same value (50% error) do not hide each other.
    static const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    static const int points[] = {7, 5, 9, 11, 13, 4, 6, 8};
    double top = 0;
    for (const auto& l : lines)
        for (const auto& p : l.points) top = std::max(top, 100 * (p.mean + p.stddev));
    const double ymax = std::min(105.0, 10 * std::ceil((top + 5) / 10));
    const auto n = static_cast<double>(lines.size());
    const std::filesystem::path gp = dir / "figure2.gp";
    {
        std::ofstream f(gp);
        f << "# " << title << "\n# Redraw with: cd " << dir.string()
          << " && gnuplot figure2.gp  (writes figure2.png here)\n"
          << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
          << "    set terminal pngcairo size 900,560\n} else {\n"
          << "    set terminal png size 900,560\n}\n"
          << "set output 'figure2.png'\nset termoption noenhanced\n"
          << "set title '" << title << "'\n"
          << "set xlabel 'Proportion of the majority class'\nset ylabel 'Test error (%)'\n"
          << "set key outside right top\nset grid\n"
          << "set yrange [0:" << ymax << "]\n"
          << "set xrange [-0.5:" << static_cast<double>(labels.size()) - 0.5 << "]\n"
          << "set xtics (";
        for (std::size_t k = 0; k < labels.size(); ++k)
            f << (k ? ", " : "") << "'" << labels[k] << "' " << k;
        f << ")\n";
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const double dx = (static_cast<double>(i) - (n - 1) / 2) * 0.05;
            f << "$m" << i << " << EOD\n";
            for (std::size_t k = 0; k < lines[i].points.size(); ++k)
                f << static_cast<double>(k) + dx << ' ' << 100 * lines[i].points[k].mean << ' '
                  << 100 * lines[i].points[k].stddev << '\n';
            f << "EOD\n";
        }
        f << "plot ";
        for (std::size_t i = 0; i < lines.size(); ++i)
            f << (i ? ", \\\n     " : "") << "$m" << i << " using 1:2:3 with yerrorlines lw 2 dt "
              << i % 5 + 1 << " pt " << points[i % 8] << " ps 1.3 lc rgb '" << colours[i % 8]
              << "' title '" << lines[i].method << "'";
        f << "\n";
        if (!f) return "cannot write " + gp.string();
    }
    return run_gnuplot(gp);
}

}  // namespace examples
