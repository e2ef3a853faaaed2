// examples/figure2.hpp — Figure 2 of Ren et al. (2018) from mnist_imbalance's results: test
// error (%) against the majority proportion, one line per method with ± std error bars. The
// gnuplot script holds its data and sets its own terminal, so `cd OUT && gnuplot figure2.gp`
// redraws OUT/figure2.png by itself (examples/figure.hpp). Not part of the library.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "figure.hpp"

namespace examples {

/// Writes `dir`/figure2.gp (the proportions evenly spaced, as in the paper, labelled with
/// `labels`) and runs gnuplot on it. Returns "" when figure2.png was drawn, else why not.
inline std::string draw_figure2(const std::filesystem::path& dir, const std::string& title,
                                const std::vector<std::string>& labels,
                                const std::vector<FigureLine>& lines) {
    ErrorbarFigure fig{"figure2", title, "Proportion of the majority class", "Test error (%)", {},
                       labels,    lines};
    for (std::size_t k = 0; k < labels.size(); ++k) fig.xs.push_back(static_cast<double>(k));
    return draw_errorbar_figure(dir, fig);
}

}  // namespace examples
