/* The record check of fastsource.formats._json.json_lines: is one Kafka value a single JSON object that
 * pyarrow's JSON reader may be given? Checks framing, nesting depth, UTF-8 and string contents in one
 * pass without parsing, FS_BLOCK (32) bytes at a time (SSE2 where available); a block of plain ASCII without
 * escapes is taken whole. The caller guarantees that FS_BLOCK
 * bytes past the end of the record may be read (they are ignored). */
#ifndef FASTSOURCE_JSON_SCAN_H
#define FASTSOURCE_JSON_SCAN_H

#include <stdint.h>
#if defined(__SSE2__) && !defined(FS_JSON_SCALAR)
#include <emmintrin.h>
#endif

enum {
    FS_JSON_OBJECT = 0, FS_JSON_NULL = 1, FS_NOT_OBJECT = 2, FS_TOO_DEEP = 3, FS_BAD_UTF8 = 4,
    FS_RAW_CONTROL = 5, FS_BAD_ESCAPE = 6, FS_TRUNCATED = 7, FS_TRAILING = 8
};

/* Classes of a block of bytes, one bit per byte: controls and non-ASCII bytes, quotes, backslashes,
 * opening and closing braces or brackets. */
typedef struct {
    uint32_t special, quote, backslash, open, close;
} fs_json_block;

#define FS_BLOCK 32

#if defined(__SSE2__) && !defined(FS_JSON_SCALAR)
static inline void fs_json_classify16(const uint8_t *p, fs_json_block *b, int shift) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    /* Signed compare: bytes >= 0x80 are negative, so this catches controls and non-ASCII alike. */
    b->special |= (uint32_t)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20))) << shift;
    b->quote |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))) << shift;
    b->backslash |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))) << shift;
    __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* '[' -> '{', ']' -> '}' */
    b->open |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8('{'))) << shift;
    b->close |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8('}'))) << shift;
}
#endif

/* Classes of the FS_BLOCK bytes at p, one bit per byte. */
static inline void fs_json_classify(const uint8_t *p, fs_json_block *b) {
    b->special = b->quote = b->backslash = b->open = b->close = 0;
#if defined(__SSE2__) && !defined(FS_JSON_SCALAR)
    fs_json_classify16(p, b, 0);
    fs_json_classify16(p + 16, b, 16);
#else
    /* Without SSE2: one table look-up per byte; most bytes are in no class. */
    static const uint8_t classes[256] = {
        [0 ... 0x1F] = 1, ['"'] = 2, ['\\'] = 4, ['{'] = 8, ['['] = 8, ['}'] = 16, [']'] = 16,
        [0x80 ... 0xFF] = 1,
    };
    for (int k = 0; k < FS_BLOCK; k++) {
        uint32_t c = classes[p[k]];
        if (c) {
            b->special |= (c & 1) << k;
            b->quote |= ((c >> 1) & 1) << k;
            b->backslash |= ((c >> 2) & 1) << k;
            b->open |= ((c >> 3) & 1) << k;
            b->close |= ((c >> 4) & 1) << k;
        }
    }
#endif
}

/* Length of the valid UTF-8 sequence at p (p[0] >= 0x80), or 0 when it is invalid: overlong forms,
 * surrogates and code points above U+10FFFF included. */
static inline int64_t fs_utf8_sequence(const uint8_t *p, int64_t left) {
    uint8_t c = p[0], low = 0x80, high = 0xBF;
    int64_t need;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) low = 0xA0;
        else if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) low = 0x90;
        else if (c == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (need >= left || p[1] < low || p[1] > high) return 0;
    for (int64_t k = 2; k <= need; k++) {
        if (p[k] < 0x80 || p[k] > 0xBF) return 0;
    }
    return need + 1;
}

/* The number of bits set (few, in practice; x86-64 has no popcount instruction by default). */
static inline int fs_bits(uint32_t x) {
    int n = 0;
    for (; x; x &= x - 1) n++;
    return n;
}

static inline int fs_json_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Check the record p[0, length) in place: one JSON object nested at most max_depth deep (or `null`),
 * valid UTF-8, strings without raw control characters or invalid escapes, nothing after the object.
 * Raw newlines between tokens become spaces. Returns an FS_* code; *where gets the problem's offset. */
