// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11). Every draw is a pure
// function of (key, counter): streams are keyed by (seed, purpose) and indexed by counters
// such as (round, client, step, position), so results never depend on thread or rank layout.
// There is deliberately no stateful global generator anywhere in pfcr.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace pfcr {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// One Philox4x32-10 block: 128 random bits for one (counter, key).
inline PhiloxCounter philox4x32(PhiloxCounter ctr, PhiloxKey key) {
    constexpr uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    constexpr uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(m0) * ctr[0];
        const uint64_t p1 = uint64_t(m1) * ctr[2];
        ctr = {uint32_t(p1 >> 32) ^ ctr[1] ^ key[0], uint32_t(p1),
               uint32_t(p0 >> 32) ^ ctr[3] ^ key[1], uint32_t(p0)};
        key[0] += w0;
        key[1] += w1;
    }
    return ctr;
}

namespace detail {
// The 64-bit-lane vector operations KeyedRng::blocks needs, for the widest vectors the target
// has: 8 lanes (AVX-512) or 4 (AVX2, e.g. AMD Zen 2/3). Absent otherwise (scalar blocks).
#if defined(__AVX512F__)
struct PhiloxLanes {
    using V = __m512i;
    static constexpr int n = 8;
    static V set1(uint64_t x) { return _mm512_set1_epi64(int64_t(x)); }
    static V load(const uint64_t* p) { return _mm512_load_si512(p); }
    static void store(uint64_t* p, V v) { _mm512_store_si512(p, v); }
    // Zero-masked forms with every lane on (the same instructions): GCC 12 warns of the plain
    // intrinsics' undefined pass-through operand once they are inlined on arrays of vectors.
    static V mul_lo32(V x, V y) { return _mm512_maskz_mul_epu32(0xFF, x, y); } // low32 x low32
    static V hi32(V x) { return _mm512_maskz_srli_epi64(0xFF, x, 32); }
    static V bxor(V x, V y) { return _mm512_xor_si512(x, y); }
};
#elif defined(__AVX2__)
struct PhiloxLanes {
    using V = __m256i;
    static constexpr int n = 4;
    static V set1(uint64_t x) { return _mm256_set1_epi64x(int64_t(x)); }
    static V load(const uint64_t* p) { return _mm256_load_si256(reinterpret_cast<const V*>(p)); }
    static void store(uint64_t* p, V v) { _mm256_store_si256(reinterpret_cast<V*>(p), v); }
    static V mul_lo32(V x, V y) { return _mm256_mul_epu32(x, y); }
    static V hi32(V x) { return _mm256_srli_epi64(x, 32); }
    static V bxor(V x, V y) { return _mm256_xor_si256(x, y); }
};
#endif
} // namespace detail

// Named purposes keep streams of different uses independent even with equal counters.
enum class RngPurpose : uint32_t {
    featurizer_projection = 1,
    synth = 2,
    quantizer = 3,
    init = 4,
    shuffle = 5,
    dropout = 6,
    sampling = 7,
    privacy = 8,
    system = 9, // device profiles and availability (federation/system.hpp)
};

// splitmix64 finaliser: mixes a 64-bit value into a well-spread 64-bit value.
inline uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A keyed stream: key = (seed, purpose), counter = (a, b, c, index). Draw i of stream
// (a, b, c) is block(a, b, c, i / 4)[i % 4] — callers address draws explicitly.
class KeyedRng {
public:
    KeyedRng(uint64_t seed, RngPurpose purpose) {
        const uint64_t k = mix64(seed ^ (uint64_t(purpose) << 56) ^ mix64(uint64_t(purpose)));
        key_ = {uint32_t(k), uint32_t(k >> 32)};
    }

    PhiloxCounter block(uint32_t a, uint32_t b, uint32_t c, uint32_t d) const {
        return philox4x32({d, c, b, a}, key_);
    }
    // n consecutive blocks d0, d0+1, ... of stream (a, b, c): out[4i + w] = block(a, b, c,
    // d0 + i)[w] (4n words; d0 + i wraps at 2^32 like the uint32 counter). The same
    // philox4x32, in groups of 8 blocks in AVX-512 lanes or 4 in AVX2 lanes where the target has
    // them, four groups interleaved (groups() below; dropout draws millions of words a step and
    // compilers do not vectorise the scalar form), else block by block. tests/core/test_rng.cpp
    // checks the vector path against block(): the AVX-512 one in test_core, AVX2 in
    // test_rng_avx2.
    void blocks(uint32_t a, uint32_t b, uint32_t c, uint32_t d0, int64_t n, uint32_t* out) const {
        int64_t i0 = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
        using L = detail::PhiloxLanes;
        constexpr int64_t kSet = 4 * L::n; // blocks of one interleaved set of groups
        for (; i0 + kSet <= n; i0 += kSet) groups<4>(a, b, c, d0 + uint32_t(i0), out + 4 * i0);
        if (i0 < n) { // the last partial set: whole groups into a buffer, then the words needed
            alignas(64) uint32_t tmp[4 * kSet];
            const int64_t rest = n - i0;
            if (rest > 2 * L::n)
                groups<4>(a, b, c, d0 + uint32_t(i0), tmp);
            else if (rest > L::n)
                groups<2>(a, b, c, d0 + uint32_t(i0), tmp);
            else
                groups<1>(a, b, c, d0 + uint32_t(i0), tmp);
            for (int64_t w = 0; w < 4 * rest; ++w) out[4 * i0 + w] = tmp[w];
            i0 = n;
        }
#endif
        for (; i0 < n; ++i0) {
            const PhiloxCounter r = block(a, b, c, d0 + uint32_t(i0));
            for (int k = 0; k < 4; ++k) out[4 * i0 + k] = r[size_t(k)];
        }
    }

