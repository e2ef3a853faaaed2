// examples/finished_runs.hpp — how a sweep goes on over several sittings after its checkpoints
// are gone (a fresh machine, a clean clone). A sweep's results.csv and evals.csv are small and
// committed; its checkpoints are neither. So what every run of OUT shares (data, model,
// optimizer settings) is written to OUT/sweep.txt, and with --resume a run whose finished row
// is in OUT/results.csv, under the same sweep.txt, is taken from the CSVs instead of being
// trained again. Rows of runs that are not in this invocation's plan are kept, not dropped.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <l2rw/l2rw.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace examples {

/// A CSV file as write_csv writes it: a header and rows of as many fields.
struct Csv {
    std::string file;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;

    /// The index of column `name`; CheckpointError naming the file when it has none.
    [[nodiscard]] std::size_t column(const std::string& name) const {
        for (std::size_t i = 0; i < header.size(); ++i)
            if (header[i] == name) return i;
        throw l2rw::CheckpointError(file + " has no column '" + name +
                                    "': it was not written by this program; move it away to start "
                                    "afresh");
    }
};

/// Field `name` of `row` as a number; CheckpointError naming the file when it is none.
template <class N>
N csv_field(const Csv& csv, const std::vector<std::string>& row, const std::string& name) {
    const std::string& v = row[csv.column(name)];
    try {
        std::size_t used = 0;
        N x{};
        if constexpr (std::is_floating_point_v<N>)
            x = static_cast<N>(std::stod(v, &used));
        else
            x = static_cast<N>(std::stoll(v, &used));
        if (used == v.size() && !v.empty()) return x;
    } catch (const std::exception&) {
    }
    throw l2rw::CheckpointError(csv.file + ": '" + v + "' in column " + name +
                                " is not a number; the file is damaged");
}

/// Reads a CSV (fields quoted with '"' when they hold a comma, quote or line break). nullopt
/// when there is no file; CheckpointError naming the file and line when it is malformed (an
/// open quote at the end, a row with another number of fields than the header).
inline std::optional<Csv> read_csv(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return std::nullopt;
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    Csv csv{path.string(), {}, {}};
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, any = false;
    std::size_t line = 1;
    auto bad = [&](const std::string& what) {
        return l2rw::CheckpointError(csv.file + ", line " + std::to_string(line) + ": " + what +
                                     "; the file is damaged or was not written by this program");
    };
    auto end_row = [&] {
        row.push_back(std::move(field));
        field.clear();
        if (csv.header.empty())
            csv.header = std::move(row);
        else if (row.size() != csv.header.size())
            throw bad(std::to_string(row.size()) + " fields where the header has " +
                      std::to_string(csv.header.size()));
        else
            csv.rows.push_back(std::move(row));
        row.clear();
        any = false;
        ++line;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c != '"')
                field += c;
            else if (i + 1 < text.size() && text[i + 1] == '"')
                field += '"', ++i;
            else
                quoted = false;
        } else if (c == '"') {
            quoted = any = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
            any = true;
        } else if (c == '\n') {
            end_row();
        } else if (c != '\r') {
            field += c;
            any = true;
        }
    }
    if (quoted) throw bad("a quoted field is not closed");
    if (any || !field.empty()) end_row();  // a last line without its line break
    if (csv.header.empty()) throw bad("no header");
    return csv;
}

/// OUT/sweep.txt, written by write_sweep_file: `def` as "key = value" lines.
inline std::string sweep_text(const l2rw::io::Metadata& def) {
    std::string text;
    for (const auto& [k, v] : def) text += k + " = " + v + "\n";
    return text;
}

/// For --resume, before anything runs: OUT/sweep.txt, when there is one, must hold exactly
/// `def`, else CheckpointError naming each difference, so that rows made with other settings
/// are never mixed in; a results.csv without a sweep.txt beside it is refused too (its
/// settings are unknown). Returns whether the CSVs' finished rows may be taken.
inline bool check_sweep_file(const std::filesystem::path& out, const l2rw::io::Metadata& def) {
    const auto path = out / "sweep.txt";
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (std::filesystem::exists(out / "results.csv"))
            throw l2rw::CheckpointError(
                "--resume: " + (out / "results.csv").string() +
                " has no sweep.txt beside it, so "
                "the settings of its runs are unknown: move it away, or choose another --out");
        return false;
    }
    l2rw::io::Metadata old;
    std::string line;
    while (std::getline(f, line)) {
        const auto eq = line.find(" = ");
        if (eq == std::string::npos)
            throw l2rw::CheckpointError(path.string() + ": '" + line +
                                        "' is not a 'key = value' line; the file is damaged");
        old[line.substr(0, eq)] = line.substr(eq + 3);
    }
    const std::string diff = l2rw::io::metadata_differences(old, def);
    if (!diff.empty())
        throw l2rw::CheckpointError(
            "--resume: the runs in " + out.string() + " were made with other settings (" + diff +
            "): resume with the settings of " + path.string() + ", or choose another --out");
    return true;
}

/// Writes OUT/sweep.txt (see check_sweep_file).
inline void write_sweep_file(const std::filesystem::path& out, const l2rw::io::Metadata& def) {
    const auto path = out / "sweep.txt";
    std::ofstream f(path, std::ios::trunc | std::ios::binary);
    f << sweep_text(def);
    if (!f.flush()) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace examples
