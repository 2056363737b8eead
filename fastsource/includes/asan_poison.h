/* Marking the builders' pooled blocks for AddressSanitizer: a block in the pool is poisoned, so that a
 * use after Arrow released it is reported under a sanitized build as a use after free would be. In a
 * normal build both macros do nothing. */
#ifndef FASTSOURCE_ASAN_POISON_H
#define FASTSOURCE_ASAN_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define fs_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (size_t) (n))
#define fs_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (size_t) (n))
#else
#define fs_poison(p, n) ((void) (p), (void) (n))
#define fs_unpoison(p, n) ((void) (p), (void) (n))
#endif

#endif
