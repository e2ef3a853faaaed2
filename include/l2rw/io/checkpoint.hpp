// l2rw/io/checkpoint.hpp — save and load a model's parameters and buffers, and optionally an
// optimizer's state, in a versioned, checksummed binary file (its layout and validation:
// io/checkpoint_format.hpp; writing it atomically: io/checkpoint_file.hpp).
//
// load_checkpoint reads the whole file into host memory and validates everything — magic,
// version, scalar type, size, CRC, structure, and that names, kinds and shapes match the model
// (and optimizer) exactly — before it changes anything; on any problem it throws
// CheckpointError naming the file and the problem, and the model and optimizer are left as
// they were. probe_checkpoint validates a file without a model and says what it holds, or that
// there is none. Files are backend-neutral: save from Cpu, load into Thrust<...> (or the other
// way round).
//
// Model entries are named as nn::named_tensors names them; optimizer state entries are
// named "<slot>:<parameter name>" ("momentum_buffer:fc.weight", "exp_avg:fc.bias"). A
// checkpoint can carry Metadata (text keys and values) beside the tensors: load_checkpoint
// returns it and lets the caller refuse the file on it before anything changes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "../error.hpp"
#include "../nn/module.hpp"
#include "../tensor.hpp"
#include "checkpoint_file.hpp"
#include "checkpoint_format.hpp"

namespace l2rw::io {

/// What an optimizer shows a checkpoint (SGD and Adam have it): a name, per-parameter state
/// slots, a step count, a read view of the state and a validating replace-all.
template <class O>
concept CheckpointOptimizer = requires(
    O& o, const O& co, std::vector<std::vector<std::optional<typename O::tensor_type>>> s) {
    { O::type_name() } -> std::convertible_to<std::string_view>;
    O::state_slots();
    { co.step_count() } -> std::convertible_to<std::int64_t>;
    { co.num_params() } -> std::convertible_to<std::size_t>;
    co.state(std::size_t{0}, std::size_t{0});
    o.load_state(std::int64_t{0}, std::move(s));
};

/// What a checkpoint file holds, as probe_checkpoint finds it.
struct CheckpointInfo {
    std::uint64_t bytes = 0;    ///< the file's size
    std::string scalar_type;    ///< "float32" or "float64"
    std::uint64_t entries = 0;  ///< parameters, buffers and optimizer state tensors
    bool has_optimizer = false;
    std::string optimizer;            ///< "SGD", "Adam", or empty
    std::int64_t optimizer_step = 0;  ///< the optimizer's step count (0 without one)
    Metadata metadata;                ///< what was saved beside the tensors (version 2 on)
};

/// Called with what a checkpoint holds once the file is known to fit, before anything is
/// assigned: throwing refuses the file and leaves everything as it was.
using CheckpointCheck = std::function<void(const CheckpointInfo&)>;

namespace detail {
template <class T>
CheckpointInfo info_of(const Contents<T>& c, std::size_t bytes) {
    CheckpointInfo i;
    i.bytes = bytes;
    i.scalar_type = scalar_code_name(scalar_code<T>());
    i.entries = c.entries.size();
    i.has_optimizer = c.has_optimizer;
    i.optimizer = c.optimizer;
    i.optimizer_step = c.optimizer_step;
    i.metadata = c.metadata;
    return i;
}

inline std::string kind_str(nn::Kind k) {
    return k == nn::Kind::parameter ? "parameter" : "buffer";
}
inline EntryKind entry_kind(nn::Kind k) {
    return k == nn::Kind::parameter ? EntryKind::parameter : EntryKind::buffer;
}

template <class T, Backend B>
void put_entry(Writer& w, const std::string& name, EntryKind kind, const Tensor<T, B>& t) {
    w.str(name);
    w.u8(static_cast<std::uint8_t>(kind));
    w.u8(static_cast<std::uint8_t>(t.rank()));
    for (int k = 0; k < t.rank(); ++k) w.i64(t.shape()[k]);
    w.values(t.to_host());
}

template <class T, Backend B, class Opt>
void save_impl(const std::filesystem::path& path, nn::Module<T, B>& model, const Opt* opt,
               const Metadata& metadata) {
    const std::string f = file_str(path);
    const auto tensors = nn::named_tensors(model);
    const auto params = nn::named_parameters(model);
    std::uint64_t count = tensors.size();
    std::set<std::string> names;
    for (const auto& [name, t, kind] : tensors)
        if (!names.insert(name).second)
            throw CheckpointError("checkpoint " + f + ": the model has two tensors named '" + name +
                                  "'");
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            if (opt->num_params() > params.size())
                throw CheckpointError("checkpoint " + f + ": the optimizer state covers " +
                                      std::to_string(opt->num_params()) +
                                      " parameters but the model has " +
                                      std::to_string(params.size()));
            const auto slots = Opt::state_slots();
            for (std::size_t s = 0; s < slots.size(); ++s)
                for (std::size_t i = 0; i < opt->num_params(); ++i)
                    if (const auto& st = opt->state(s, i)) {
                        if (!(st->shape() == params[i].second->shape()))
                            throw CheckpointError("checkpoint " + f + ": the optimizer's " +
                                                  std::string(slots[s]) + " of parameter '" +
                                                  params[i].first + "' has shape " +
                                                  st->shape().str() + " but the parameter has " +
                                                  params[i].second->shape().str());
                        ++count;
                    }
        }
    }

