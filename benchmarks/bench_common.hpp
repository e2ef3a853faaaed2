// benchmarks/bench_common.hpp — what bench_meta_step.cpp and its libtorch twin share, with no
// l2rw dependency: the thread counts to run at, and the peak resident memory of a case.
//
//   --threads=1,2   (ours) / --torch_threads=1,2 (torch): every case runs once per count,
//                   named `thr:N/<case>`, so that the two programs' cases line up by name.
//   peak_MB         a counter on every case: the largest resident set the process reached
//                   while the case ran (model, batches, warm-up step and timed steps) above
//                   its resident set when the case began (after caches were given back), in
//                   MiB. Linux only: it resets the kernel's high-water mark (VmHWM) through
//                   /proc/self/clear_refs, and reads 0 where that is not possible.
#pragma once

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace l2rw_bench {

/// Takes `--<flag>=a,b,...` out of argv (default `fallback`) and returns the counts.
inline std::vector<int> take_thread_counts(int& argc, char** argv, const std::string& flag,
                                           std::vector<int> fallback) {
    const std::string key = "--" + flag + "=";
    std::vector<int> counts;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], key.c_str(), key.size()) != 0) {
            argv[kept++] = argv[i];
            continue;
        }
        std::string list = argv[i] + key.size();
        std::size_t pos = 0;
        while (pos <= list.size()) {
            const std::size_t end = std::min(list.find(',', pos), list.size());
            const std::string item = list.substr(pos, end - pos);
            char* stop = nullptr;
            const long v = std::strtol(item.c_str(), &stop, 10);
            if (item.empty() || *stop != '\0' || v < 1 || v > 1024)
                throw std::invalid_argument(key + list + ": '" + item +
                                            "' is not a thread count (want e.g. 1,2)");
            counts.push_back(static_cast<int>(v));
            pos = end + 1;
        }
    }
    argc = kept;
    return counts.empty() ? fallback : counts;
}

/// take_thread_counts with the default 1,2; a bad list is reported, naming `program`, and
/// the program exits with status 2.
inline std::vector<int> thread_counts_or_exit(int& argc, char** argv, const char* program,
                                              const std::string& flag) {
    try {
        return take_thread_counts(argc, argv, flag, {1, 2});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        std::exit(2);
    }
}

inline double status_mib(const char* field) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kib = 0;
    const std::size_t len = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, field, len) == 0) kib = std::atof(line + len);
    std::fclose(f);
    return kib / 1024.0;
}

/// Measures the peak resident memory of one case: construct it when the case begins (after
/// giving back cached memory), read mib() when it ends.
class PeakRss {
  public:
    PeakRss() {
        malloc_trim(0);
        std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
        ok_ = f && std::fputs("5", f) >= 0;
        if (f) ok_ = (std::fclose(f) == 0) && ok_;
        start_ = status_mib("VmRSS:");
    }
    [[nodiscard]] double mib() const {
        if (!ok_) return 0;
        const double peak = status_mib("VmHWM:") - start_;
        return peak > 0 ? peak : 0;
    }

  private:
    bool ok_ = false;
    double start_ = 0;
};

}  // namespace l2rw_bench
