# C declarations of asan_poison.h: pooled blocks poisoned for AddressSanitizer (no-ops otherwise).
from libc.stdint cimport int64_t

cdef extern from "asan_poison.h" nogil:
    void fs_poison(void *p, int64_t n)
    void fs_unpoison(void *p, int64_t n)
