// l2rw/backend/host_pool.hpp — host memory for the Cpu backend: uninitialised, 64-byte
// aligned, and with large blocks cached for reuse.
//
// Every training step allocates and frees the same large buffers (im2col matrices, layer
// activations). glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh
// pages that the kernel must zero on first touch, which cost more than the convolutions
// themselves in a ResNet step (and glibc trims its heap top, so that even blocks below
// that threshold come back as fresh pages). The pool keeps freed blocks of 64 KiB and more in size
// classes (four per doubling: a request is rounded up by at most 25%), and hands a cached
// block of the request's class back, so that the same step with slightly different sizes
// (another batch size, the last partial batch) still reuses its blocks and a steady-state
// step takes nothing from the OS. Cached bytes are bounded (HostPool::set_limit, 2 GiB by
// default); `HostPool::instance().release()` frees them.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#include "../error.hpp"

namespace l2rw {

class HostPool {
  public:
    static HostPool& instance() {
        static HostPool* pool = new HostPool();  // never destroyed: buffers may outlive statics
        return *pool;
    }

    void* allocate(std::size_t bytes) {
        if (bytes == 0) bytes = 1;
        bytes = round(bytes);
        if (bytes >= min_cached) {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = free_.find(bytes);
            if (it != free_.end()) {
                void* p = it->second;
                free_.erase(it);
                cached_ -= bytes;
                return p;
            }
        }
        void* p = std::aligned_alloc(alignment, bytes);
        if (!p) {
            release();  // give back what is cached, then try once more
            p = std::aligned_alloc(alignment, bytes);
            if (!p) throw std::bad_alloc();
        }
        return p;
    }

    void deallocate(void* p, std::size_t bytes) {
        if (!p) return;
        if (bytes == 0) bytes = 1;
        bytes = round(bytes);
        if (bytes >= min_cached) {
            std::lock_guard<std::mutex> lock(mu_);
            if (cached_ + bytes <= limit_) {
                free_.emplace(bytes, p);
                cached_ += bytes;
                return;
            }
        }
        std::free(p);
    }

    /// Frees every cached block.
    void release() {
        std::lock_guard<std::mutex> lock(mu_);
        free_all();
    }
    /// Bounds the bytes kept for reuse (0 turns caching off). The new limit and the blocks it
    /// drops change under one hold of the lock, so no other thread sees more cached than the
    /// limit it reads.
    void set_limit(std::size_t bytes) {
        std::lock_guard<std::mutex> lock(mu_);
        limit_ = bytes;
        if (cached_ > limit_) free_all();
    }
    [[nodiscard]] std::size_t cached_bytes() const {
        std::lock_guard<std::mutex> lock(mu_);
        return cached_;
    }

    static constexpr std::size_t alignment = 64;
    static constexpr std::size_t min_cached = std::size_t(1) << 16;

  private:
    HostPool() = default;

  public:
    /// The bytes actually allocated for a request of `b`: small blocks rounded to the
    /// alignment, cached ones up to their size class (a quarter of the request's power of 2).
    /// A request too large to round up (within a class of SIZE_MAX) is a ValueError, not a
    /// wrapped-around small block.
    static std::size_t round(std::size_t b) {
        if (b < min_cached) return (b + alignment - 1) / alignment * alignment;
        std::size_t p = min_cached;
        while (p <= b / 2) p *= 2;  // largest power of 2 <= b
        const std::size_t q = p / 4;
        return checked_add<ValueError>(b, q - 1, "HostPool::round: bytes + class rounding") / q * q;
    }

  private:
    void free_all() {  // mu_ held
        for (auto& [n, p] : free_) std::free(p);
        free_.clear();
        cached_ = 0;
    }

    // Shared between threads, read and written only with mu_ held.
    mutable std::mutex mu_;
    std::multimap<std::size_t, void*> free_;
    std::size_t cached_ = 0;
    std::size_t limit_ = std::size_t(2) << 30;
};

/// A fixed-size, uninitialised array from a pool: Pool::instance() has allocate(bytes) and
/// deallocate(p, bytes). HostBuffer (the HostPool) is the Cpu backend's and the Thrust host
/// systems'; Thrust<CUDA> puts the device pool (cuda.hpp) under the same class.
template <class T, class Pool>
class PoolBuffer {
  public:
    PoolBuffer() = default;
    /// n elements; a byte count that overflows std::size_t is a ValueError.
    explicit PoolBuffer(std::size_t n)
        : data_(n ? static_cast<T*>(Pool::instance().allocate(
                        checked_mul<ValueError>(n, sizeof(T), "PoolBuffer: elements * bytes")))
                  : nullptr),
          size_(n) {}
    ~PoolBuffer() { reset(); }
    PoolBuffer(const PoolBuffer&) = delete;
    PoolBuffer& operator=(const PoolBuffer&) = delete;
    PoolBuffer(PoolBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
        o.data_ = nullptr;
        o.size_ = 0;
    }
    PoolBuffer& operator=(PoolBuffer&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = o.data_;
            size_ = o.size_;
            o.data_ = nullptr;
            o.size_ = 0;
        }
        return *this;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    [[nodiscard]] std::size_t size() const { return size_; }
    T* begin() { return data_; }
    T* end() { return data_ + size_; }
    const T* begin() const { return data_; }
    const T* end() const { return data_ + size_; }

  private:
    void reset() {
        if (data_) Pool::instance().deallocate(data_, size_ * sizeof(T));
        data_ = nullptr;
        size_ = 0;
    }
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Uninitialised, 64-byte aligned host memory from the HostPool.
template <class T>
using HostBuffer = PoolBuffer<T, HostPool>;

}  // namespace l2rw