    Writer w;
    w.bytes(checkpoint_magic, sizeof checkpoint_magic);
    w.u32(checkpoint_version);
    w.u32(scalar_code<T>());
    w.u64(0);  // the file size (at size_field_at), patched below
    w.u64(count);
    bool has_opt = false;
    if constexpr (!std::is_same_v<Opt, void>) has_opt = opt != nullptr;
    w.u8(has_opt ? 1 : 0);
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            w.str(std::string(Opt::type_name()));
            w.i64(static_cast<std::int64_t>(opt->step_count()));
        }
    }
    for (const auto& [name, t, kind] : tensors) put_entry(w, name, entry_kind(kind), *t);
    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            const auto slots = Opt::state_slots();
            for (std::size_t s = 0; s < slots.size(); ++s)
                for (std::size_t i = 0; i < opt->num_params(); ++i)
                    if (const auto& st = opt->state(s, i))
                        put_entry(w, std::string(slots[s]) + ":" + params[i].first,
                                  EntryKind::optimizer_state, *st);
        }
    }
    w.u32(static_cast<std::uint32_t>(metadata.size()));
    for (const auto& [key, value] : metadata) {
        if (key.empty()) throw CheckpointError("checkpoint " + f + ": a metadata key is empty");
        w.str(key);
        w.str(value);
    }
    const std::uint64_t total = w.buf.size() + 4;
    for (std::size_t i = 0; i < 8; ++i)
        w.buf[size_field_at + i] = static_cast<unsigned char>((total >> (8 * i)) & 0xFF);
    w.u32(crc32_of(w.buf.data(), w.buf.size()));
    write_atomically(path, w.buf);
}

template <class T, Backend B, class Opt>
Metadata load_impl(const std::filesystem::path& path, nn::Module<T, B>& model, Opt* opt,
                   const CheckpointCheck& accept) {
    const std::string f = file_str(path);
    const auto bytes = read_file(path);
    Contents<T> c = parse<T>(f, bytes);

    // ---- the model: same names, kinds and shapes, nothing missing, nothing extra ----
    const auto tensors = nn::named_tensors(model);
    std::map<std::string, const Entry<T>*> by_name;
    for (const auto& e : c.entries)
        if (e.kind != EntryKind::optimizer_state) by_name.emplace(e.name, &e);
    std::vector<const Entry<T>*> src;
    std::set<std::string> model_names;
    for (const auto& [name, t, kind] : tensors) {
        model_names.insert(name);
        auto it = by_name.find(name);
        if (it == by_name.end())
            throw CheckpointError("checkpoint " + f + ": the model's " + kind_str(kind) + " '" +
                                  name + "' is not in the file");
        const Entry<T>& e = *it->second;
        if (e.kind != entry_kind(kind))
            throw CheckpointError("checkpoint " + f + ": '" + name + "' is a " + to_string(e.kind) +
                                  " in the file but a " + kind_str(kind) + " in the model");
        if (!(e.shape == t->shape()))
            throw CheckpointError("checkpoint " + f + ": " + kind_str(kind) + " '" + name +
                                  "' has shape " + e.shape.str() + " in the file but " +
                                  t->shape().str() + " in the model");
        src.push_back(&e);
    }
    for (const auto& [name, e] : by_name)
        if (!model_names.count(name))
            throw CheckpointError("checkpoint " + f + ": the file has " + to_string(e->kind) +
                                  " '" + name + "' which the model does not have");

    // ---- build every new tensor before assigning any ----
    std::vector<Tensor<T, B>> fresh;
    fresh.reserve(src.size());
    for (const Entry<T>* e : src) fresh.push_back(Tensor<T, B>::from_host(e->shape, e->values));
    if (accept) accept(info_of(c, bytes.size()));  // before the optimizer's state is replaced

    if constexpr (!std::is_same_v<Opt, void>) {
        if (opt) {
            if (!c.has_optimizer)
                throw CheckpointError(
                    "checkpoint " + f + ": holds no optimizer state, but an optimizer (" +
                    std::string(Opt::type_name()) + ") was given to load it into");
            if (c.optimizer != Opt::type_name())
                throw CheckpointError("checkpoint " + f + ": holds " + c.optimizer +
                                      " state but the optimizer is " +
                                      std::string(Opt::type_name()));
            const auto params = nn::named_parameters(model);
            std::map<std::string, std::size_t> pidx;
            for (std::size_t i = 0; i < params.size(); ++i) pidx.emplace(params[i].first, i);
            const auto slots = Opt::state_slots();
            std::vector<std::vector<std::optional<Tensor<T, B>>>> state(
                slots.size(), std::vector<std::optional<Tensor<T, B>>>(params.size()));
            for (const auto& e : c.entries) {
                if (e.kind != EntryKind::optimizer_state) continue;
                const auto colon = e.name.find(':');
                const std::string slot =
                    colon == std::string::npos ? std::string() : e.name.substr(0, colon);
                const std::string pname =
                    colon == std::string::npos ? e.name : e.name.substr(colon + 1);
                std::size_t s = slots.size();
                for (std::size_t k = 0; k < slots.size(); ++k)
                    if (slots[k] == slot) s = k;
                if (s == slots.size())
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' is not a " + std::string(Opt::type_name()) +
                                          " state slot");
                auto it = pidx.find(pname);
                if (it == pidx.end())
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' belongs to parameter '" + pname +
                                          "' which the model does not have");
                const auto& p = *params[it->second].second;
                if (!(e.shape == p.shape()))
                    throw CheckpointError("checkpoint " + f + ": optimizer state '" + e.name +
                                          "' has shape " + e.shape.str() +
                                          " in the file but parameter '" + pname + "' has " +
                                          p.shape().str() + " in the model");
                state[s][it->second] = Tensor<T, B>::from_host(e.shape, e.values);
            }
            try {
                opt->load_state(c.optimizer_step, std::move(state));  // validates, then replaces
            } catch (const CheckpointError&) {
                throw;
            } catch (const Error& ex) {
                throw CheckpointError("checkpoint " + f +
                                      ": optimizer state rejected: " + ex.what());
            }
        }
    }

    // ---- everything checked: assign (in place, so the parameters keep their buffers) ----
    for (std::size_t i = 0; i < fresh.size(); ++i) std::get<1>(tensors[i])->assign(fresh[i]);
    return std::move(c.metadata);
}

}  // namespace detail

