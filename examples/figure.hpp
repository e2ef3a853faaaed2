// examples/figure.hpp — what the experiment programs' gnuplot figures share: a script's
// opening (its own PNG terminal and output, so that `cd OUT && gnuplot <name>.gp` redraws
// OUT/<name>.png by itself), a figure of lines with ± std error bars (Figures 2 and 5), and
// running the script (common.hpp's run_gnuplot). Not part of the library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace examples {

/// One line of a figure: a method's mean and std (fractions) at each x.
struct FigureLine {
    std::string method;
    std::vector<MeanStd> points;
};

/// Distinct colour, dash type and point shape per line.
inline const char* figure_colour(std::size_t i) {
    static const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    return colours[i % 8];
}
inline int figure_point(std::size_t i) {
    static const int points[] = {7, 5, 9, 11, 13, 4, 6, 8};
    return points[i % 8];
}

/// The opening of `dir`/`name`.gp: how to redraw it, a PNG terminal of `size` ("900,560"),
/// the output `name`.png, and the title.
inline void gnuplot_preamble(std::ofstream& f, const std::filesystem::path& dir,
                             const std::string& name, const std::string& title,
                             const std::string& size) {
    f << "# " << title << "\n# Redraw with: cd " << dir.string() << " && gnuplot " << name
      << ".gp  (writes " << name << ".png here)\n"
      << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
      << "    set terminal pngcairo size " << size << "\n} else {\n"
      << "    set terminal png size " << size << "\n}\n"
      << "set output '" << name << ".png'\nset termoption noenhanced\n"
      << "set title '" << title << "'\n";
}

/// What a figure of lines with error bars shows: x positions (increasing) with a tic label
/// each, the axis labels, and the lines (fractions, drawn as %).
struct ErrorbarFigure {
    std::string name, title, xlabel, ylabel;
    std::vector<double> xs;
    std::vector<std::string> labels;
    std::vector<FigureLine> lines;
};

/// Writes `dir`/<fig.name>.gp (its data inside) and runs gnuplot on it. Returns "" when
/// <fig.name>.png was drawn, else why not.
inline std::string draw_errorbar_figure(const std::filesystem::path& dir,
                                        const ErrorbarFigure& fig) {
    double top = 0;
    for (const auto& l : fig.lines)
        for (const auto& p : l.points) top = std::max(top, 100 * (p.mean + p.stddev));
    const double ymax = std::min(105.0, 10 * std::ceil((top + 5) / 10));
    // A small sideways offset per line (a share of the narrowest gap between xs), so that
    // lines at the same value do not hide each other.
    double gap = 1;
    for (std::size_t k = 1; k < fig.xs.size(); ++k)
        gap = k == 1 ? fig.xs[1] - fig.xs[0] : std::min(gap, fig.xs[k] - fig.xs[k - 1]);
    const auto n = static_cast<double>(fig.lines.size());
    const std::filesystem::path gp = dir / (fig.name + ".gp");
    {
        std::ofstream f(gp);
        gnuplot_preamble(f, dir, fig.name, fig.title, "900,560");
        f << "set xlabel '" << fig.xlabel << "'\nset ylabel '" << fig.ylabel << "'\n"
          << "set key outside right top\nset grid\n"
          << "set yrange [0:" << ymax << "]\n"
          << "set xrange [" << (fig.xs.empty() ? 0 : fig.xs.front()) - gap / 2 << ":"
          << (fig.xs.empty() ? 0 : fig.xs.back()) + gap / 2 << "]\n"
          << "set xtics (";
        for (std::size_t k = 0; k < fig.labels.size(); ++k)
            f << (k ? ", " : "") << "'" << fig.labels[k] << "' " << fig.xs[k];
        f << ")\n";
        for (std::size_t i = 0; i < fig.lines.size(); ++i) {
            const double dx = (static_cast<double>(i) - (n - 1) / 2) * 0.05 * gap;
            f << "$m" << i << " << EOD\n";
            for (std::size_t k = 0; k < fig.lines[i].points.size(); ++k)
                f << fig.xs[k] + dx << ' ' << 100 * fig.lines[i].points[k].mean << ' '
                  << 100 * fig.lines[i].points[k].stddev << '\n';
            f << "EOD\n";
        }
        f << "plot ";
        for (std::size_t i = 0; i < fig.lines.size(); ++i)
            f << (i ? ", \\\n     " : "") << "$m" << i << " using 1:2:3 with yerrorlines lw 2 dt "
              << i % 5 + 1 << " pt " << figure_point(i) << " ps 1.3 lc rgb '" << figure_colour(i)
              << "' title '" << fig.lines[i].method << "'";
        f << "\n";
        if (!f) return "cannot write " + gp.string();
    }
    return run_gnuplot(gp);
}

/// The line a program prints about figure `name` ("Figure 5"): where it is and how to redraw
/// it, or why it was not drawn (`err`, from draw_errorbar_figure) and where its script is.
inline void print_figure_note(const std::string& what, const std::filesystem::path& dir,
                              const std::string& name, const std::string& err) {
    if (err.empty())
        std::printf("%s written to %s (redraw: cd %s && gnuplot %s.gp)\n", what.c_str(),
                    (dir / (name + ".png")).string().c_str(), dir.string().c_str(), name.c_str());
    else
        std::printf("%s not drawn: %s; the script, with its data, is %s\n", what.c_str(),
                    err.c_str(), (dir / (name + ".gp")).string().c_str());
}

}  // namespace examples