    // A sequential cursor over one stream (a, b, c); cheap to create, holds no shared state.
    class Stream {
    public:
        Stream(PhiloxKey key, uint32_t a, uint32_t b, uint32_t c)
            : key_(key), a_(a), b_(b), c_(c) {}
        uint32_t next_u32() {
            if (used_ == 4) {
                buf_ = philox4x32({block_++, c_, b_, a_}, key_);
                used_ = 0;
            }
            return buf_[used_++];
        }
        uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }
        // Uniform in [0, 1) with 53 random bits.
        double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
        // Uniform integer in [0, n), n > 0, by rejection (no modulo bias).
        uint64_t below(uint64_t n) {
            const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
            uint64_t x;
            do {
                x = next_u64();
            } while (x >= limit);
            return x % n;
        }
        // Standard normal by Box–Muller (both outputs used in turn).
        double normal() {
            if (has_spare_) {
                has_spare_ = false;
                return spare_;
            }
            double u1;
            do {
                u1 = uniform();
            } while (u1 <= 0.0);
            const double u2 = uniform();
            const double r = std::sqrt(-2.0 * std::log(u1));
            constexpr double two_pi = 6.283185307179586476925286766559;
            spare_ = r * std::sin(two_pi * u2);
            has_spare_ = true;
            return r * std::cos(two_pi * u2);
        }

    private:
        PhiloxKey key_; // a copy: a Stream may outlive the KeyedRng it came from
        uint32_t a_, b_, c_;
        uint32_t block_ = 0;
        PhiloxCounter buf_{};
        int used_ = 4;
        double spare_ = 0.0;
        bool has_spare_ = false;
    };

    Stream stream(uint32_t a, uint32_t b = 0, uint32_t c = 0) const {
        return {key_, a, b, c};
    }

private:
#if defined(__AVX512F__) || defined(__AVX2__)
    // G groups of L::n consecutive blocks from block d, 4 G L::n words to out. Each group's ten
    // rounds are one dependency chain (multiply, shift, two XORs: ~6 cycles a round) of ~1 vector
    // operation per block per round, so one group at a time leaves the vector units mostly idle;
    // G independent groups interleaved keep them busy (the same operations, so the same words).
    template <int G>
    void groups(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t* out) const {
        // Each 64-bit lane holds one 32-bit word of one block in its low half. mul_lo32 reads
        // only the low halves, so the garbage the XORs leave in the high halves never reaches a
        // result; the product's high word is a clean shift.
        using L = detail::PhiloxLanes;
        using V = typename L::V;
        const V m0 = L::set1(0xD2511F53), m1 = L::set1(0xCD9E8D57);
        V x0[G], x1[G], x2[G], x3[G];
        for (int g = 0; g < G; ++g) {
            alignas(64) uint64_t w[L::n];
            for (int l = 0; l < L::n; ++l) w[l] = uint32_t(d + uint32_t(g * L::n + l));
            x0[g] = L::load(w);
            x1[g] = L::set1(c);
            x2[g] = L::set1(b);
            x3[g] = L::set1(a);
        }
        uint32_t k0 = key_[0], k1 = key_[1];
        for (int round = 0; round < 10; ++round) {
            const V key0 = L::set1(k0), key1 = L::set1(k1);
            for (int g = 0; g < G; ++g) {
                const V p0 = L::mul_lo32(x0[g], m0), p1 = L::mul_lo32(x2[g], m1);
                x0[g] = L::bxor(L::bxor(L::hi32(p1), x1[g]), key0);
                x2[g] = L::bxor(L::bxor(L::hi32(p0), x3[g]), key1);
                x1[g] = p1;
                x3[g] = p0;
            }
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int g = 0; g < G; ++g) {
            uint32_t* o = out + 4 * g * L::n;
#if defined(__AVX512F__)
            // Word k of block l goes to o[4 l + k]. Word k of block l is 32-bit lane 2 l of x_k:
            // pair x0 with x1 and x2 with x3 lane by lane (t01 = x0.l0 x1.l0 x0.l1 x1.l1 ...),
            // then take two lanes of each pair in turn.
            const __m512i pair =
                _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
            const __m512i t01 = _mm512_permutex2var_epi32(x0[g], pair, x1[g]);
            const __m512i t23 = _mm512_permutex2var_epi32(x2[g], pair, x3[g]);
            const __m512i lo =
                _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
            const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
            _mm512_storeu_si512(o, _mm512_permutex2var_epi32(t01, lo, t23));
            _mm512_storeu_si512(o + 16, _mm512_permutex2var_epi32(t01, hi, t23));
#else
            alignas(64) uint64_t w[4][L::n];
            L::store(w[0], x0[g]);
            L::store(w[1], x1[g]);
            L::store(w[2], x2[g]);
            L::store(w[3], x3[g]);
            for (int l = 0; l < L::n; ++l)
                for (int k = 0; k < 4; ++k) o[4 * l + k] = uint32_t(w[k][l]);
#endif
        }
    }
#endif

    PhiloxKey key_{};
};

} // namespace pfcr
