// examples/figure5.hpp — Figure 5 of Ren et al. (2018) from noisy_labels's results: test
// accuracy (%) against the noise ratio (%), one line per method with ± std error bars over
// seeds. The gnuplot script holds its data and sets its own terminal, so `cd OUT && gnuplot
// figure5.gp` redraws OUT/figure5.png by itself (examples/figure.hpp). Not part of the
// library.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "figure.hpp"

namespace examples {

/// Writes `dir`/figure5.gp (x: the noise ratios `ratios` as %, at their values) and runs
/// gnuplot on it. `lines` hold test accuracies (fractions), one point per ratio. Returns ""
/// when figure5.png was drawn, else why not.
inline std::string draw_figure5(const std::filesystem::path& dir, const std::string& title,
                                const std::vector<double>& ratios,
                                const std::vector<FigureLine>& lines) {
    ErrorbarFigure fig{"figure5", title, "Noise ratio (%)", "Test accuracy (%)", {}, {}, lines};
    for (double r : ratios) {
        fig.xs.push_back(100 * r);
        fig.labels.push_back(format("%g", 100 * r));
    }
    return draw_errorbar_figure(dir, fig);
}

}  // namespace examples
