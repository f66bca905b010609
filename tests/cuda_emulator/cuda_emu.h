// CUDA C on the CPU, for tests: included before a kernel file's source (prelude +
// common.cuh + file, as loader.kernel_source assembles it) so that g++ -std=c++17 compiles
// it unchanged. Threads are fibers of emu_fibers.h; this header gives the kernels the
// qualifiers, built-ins, warp intrinsics, atomics, math and tensor-core products they use.
//
// Not emulated: dynamic shared memory (extern __shared__), inline PTX other than the two
// mma helpers below, texture/surface memory, cooperative groups, streams.
#pragma once
#define CUDA_EMULATOR 1

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>
#include <utility>

#include "emu_fibers.h"

// -- qualifiers ------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A function's static local is one variable for every fiber of the block (blocks run one
// after another, and CUDA shared memory starts uninitialised anyway).
#define __shared__ static
#define __constant__ static

constexpr int warpSize = 32;

// -- vector types ------------------------------------------------------------------------------
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(16) double2 { double x, y; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w)
{
    return {x, y, z, w};
}

// -- synchronisation ---------------------------------------------------------------------------
#define __syncthreads() emu::sync_block(__FILE__, __LINE__)
inline void __syncwarp(unsigned int mask = 0xffffffffu) { emu::sync_warp(mask); }
inline void __threadfence() { asm volatile("" ::: "memory"); }
inline void __threadfence_block() { asm volatile("" ::: "memory"); }

// -- warp shuffles: every lane deposits its value, warp barrier, each reads its source.
// The design's second barrier (before anyone deposits again) is not needed: deposits
// alternate between two buffers per warp (emu_fibers.h), and a lane reads its source as
// soon as it resumes, before the warp's next collective can release.
namespace emu {
template <class V>
inline V shuffle(unsigned int mask, V v, int src)
{
    static_assert(sizeof(V) <= SLOT_BYTES && std::is_trivially_copyable<V>::value,
                  "shuffles move values of at most 32 bytes");
    memcpy(deposit_slot(), &v, sizeof(V));
    sync_warp(mask);
    if (!(mask >> src & 1u)) {
        char m[120];
        snprintf(m, sizeof m, "shuffle reads lane %d, which its mask 0x%08x does not name", src,
                 mask);
        fail(m);
    }
    V out;
    memcpy(&out, read_slot(src), sizeof(V));
    return out;
}

inline int lane_id() { return linear_tid() & 31; }
}  // namespace emu