static inline int fs_scan_json_record(uint8_t *p, int64_t length, int64_t max_depth, int64_t *where) {
    int64_t i = 0, depth = 0;
    int in_string = 0;
    while (i < length && fs_json_space(p[i])) p[i++] = ' ';
    *where = i;
    if (i == length) return FS_NOT_OBJECT;
    if (length - i >= 4 && p[i] == 'n' && p[i + 1] == 'u' && p[i + 2] == 'l' && p[i + 3] == 'l') {
        for (i += 4; i < length && fs_json_space(p[i]); i++) {}
        *where = i;
        return i == length ? FS_JSON_NULL : FS_NOT_OBJECT;
    }
    if (p[i] != '{') return FS_NOT_OBJECT;
    while (i < length) {
        fs_json_block b;
        fs_json_classify(p + i, &b);
        int64_t left = length - i;
        uint32_t valid = left >= FS_BLOCK ? 0xFFFFFFFFu : ((1u << left) - 1);
        if (((b.special | b.backslash) & valid) == 0) {
            /* The common block: plain ASCII without escapes. Bit k of `strings` is set when byte k
             * lies inside a string (the parity of the quotes up to it); braces there do not count. */
            uint32_t quote = b.quote & valid, strings = quote;
            strings ^= strings << 1;
            strings ^= strings << 2;
            strings ^= strings << 4;
            strings ^= strings << 8;
            strings ^= strings << 16;
            if (in_string) strings = ~strings;
            uint32_t opening = b.open & valid & ~strings, closing = b.close & valid & ~strings;
            int opens = opening ? fs_bits(opening) : 0, closes = closing ? fs_bits(closing) : 0;
            if (depth + opens <= max_depth) {
                /* Take the block whole when the object stays open through it... */
                if (closes == 0 || depth - closes >= 1) {
                    depth += opens - closes;
                    in_string = (strings >> 31) & 1;
                    i += left >= FS_BLOCK ? FS_BLOCK : left;
                    continue;
                }
                /* ...or, without openings, find the closing brace that ends the object. */
                if (opens == 0) {
                    uint32_t ends = closing;
                    for (int64_t d = depth; d > 1; d--) ends &= ends - 1;
                    i += __builtin_ctz(ends) + 1;
                    goto closed;
                }
            }
        }
        uint32_t outside = b.special | b.quote | b.open | b.close;
        uint32_t inside = b.special | b.quote | b.backslash;
        int64_t k = 0;
        for (;;) {
            uint32_t events = (in_string ? inside : outside) & valid & (0xFFFFFFFFu << k);
            if (events == 0) {
                k = FS_BLOCK;
                break;
            }
            k = __builtin_ctz(events);
            uint8_t c = p[i + k];
            *where = i + k;
            if (c >= 0x80) {
                int64_t step = fs_utf8_sequence(p + i + k, length - i - k);
                if (step == 0) return FS_BAD_UTF8;
                k += step;
            } else if (c == '"') {
                in_string = !in_string;
                k += 1;
            } else if (in_string) {
                if (c != '\\') return FS_RAW_CONTROL;
                if (i + k + 1 >= length) return FS_TRUNCATED;
                switch (p[i + k + 1]) {
                    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                    case 'u':
                        break;
                    default:
                        return FS_BAD_ESCAPE;
                }
                k += 2;
            } else if (c < 0x20) {
                if (c == '\n' || c == '\r') p[i + k] = ' ';
                else if (c != '\t') return FS_RAW_CONTROL;
                k += 1;
            } else if (c == '{' || c == '[') {
                if (++depth > max_depth) return FS_TOO_DEEP;
                k += 1;
            } else {
                k += 1;
                if (--depth == 0) {
                    i += k;
                    goto closed;
                }
            }
            if (k >= FS_BLOCK) break;
        }
        i += k;
    }
    *where = length;
    return FS_TRUNCATED;
closed:
    while (i < length && fs_json_space(p[i])) p[i++] = ' ';
    *where = i;
    return i == length ? FS_JSON_OBJECT : FS_TRAILING;
}

#endif
