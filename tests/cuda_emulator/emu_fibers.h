// The emulator's thread scheduler: every CUDA thread of a block is a fiber (emu_context.h),
// run cooperatively on the one OS thread that launched the kernel. Blocks run one after
// another; a block's fibers run round-robin until each waits at a barrier or returns.
//
//  * block barrier (__syncthreads): released when every live (not yet returned) fiber
//    of the block waits at it, all at the same call site (PTX bar.sync waits for the
//    non-exited threads of the block); waiters at different sites are reported;
//  * warp barrier (shuffles, __syncwarp, mma): released when every lane named in the
//    mask waits at one with the same mask; a named lane that returned or does not
//    exist is reported.
//
// When every live fiber waits and nothing can be released (a __syncthreads or a warp
// collective in divergent code), the launch fails with a message saying who waits where,
// instead of hanging. Errors end the launch: its fibers are abandoned (they own nothing
// but their stacks, which the next launch reuses) and the message reaches Python.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "emu_context.h"

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

// The built-in variables; the scheduler sets threadIdx before it resumes a fiber.
uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace emu {

constexpr size_t STACK_BYTES = 64 * 1024;    // per fiber
constexpr int MAX_THREADS = 1024;
constexpr int SLOT_BYTES = 32;               // a lane's deposit in a warp collective

enum State { FRESH, READY, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
    Context ctx;
    uint3 idx;
    State state;
    const char* file;                        // the __syncthreads it waits at
    int line;
    unsigned int mask;                       // the warp collective's mask it waits with
    int parity;                              // the exchange buffer it deposited into
};

struct Warp {
    int parity;                              // flips each time a collective releases
    alignas(16) unsigned char slot[2][32][SLOT_BYTES];
};

struct Scheduler {
    char* stacks = nullptr;                  // MAX_THREADS stacks, mapped once
    Fiber fibers[MAX_THREADS];
    Warp warps[MAX_THREADS / 32];
    Context home;                            // the launching thread's context
    Fiber* current = nullptr;
    int nthreads = 0;
    int most_threads = 0;                    // the largest block so far: stacks in use
    void (*body)(void*) = nullptr;
    void* arg = nullptr;
    char error[600];                         // empty, or why the launch failed
};

inline Scheduler& sched()
{
    static Scheduler s;
    return s;
}

// Escapes the built-ins' addresses, so the compiler reloads them after every switch.
void* volatile builtin_addresses[4] = {&threadIdx, &blockIdx, &blockDim, &gridDim};

inline bool map_stacks(Scheduler& s)
{
    void* m = mmap(nullptr, STACK_BYTES * MAX_THREADS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    s.stacks = static_cast<char*>(m);
    return context_support();
}

// The stacks start as zero pages: a fiber that wrote into the lowest REDZONE bytes of its
// stack has overflowed it (into its neighbour's).
constexpr size_t REDZONE = 256;

inline bool overflowed(int i)
{
    const char* lo = sched().stacks + (size_t)i * STACK_BYTES;
    for (size_t k = 0; k < REDZONE; ++k)
        if (lo[k]) return true;
    return false;
}

// Bytes of fiber stack ever used by any launch in this library (the deepest fiber): the
// stacks start as zero pages, so the lowest non-zero byte marks the deepest use.
inline size_t stack_peak()
{
    Scheduler& s = sched();
    size_t peak = 0;
    for (int i = 0; s.stacks && i < s.most_threads; ++i) {
        const uint64_t* lo = reinterpret_cast<const uint64_t*>(s.stacks + (size_t)i * STACK_BYTES);
        size_t word = 0;
        while (word < STACK_BYTES / 8 && lo[word] == 0) ++word;
        if (STACK_BYTES - 8 * word > peak) peak = STACK_BYTES - 8 * word;
    }
    return peak;
}

// -- inside a fiber -------------------------------------------------------------------------

inline void yield_to_scheduler()
{
    Scheduler& s = sched();
    context_switch(s.current->ctx, s.home);
    asm volatile("" ::: "memory");           // shared memory and built-ins changed meanwhile
}

[[noreturn]] inline void fail(const char* message)
{
    Scheduler& s = sched();
    if (!s.error[0]) snprintf(s.error, sizeof s.error, "%s", message);
    s.current->state = DONE;
    context_switch(s.current->ctx, s.home);  // never resumed
    abort();
}

inline void fiber_main()
{
    Scheduler& s = sched();
    s.body(s.arg);
    s.current->state = DONE;
    context_switch(s.current->ctx, s.home);  // never resumed
    abort();
}

inline void sync_block(const char* file, int line)
{
    Fiber* f = sched().current;
    f->state = AT_BLOCK;
    f->file = file;
    f->line = line;
    yield_to_scheduler();
}

inline int linear_tid()
{
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

// The calling lane's slot in the exchange buffer of its warp for the next collective.
inline unsigned char* deposit_slot()
{
    Scheduler& s = sched();
    const int tid = linear_tid();
    Warp& w = s.warps[tid >> 5];
    s.current->parity = w.parity;
    return w.slot[w.parity][tid & 31];
}

// Waits until every lane of ``mask`` has reached a warp collective with that mask.
inline void sync_warp(unsigned int mask)
{
    Scheduler& s = sched();
    const int lane = linear_tid() & 31;
    if (!(mask >> lane & 1u)) {
        char m[160];
        snprintf(m, sizeof m, "warp collective with mask 0x%08x called by lane %d, which the "
                 "mask does not name", mask, lane);
        fail(m);
    }
    s.current->mask = mask;
    s.current->state = AT_WARP;
    yield_to_scheduler();
}

// Lane ``src``'s deposit in the collective this lane took part in last.
inline const unsigned char* read_slot(int src)
{
    Scheduler& s = sched();
    const int tid = linear_tid();
    return s.warps[tid >> 5].slot[s.current->parity][src];
}

// -- the scheduler ----------------------------------------------------------------------------

// Where fiber f waits, into buf.
inline void where(const Fiber& f, char (&buf)[200])
{
    const uint3 t = f.idx;
    if (f.state == AT_BLOCK)
        snprintf(buf, sizeof buf, "thread (%u,%u,%u) at __syncthreads %s:%d", t.x, t.y, t.z,
                 f.file, f.line);
    else
        snprintf(buf, sizeof buf, "thread (%u,%u,%u) in a warp collective (mask 0x%08x)",
                 t.x, t.y, t.z, f.mask);
}

// Releases the warp collectives that every lane of their mask has reached; false when
// none could be released. Sets s.error for a mask naming a lane that returned or does
// not exist.
inline bool release_warps(Scheduler& s)
{
    bool any = false;
    const int n = s.nthreads;
    for (int w0 = 0; w0 < n; w0 += 32) {
        bool released = false;
        for (int l = w0; l < n && l < w0 + 32; ++l) {
            const Fiber& f = s.fibers[l];
            if (f.state != AT_WARP) continue;
            const unsigned int mask = f.mask;
            bool ready = true;
            for (int k = 0; k < 32 && ready; ++k) {
                if (!(mask >> k & 1u)) continue;
                if (w0 + k >= n || s.fibers[w0 + k].state == DONE) {
                    snprintf(s.error, sizeof s.error, "block (%u,%u,%u), warp %d: a warp "
                             "collective with mask 0x%08x names lane %d, which %s", blockIdx.x,
                             blockIdx.y, blockIdx.z, w0 / 32, mask, k,
                             w0 + k >= n ? "does not exist (blockDim is not a multiple of 32)"
                                         : "has returned");
                    return false;
                }
                const Fiber& o = s.fibers[w0 + k];
                ready = o.state == AT_WARP && o.mask == mask;
            }
            if (!ready) continue;
            for (int k = 0; k < 32; ++k)
                if (mask >> k & 1u) s.fibers[w0 + k].state = READY;
            released = true;
        }
        // Later deposits go to the other buffer, so none overwrites one not yet read: a
        // released lane reads right after it resumes, and every released fiber resumes
        // before the scheduler releases anything again.
        if (released) {
            s.warps[w0 / 32].parity ^= 1;
            any = true;
        }
    }
    return any;
}

// Releases the block barrier when every live fiber waits at it; otherwise false with
// s.error saying who waits where (different call sites, or a block that is stuck).
inline bool release_block(Scheduler& s)
{
    const Fiber* first = nullptr;
    const Fiber* other = nullptr;
    for (int i = 0; i < s.nthreads; ++i) {
        const Fiber& f = s.fibers[i];
        if (f.state == DONE) continue;
        if (!first) first = &f;
        else if (f.state != first->state || (f.state == AT_BLOCK &&
                 (f.line != first->line || strcmp(f.file, first->file) != 0))) {
            other = &f;
            break;
        }
    }
    if (first && !other && first->state == AT_BLOCK) {
        for (int i = 0; i < s.nthreads; ++i)
            if (s.fibers[i].state == AT_BLOCK) s.fibers[i].state = READY;
        return true;
    }
    if (!first) return false;                // cannot happen: the caller checks for live fibers
    char one[200], two[200] = "and no other thread can release it";
    where(*first, one);
    if (other) where(*other, two);
    snprintf(s.error, sizeof s.error, "block (%u,%u,%u) is stuck: %s, %s (a __syncthreads or a "
             "warp collective in divergent code)", blockIdx.x, blockIdx.y, blockIdx.z, one, two);
    return false;
}

// Runs one block to completion; false with s.error set on failure.
inline bool run_block(Scheduler& s)
{
    const int n = s.nthreads;
    for (int i = 0; i < n; ++i) s.fibers[i].state = FRESH;
    for (int w = 0; w < (n + 31) / 32; ++w) s.warps[w].parity = 0;
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; ++i) {
            Fiber& f = s.fibers[i];
            if (f.state == FRESH) {
                context_start(f.ctx, s.stacks + (size_t)i * STACK_BYTES, STACK_BYTES, fiber_main);
                f.state = READY;
            }
            if (f.state == READY) {
                s.current = &f;
                threadIdx = f.idx;
                context_switch(s.home, f.ctx);
                if (s.error[0]) return false;
            }
            done += f.state == DONE;
        }
        if (done == n) return true;
        if (release_warps(s)) continue;
        if (s.error[0] || !release_block(s)) return false;
    }
}

// Runs body(arg) as the kernel of a grid x block launch; 0, or -1 with s.error set. One
// launch at a time: the caller serialises them.
inline int launch(dim3 grid, dim3 block, void (*body)(void*), void* arg)
{
    Scheduler& s = sched();
    s.error[0] = 0;
    const unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (nt > MAX_THREADS || block.z > 64) {
        snprintf(s.error, sizeof s.error, "block of %u x %u x %u threads: CUDA allows at most "
                 "1024 (and z <= 64)", block.x, block.y, block.z);
        return -1;
    }
    if (grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) {
        snprintf(s.error, sizeof s.error, "grid (%u, %u, %u) exceeds CUDA's limits (2^31-1, "
                 "65535, 65535)", grid.x, grid.y, grid.z);
        return -1;
    }
    if (nt == 0 || (unsigned long long)grid.x * grid.y * grid.z == 0) {
        snprintf(s.error, sizeof s.error, "empty launch (a zero grid or block dimension): "
                 "CUDA rejects it");
        return -1;
    }
    if (!s.stacks && !map_stacks(s)) {
        snprintf(s.error, sizeof s.error, "could not map the fiber stacks");
        return -1;
    }
    s.nthreads = (int)nt;
    if (s.nthreads > s.most_threads) s.most_threads = s.nthreads;
    s.body = body;
    s.arg = arg;
    gridDim = grid;
    blockDim = block;
    for (int i = 0; i < s.nthreads; ++i)
        s.fibers[i].idx = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    for (unsigned int z = 0; z < grid.z; ++z)
        for (unsigned int y = 0; y < grid.y; ++y)
            for (unsigned int x = 0; x < grid.x; ++x) {
                blockIdx = uint3{x, y, z};
                if (!run_block(s)) return -1;
            }
    for (int i = 0; i < s.nthreads; ++i)
        if (overflowed(i)) {
            snprintf(s.error, sizeof s.error, "a kernel thread overflowed its %zu KiB fiber "
                     "stack (large local arrays?): raise emu::STACK_BYTES", STACK_BYTES / 1024);
            return -1;
        }
    return 0;
}

}  // namespace emu