template <class V>
inline V __shfl_sync(unsigned int mask, V v, int src, int width = 32)
{
    const int lane = emu::lane_id();
    return emu::shuffle(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}

template <class V>
inline V __shfl_down_sync(unsigned int mask, V v, unsigned int delta, int width = 32)
{
    const int lane = emu::lane_id();
    const int src = (lane & (width - 1)) + (int)delta < width ? lane + (int)delta : lane;
    return emu::shuffle(mask, v, src);
}

template <class V>
inline V __shfl_up_sync(unsigned int mask, V v, unsigned int delta, int width = 32)
{
    const int lane = emu::lane_id();
    const int src = (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane;
    return emu::shuffle(mask, v, src);
}

template <class V>
inline V __shfl_xor_sync(unsigned int mask, V v, int lane_mask, int width = 32)
{
    const int lane = emu::lane_id();
    const int src = lane ^ lane_mask;
    return emu::shuffle(mask, v, src < ((lane / width) + 1) * width ? src : lane);
}

// -- atomics: plain read-modify-write (one OS thread runs every fiber) --------------------------
template <class V>
inline V atomicAdd(V* p, V v) { const V old = *p; *p = old + v; return old; }
template <class V>
inline V atomicSub(V* p, V v) { const V old = *p; *p = old - v; return old; }
template <class V>
inline V atomicExch(V* p, V v) { const V old = *p; *p = v; return old; }
template <class V>
inline V atomicMax(V* p, V v) { const V old = *p; *p = old < v ? v : old; return old; }
template <class V>
inline V atomicMin(V* p, V v) { const V old = *p; *p = v < old ? v : old; return old; }
template <class V>
inline V atomicCAS(V* p, V compare, V v)
{
    const V old = *p;
    if (old == compare) *p = v;
    return old;
}

// -- bits and loads ------------------------------------------------------------------------
template <class To, class From>
inline To emu_bits(From v)
{
    static_assert(sizeof(To) == sizeof(From), "a bit cast keeps the size");
    To t;
    memcpy(&t, &v, sizeof t);
    return t;
}
inline unsigned int __float_as_uint(float v) { return emu_bits<unsigned int>(v); }
inline int __float_as_int(float v) { return emu_bits<int>(v); }
inline float __uint_as_float(unsigned int v) { return emu_bits<float>(v); }
inline float __int_as_float(int v) { return emu_bits<float>(v); }
inline long long __double_as_longlong(double v) { return emu_bits<long long>(v); }
inline double __longlong_as_double(long long v) { return emu_bits<double>(v); }
template <class V>
inline V __ldg(const V* p) { return *p; }
inline int __popc(unsigned int v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v ? __builtin_clz((unsigned int)v) : 32; }
inline int __ffs(int v) { return __builtin_ffs(v); }

// -- math: the CUDA names g++'s <math.h> lacks; min/max as CUDA's overloads ------------------
inline float rsqrtf(float v) { return 1.0f / sqrtf(v); }
inline float rsqrt(float v) { return 1.0f / sqrtf(v); }
inline double rsqrt(double v) { return 1.0 / sqrt(v); }
inline float __expf(float v) { return expf(v); }
inline float __logf(float v) { return logf(v); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float v) { return 1.0f / v; }
inline float __fsqrt_rn(float v) { return sqrtf(v); }
inline float __saturatef(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline int __float2int_rn(float v) { return (int)nearbyintf(v); }
inline int __float2int_rz(float v) { return (int)v; }

// Floating min/max ignore a NaN operand (fminf/fmaxf), as CUDA's do; integers compare in
// their common type, as CUDA's mixed overloads do.
template <class A, class B>
inline auto max(A a, B b)
{
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return (C)fmax((C)a, (C)b);
    else return (C)a < (C)b ? (C)b : (C)a;
}
template <class A, class B>
inline auto min(A a, B b)
{
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return (C)fmin((C)a, (C)b);
    else return (C)b < (C)a ? (C)b : (C)a;
}

// -- tensor cores: the two warp-level products common.cuh writes with mma.sync -----------------
// D = A B + D with A row-major 16 x K, B column-major K x 8, lane l holding the fragments
// of the PTX ISA layout (g = l >> 2, t = l & 3): every lane deposits its fragments, warp
// barrier, each lane copies the whole warp's fragments and computes its own four D
// elements (d[i] = D(g + 8 (i >> 1), 2t + (i & 1))). Products are exact in float (tf32 and
// bf16 significands are short); they are added to D in float in k order, an approximation
// of the hardware's summation order. Layouts checked against PTX ISA 9.7.14.5.7-8.
namespace emu {
struct MmaFragments { unsigned int a[4], b[2]; };

template <class ElementA, class ElementB>
inline void warp_mma(float (&d)[4], const unsigned int (&a)[4], const unsigned int (&b)[2],
                     int K, ElementA A, ElementB B)
{
    MmaFragments mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
    memcpy(deposit_slot(), &mine, sizeof mine);
    sync_warp(0xffffffffu);
    MmaFragments all[32];
    for (int l = 0; l < 32; ++l) memcpy(&all[l], read_slot(l), sizeof(MmaFragments));
    const int lane = lane_id(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        float acc = d[i];
        for (int k = 0; k < K; ++k) acc += A(all, row, k) * B(all, k, col);
        d[i] = acc;
    }
}

inline float tf32(unsigned int bits) { return __uint_as_float(bits & 0xffffe000u); }
inline float bf16(unsigned int reg, int high)
{
    return __uint_as_float((high ? reg >> 16 : reg & 0xffffu) << 16);
}
}  // namespace emu

// tf32 m16n8k8: a = A(g,t), A(g+8,t), A(g,t+4), A(g+8,t+4); b = B(t,g), B(t+4,g).
__device__ inline void mma_tf32_m16n8k8(float (&d)[4], const unsigned int (&a)[4],
                                        const unsigned int (&b)[2])
{
    emu::warp_mma(d, a, b, 8,
        [](const emu::MmaFragments* f, int r, int k) {
            return emu::tf32(f[(r & 7) * 4 + (k & 3)].a[(r >> 3) + 2 * (k >> 2)]);
        },
        [](const emu::MmaFragments* f, int k, int c) {
            return emu::tf32(f[c * 4 + (k & 3)].b[k >> 2]);
        });
}

// bf16 m16n8k16, two elements a register (the smaller column of A / row of B in the low
// half): a = A(g, 2t..2t+1), A(g+8, 2t..), A(g, 2t+8..), A(g+8, 2t+8..);
// b = B(2t..2t+1, g), B(2t+8..2t+9, g).
__device__ inline void mma_bf16_m16n8k16(float (&d)[4], const unsigned int (&a)[4],
                                         const unsigned int (&b)[2])
{
    emu::warp_mma(d, a, b, 16,
        [](const emu::MmaFragments* f, int r, int k) {
            return emu::bf16(f[(r & 7) * 4 + ((k & 7) >> 1)].a[(r >> 3) + 2 * (k >> 3)], k & 1);
        },
        [](const emu::MmaFragments* f, int k, int c) {
            return emu::bf16(f[c * 4 + ((k & 7) >> 1)].b[k >> 3], k & 1);
        });
}

// -- entry points for Python (ctypes): EMU_EXPORT(kernel) after the kernel source -----------
// emu_launch_<kernel>(grid[3], block[3], args) runs it with args[i] pointing at parameter
// i's value; emu_letters_<kernel>() gives its parameter types as PyCUDA's letters, read
// from the compiled signature (P pointer, i int, I unsigned int, q long long, f float,
// d double, ? anything else).
namespace emu {
template <class P>
constexpr char letter()
{
    if constexpr (std::is_pointer<P>::value) return 'P';
    else if constexpr (std::is_same<P, int>::value) return 'i';
    else if constexpr (std::is_same<P, unsigned int>::value) return 'I';
    else if constexpr (std::is_same<P, long long>::value) return 'q';
    else if constexpr (std::is_same<P, float>::value) return 'f';
    else if constexpr (std::is_same<P, double>::value) return 'd';
    else return '?';
}

template <class... Params>
const char* letters_of(void (*)(Params...))
{
    static const char text[] = {letter<Params>()..., '\0'};
    return text;
}

template <class... Params>
struct Bound {
    void (*kernel)(Params...);
    void** args;
};

template <class... Params, size_t... Is>
void call_with(void (*kernel)(Params...), void** args, std::index_sequence<Is...>)
{
    kernel(*static_cast<std::remove_cv_t<Params>*>(args[Is])...);
}

template <class... Params>
void run_bound(void* bound)
{
    auto* b = static_cast<Bound<Params...>*>(bound);
    call_with(b->kernel, b->args, std::index_sequence_for<Params...>{});
}

template <class... Params>
int launch_kernel(void (*kernel)(Params...), const unsigned int* grid,
                  const unsigned int* block, void** args)
{
    Bound<Params...> bound{kernel, args};
    return launch(dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]),
                  run_bound<Params...>, &bound);
}
}  // namespace emu

#define EMU_API extern "C" __attribute__((visibility("default")))
#define EMU_EXPORT(kernel)                                                                   \
    EMU_API int emu_launch_##kernel(const unsigned int* emu_grid,                            \
                                    const unsigned int* emu_block, void** emu_args)          \
    {                                                                                        \
        return emu::launch_kernel(kernel, emu_grid, emu_block, emu_args);                    \
    }                                                                                        \
    EMU_API const char* emu_letters_##kernel() { return emu::letters_of(kernel); }

EMU_API const char* emu_error() { return emu::sched().error; }
EMU_API unsigned long long emu_stack_peak() { return emu::stack_peak(); }
EMU_API unsigned long long emu_stack_bytes() { return emu::STACK_BYTES; }