/// Whether anything is at `path` (a file to resume from, good or bad). False only when
/// nothing is there; throws CheckpointError when that cannot be told (a directory on the way
/// that cannot be searched, say).
inline bool checkpoint_exists(const std::filesystem::path& path) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory)
        throw CheckpointError("checkpoint " + path.string() +
                              ": cannot tell whether it exists: " + ec.message());
    return std::filesystem::exists(st);
}

/// Reads and validates the checkpoint at `path` as far as it can without a model (format,
/// size, CRC-32, structure; see io/checkpoint_format.hpp) and says what it holds; nothing
/// when there is no file at `path` (checkpoint_exists). A file that is there but is not a
/// good checkpoint (empty, another format, damaged) throws CheckpointError saying why.
inline std::optional<CheckpointInfo> probe_checkpoint(const std::filesystem::path& path) {
    if (!checkpoint_exists(path)) return std::nullopt;
    const std::string f = detail::file_str(path);
    const auto bytes = detail::read_file(path);
    const bool is_float = bytes.size() >= 16 &&
                          detail::le_at<std::uint32_t>(bytes.data() + 12) == scalar_code<float>();
    if (is_float) return detail::info_of(detail::parse<float>(f, bytes, false), bytes.size());
    return detail::info_of(detail::parse<double>(f, bytes, false), bytes.size());
}

/// Saves the parameters and buffers of `model`, and `metadata` beside them.
template <class T, Backend B>
void save_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model,
                     const Metadata& metadata = {}) {
    detail::save_impl<T, B, void>(path, model, nullptr, metadata);
}
/// Saves the parameters and buffers of `model`, the state of `opt` (which must have been
/// stepped on nn::named_parameters(model), in that order) and `metadata`.
template <class T, Backend B, CheckpointOptimizer Opt>
void save_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model, const Opt& opt,
                     const Metadata& metadata = {}) {
    detail::save_impl<T, B, Opt>(path, model, &opt, metadata);
}

/// Loads parameters and buffers into `model` (optimizer state in the file is ignored) and
/// returns the file's metadata. Throws CheckpointError, leaving the model unchanged, unless
/// the file fits the model exactly; `accept`, when given, sees what the file holds first and
/// may refuse it by throwing (nothing has changed then).
template <class T, Backend B>
Metadata load_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model,
                         const CheckpointCheck& accept = {}) {
    return detail::load_impl<T, B, void>(path, model, nullptr, accept);
}
/// Loads parameters, buffers and the optimizer state, and returns the metadata; on any
/// problem (or when `accept` throws) neither the model nor the optimizer changes.
template <class T, Backend B, CheckpointOptimizer Opt>
Metadata load_checkpoint(const std::filesystem::path& path, nn::Module<T, B>& model, Opt& opt,
                         const CheckpointCheck& accept = {}) {
    return detail::load_impl<T, B, Opt>(path, model, &opt, accept);
}

}  // namespace l2rw::io
