// pfcr's glibc heap policy: the mmap threshold every command sets at start (run_cli), and a
// scope that suspends it while a library allocates the same large scratch block over and over
// (faiss training). Process-wide settings (mallopt); not here: allocating anything.
#pragma once

#include <malloc.h>

namespace pfcr {

// Blocks of 8 MiB and more (a client's model, Adam moments, best state: allocated once per
// client, never per step) get their own mappings, returned to the system when freed. With
// glibc's default the threshold grows to the size of the largest block freed, so a rank that
// trains or streams hundreds of clients one after another kept their buffers in a fragmented
// heap: measured +2 GB RSS per rank while writing 64 fine-tuned clients at the paper config
// (docs/PERFORMANCE.md). An explicit threshold fixes it.
inline constexpr int kMmapThresholdBytes = 8 << 20;
inline constexpr int kGlibcTrimThresholdBytes = 128 * 1024; // glibc's M_TRIM_THRESHOLD default

inline void set_heap_policy() {
    mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
}

// For the scope's lifetime, blocks up to 32 MiB (glibc's maximum threshold on 64-bit) come from
// the heap and freed memory stays in it; at its end the policy above is set (whatever was set
// before: a reset, so scopes do not nest) and the heap is trimmed. faiss's k-means allocates a
// 16 MiB distance block per assignment step (thousands per OPQ training): under the 8 MiB
// threshold each was a fresh mapping, page-faulted in 4 KiB at a time, which made training
// ~2x slower (docs/PERFORMANCE.md, "pfcr prepare"). Only where memory comes from changes, not
// any arithmetic: prepared.h5 came out bit-identical (h5diff), as faiss and OpenBLAS do not
// depend on a buffer's address beyond its alignment, which malloc guarantees either way.
class ScopedHeapReuse {
public:
    ScopedHeapReuse() {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    ~ScopedHeapReuse() {
        mallopt(M_TRIM_THRESHOLD, kGlibcTrimThresholdBytes);
        set_heap_policy();
        malloc_trim(0);
    }
    ScopedHeapReuse(const ScopedHeapReuse&) = delete;
    ScopedHeapReuse& operator=(const ScopedHeapReuse&) = delete;
};

} // namespace pfcr
