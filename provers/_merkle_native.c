/*
 * Native hot path of veristream.provers.merkle_core: Keccak-256 and the
 * whole-tree loops (leaf hashing, leaf sorting, node hashing, ABI words of
 * static columns) over flat buffers, so no Python object exists per node.
 *
 * merkle_core.py holds the pure-Python reference of every function here;
 * tests/test_merkle.py checks the two against each other. Any input this
 * code does not handle is handed back to Python, which either encodes it or
 * raises the user-facing ValueError: this file never decides what is valid
 * beyond the narrow fast path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Keccak */

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

#define ROL(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

/* Keccak-f[1600] over lanes a[x + 5y] of type T (one uint64_t, or a vector of
 * four for four independent states): theta, rho+pi into b[y + 5((2x+3y) mod 5)],
 * chi, iota. */
#define KECCAK_F_BODY(T)                                                        \
    T c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;                                   \
    T b[25];                                                                    \
    for (int round = 0; round < 24; round++) {                                  \
        c0 = a[0] ^ a[5] ^ a[10] ^ a[15] ^ a[20];                               \
        c1 = a[1] ^ a[6] ^ a[11] ^ a[16] ^ a[21];                               \
        c2 = a[2] ^ a[7] ^ a[12] ^ a[17] ^ a[22];                               \
        c3 = a[3] ^ a[8] ^ a[13] ^ a[18] ^ a[23];                               \
        c4 = a[4] ^ a[9] ^ a[14] ^ a[19] ^ a[24];                               \
        d0 = c4 ^ ROL(c1, 1);                                                   \
        d1 = c0 ^ ROL(c2, 1);                                                   \
        d2 = c1 ^ ROL(c3, 1);                                                   \
        d3 = c2 ^ ROL(c4, 1);                                                   \
        d4 = c3 ^ ROL(c0, 1);                                                   \
        b[0] = a[0] ^ d0;                                                       \
        b[10] = ROL(a[1] ^ d1, 1);                                              \
        b[20] = ROL(a[2] ^ d2, 62);                                             \
        b[5] = ROL(a[3] ^ d3, 28);                                              \
        b[15] = ROL(a[4] ^ d4, 27);                                             \
        b[16] = ROL(a[5] ^ d0, 36);                                             \
        b[1] = ROL(a[6] ^ d1, 44);                                              \
        b[11] = ROL(a[7] ^ d2, 6);                                              \
        b[21] = ROL(a[8] ^ d3, 55);                                             \
        b[6] = ROL(a[9] ^ d4, 20);                                              \
        b[7] = ROL(a[10] ^ d0, 3);                                              \
        b[17] = ROL(a[11] ^ d1, 10);                                            \
        b[2] = ROL(a[12] ^ d2, 43);                                             \
        b[12] = ROL(a[13] ^ d3, 25);                                            \
        b[22] = ROL(a[14] ^ d4, 39);                                            \
        b[23] = ROL(a[15] ^ d0, 41);                                            \
        b[8] = ROL(a[16] ^ d1, 45);                                             \
        b[18] = ROL(a[17] ^ d2, 15);                                            \
        b[3] = ROL(a[18] ^ d3, 21);                                             \
        b[13] = ROL(a[19] ^ d4, 8);                                             \
        b[14] = ROL(a[20] ^ d0, 18);                                            \
        b[24] = ROL(a[21] ^ d1, 2);                                             \
        b[9] = ROL(a[22] ^ d2, 61);                                             \
        b[19] = ROL(a[23] ^ d3, 56);                                            \
        b[4] = ROL(a[24] ^ d4, 14);                                             \
        for (int y = 0; y < 25; y += 5) {                                       \
            a[y + 0] = b[y + 0] ^ (~b[y + 1] & b[y + 2]);                       \
            a[y + 1] = b[y + 1] ^ (~b[y + 2] & b[y + 3]);                       \
            a[y + 2] = b[y + 2] ^ (~b[y + 3] & b[y + 4]);                       \
            a[y + 3] = b[y + 3] ^ (~b[y + 4] & b[y + 0]);                       \
            a[y + 4] = b[y + 4] ^ (~b[y + 0] & b[y + 1]);                       \
        }                                                                       \
        a[0] ^= RC[round];                                                      \
    }

static void keccak_f(uint64_t a[25]) { KECCAK_F_BODY(uint64_t) }

/* Four states side by side: the per-call cost is the permutation itself, so
 * hashing four independent messages at once is where the speed is. With
 * AVX2 (chosen at run time) a vector is one register; without it the compiler
 * splits it into SSE2 pairs, still no slower than four scalar calls. */
typedef uint64_t lane4 __attribute__((vector_size(32)));

static void keccak_f4_generic(lane4 a[25]) { KECCAK_F_BODY(lane4) }

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2"))) static void keccak_f4_avx2(lane4 a[25]) { KECCAK_F_BODY(lane4) }
#endif

static void (*keccak_f4)(lane4 a[25]) = keccak_f4_generic;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Keccak lanes are little-endian: on such hosts a lane is a plain load. */
static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
#else
static inline uint64_t load64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void store64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
#endif

#define RATE 136

/* Ethereum's keccak256: Keccak[r=1088, c=512] with the original 0x01 padding. */
static void keccak256(const unsigned char *in, size_t len, unsigned char out[32]) {
    uint64_t a[25] = {0};
    while (len >= RATE) {
        for (int i = 0; i < RATE / 8; i++) a[i] ^= load64(in + 8 * i);
        keccak_f(a);
        in += RATE;
        len -= RATE;
    }
    unsigned char block[RATE];
    memset(block, 0, RATE);
    memcpy(block, in, len);
    block[len] ^= 0x01;
    block[RATE - 1] ^= 0x80;
    for (int i = 0; i < RATE / 8; i++) a[i] ^= load64(block + 8 * i);
    keccak_f(a);
    for (int i = 0; i < 4; i++) store64(out + 8 * i, a[i]);
}

/* keccak256 of four messages of the same length at once. */
static void keccak256_x4(const unsigned char *const in[4], size_t len, unsigned char *const out[4]) {
    lane4 a[25];
    memset(a, 0, sizeof a);
    size_t offset = 0;
    for (; len - offset >= RATE; offset += RATE) {
        for (int i = 0; i < RATE / 8; i++) {
            lane4 v = {load64(in[0] + offset + 8 * i), load64(in[1] + offset + 8 * i),
                       load64(in[2] + offset + 8 * i), load64(in[3] + offset + 8 * i)};
            a[i] ^= v;
        }
        keccak_f4(a);
    }
    size_t rest = len - offset;
    if (rest % 8 == 0) {
        /* Whole lanes (32-byte leaves, 64-byte pairs, static ABI rows): absorb
         * them directly; the padding is one bit in the next lane and the last. */
        size_t lanes = rest / 8;
        for (size_t i = 0; i < lanes; i++) {
            lane4 v = {load64(in[0] + offset + 8 * i), load64(in[1] + offset + 8 * i),
                       load64(in[2] + offset + 8 * i), load64(in[3] + offset + 8 * i)};
            a[i] ^= v;
        }
        a[lanes] ^= (lane4){1, 1, 1, 1};
        a[RATE / 8 - 1] ^= (lane4){1ULL << 63, 1ULL << 63, 1ULL << 63, 1ULL << 63};
    } else {
        unsigned char block[4][RATE];
        for (int k = 0; k < 4; k++) {
            memset(block[k], 0, RATE);
            memcpy(block[k], in[k] + offset, rest);
            block[k][rest] ^= 0x01;
            block[k][RATE - 1] ^= 0x80;
        }
        for (int i = 0; i < RATE / 8; i++) {
            lane4 v = {load64(block[0] + 8 * i), load64(block[1] + 8 * i), load64(block[2] + 8 * i),
                       load64(block[3] + 8 * i)};
            a[i] ^= v;
        }
    }
    keccak_f4(a);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 4; i++) store64(out[k] + 8 * i, a[i][k]);
}

/* keccak256(sorted(a, b)): OpenZeppelin's commutative node hash. */
static inline void node_hash(const unsigned char *a, const unsigned char *b, unsigned char *out) {
    unsigned char pair[64];
    if (memcmp(a, b, 32) <= 0) {
        memcpy(pair, a, 32);
        memcpy(pair + 32, b, 32);
    } else {
        memcpy(pair, b, 32);
        memcpy(pair + 32, a, 32);
    }
    keccak256(pair, 64, out);
}

/* ------------------------------------------------------------ functions */

static PyObject *py_keccak256(PyObject *self, PyObject *arg) {
    Py_buffer view;
    unsigned char out[32];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    keccak256((const unsigned char *)view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* leaf_hashes(encoded, width) -> n*32 bytes: keccak256(keccak256(record)) of
 * each width-byte record of the flat buffer. */
static PyObject *py_leaf_hashes(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*n", &view, &width)) return NULL;
    if (width <= 0 || view.len % width != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer length is not a multiple of the record width");
        return NULL;
    }
    Py_ssize_t n = view.len / width;
    PyObject *result = PyBytes_FromStringAndSize(NULL, n * 32);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *in = (const unsigned char *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    unsigned char inner[4][32];
    const unsigned char *const inner_in[4] = {inner[0], inner[1], inner[2], inner[3]};
    unsigned char *const inner_out[4] = {inner[0], inner[1], inner[2], inner[3]};
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const unsigned char *const rec[4] = {in + i * width, in + (i + 1) * width,
                                             in + (i + 2) * width, in + (i + 3) * width};
        unsigned char *const dst[4] = {out + i * 32, out + (i + 1) * 32, out + (i + 2) * 32,
                                       out + (i + 3) * 32};
        keccak256_x4(rec, (size_t)width, inner_out);
        keccak256_x4(inner_in, 32, dst);
    }
    for (; i < n; i++) {
        keccak256(in + i * width, (size_t)width, inner[0]);
        keccak256(inner[0], 32, out + i * 32);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return result;
}

/* Sorting: 8-byte big-endian prefix plus the original index; ties on the
 * prefix fall back to the full 32 bytes, then to the index, which makes the
 * order the same as a stable sort by hash (what JavaScript's sort gives). */
typedef struct {
    uint64_t prefix;
    uint32_t index;
} sort_key;

static const unsigned char *sort_base;

static int compare_keys(const void *pa, const void *pb) {
    const sort_key *a = (const sort_key *)pa, *b = (const sort_key *)pb;
    if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
    int c = memcmp(sort_base + (size_t)a->index * 32, sort_base + (size_t)b->index * 32, 32);
    if (c) return c;
    return a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
}

static inline uint64_t load64_be(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* sort_hashes(hashes) -> (sorted n*32 bytes, ranks as n native-endian uint32):
 * ranks[i] is the position of hash i in the sorted order. */
static PyObject *py_sort_hashes(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % 32 != 0 || view.len / 32 > 0xFFFFFFFFLL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "hashes must be a flat buffer of at most 2^32 32-byte values");
        return NULL;
    }
    Py_ssize_t n = view.len / 32;
    sort_key *keys = (sort_key *)PyMem_RawMalloc(sizeof(sort_key) * (size_t)(n ? n : 1));
    Py_ssize_t *start = (Py_ssize_t *)PyMem_RawCalloc(65537, sizeof(Py_ssize_t));
    PyObject *sorted = PyBytes_FromStringAndSize(NULL, n * 32);
    PyObject *ranks = PyBytes_FromStringAndSize(NULL, n * 4);
    if (keys == NULL || start == NULL || sorted == NULL || ranks == NULL) {
        PyMem_RawFree(keys);
        PyMem_RawFree(start);
        Py_XDECREF(sorted);
        Py_XDECREF(ranks);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const unsigned char *in = (const unsigned char *)view.buf;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(sorted);
    unsigned char *rank = (unsigned char *)PyBytes_AS_STRING(ranks);
    /* Counting sort on the top 16 bits (stable), then each bucket by the full
     * key: uniform hashes leave a handful per bucket. */
    for (Py_ssize_t i = 0; i < n; i++) start[((size_t)in[i * 32] << 8 | in[i * 32 + 1]) + 1]++;
    for (int b = 0; b < 65536; b++) start[b + 1] += start[b];
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t b = (size_t)in[i * 32] << 8 | in[i * 32 + 1];
        sort_key *key = &keys[start[b]++];
        key->prefix = load64_be(in + i * 32);
        key->index = (uint32_t)i;
    }
    /* qsort's comparator has no context argument; the GIL serialises callers. */
    sort_base = in;
    Py_ssize_t lo = 0;
    for (int b = 0; b < 65536; b++) {
        Py_ssize_t hi = start[b]; /* now the end of bucket b */
        if (hi - lo > 1) qsort(keys + lo, (size_t)(hi - lo), sizeof(sort_key), compare_keys);
        lo = hi;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        uint32_t i = keys[k].index, position = (uint32_t)k;
        memcpy(out + k * 32, in + (size_t)i * 32, 32);
        memcpy(rank + (size_t)i * 4, &position, 4);
    }
    PyMem_RawFree(start);
    PyMem_RawFree(keys);
    PyBuffer_Release(&view);
    return Py_BuildValue("(NN)", sorted, ranks);
}

/* build_tree(leaves) -> (2n-1)*32 bytes in OpenZeppelin's array layout: leaf
 * i at node 2n-2-i, node j = hash(node 2j+1, node 2j+2). */
static PyObject *py_build_tree(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len == 0 || view.len % 32 != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "leaves must be a non-empty flat buffer of 32-byte values");
        return NULL;
    }
    Py_ssize_t n = view.len / 32, m = 2 * n - 1;
    PyObject *result = PyBytes_FromStringAndSize(NULL, m * 32);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *tree = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *in = (const unsigned char *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) memcpy(tree + (m - 1 - i) * 32, in + i * 32, 32);
    /* Internal nodes 0..n-2, one array level [2^d - 1, 2^(d+1) - 1) at a time
     * from the deepest: nodes of a level are independent, so four at a time. */
    Py_ssize_t top = 1;
    while (top - 1 < n - 1) top *= 2;
    for (Py_ssize_t first = top / 2 - 1; top > 1; top /= 2, first = top / 2 - 1) {
        Py_ssize_t end = top - 1 < n - 1 ? top - 1 : n - 1;
        Py_ssize_t j = first;
        unsigned char pair[4][64];
        const unsigned char *const msg[4] = {pair[0], pair[1], pair[2], pair[3]};
        for (; j + 4 <= end; j += 4) {
            for (int k = 0; k < 4; k++) {
                const unsigned char *l = tree + (2 * (j + k) + 1) * 32, *r = l + 32;
                if (memcmp(l, r, 32) <= 0) {
                    memcpy(pair[k], l, 32);
                    memcpy(pair[k] + 32, r, 32);
                } else {
                    memcpy(pair[k], r, 32);
                    memcpy(pair[k] + 32, l, 32);
                }
            }
            unsigned char *const dst[4] = {tree + j * 32, tree + (j + 1) * 32, tree + (j + 2) * 32,
                                           tree + (j + 3) * 32};
            keccak256_x4(msg, 64, dst);
        }
        for (; j < end; j++) node_hash(tree + (2 * j + 1) * 32, tree + (2 * j + 2) * 32, tree + j * 32);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------- static ABI columns */

enum { K_ADDRESS = 0, K_UINT = 1, K_INT = 2, K_BOOL = 3, K_BYTESN = 4 };

/* Hex digit values, -1 for anything else; filled at module init. */
static signed char HEX[256];

static void init_hex(void) {
    memset(HEX, -1, sizeof HEX);
    for (int c = '0'; c <= '9'; c++) HEX[c] = (signed char)(c - '0');
    for (int c = 'a'; c <= 'f'; c++) HEX[c] = (signed char)(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; c++) HEX[c] = (signed char)(c - 'A' + 10);
}

static inline int hexval(int c) { return HEX[c & 0xFF]; }

/* "0x" + 2*size hex digits into out[0..size); 0 when the string is not that. */
static int parse_hex_exact(PyObject *s, unsigned char *out, Py_ssize_t size) {
    if (!PyUnicode_Check(s) || !PyUnicode_IS_COMPACT_ASCII(s)) return 0;
    if (PyUnicode_GET_LENGTH(s) != 2 + 2 * size) return 0;
    const char *p = (const char *)PyUnicode_DATA(s);
    if (p[0] != '0' || (p[1] != 'x' && p[1] != 'X')) return 0;
    p += 2;
    int bad = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);
        bad |= hi | lo; /* negative if any digit was not hex */
        out[i] = (unsigned char)(((unsigned)hi & 0xF) << 4 | ((unsigned)lo & 0xF));
    }
    return bad >= 0;
}

/* A new int from an int or a plain decimal (optionally negative) or 0x-hex
 * string; NULL (no error set) when the value is anything else. */
static PyObject *as_int(PyObject *v) {
    if (PyLong_CheckExact(v)) {
        Py_INCREF(v);
        return v;
    }
    if (!PyUnicode_Check(v) || !PyUnicode_IS_COMPACT_ASCII(v)) return NULL;
    Py_ssize_t len = PyUnicode_GET_LENGTH(v);
    const char *p = (const char *)PyUnicode_DATA(v);
    int base = 10;
    int negative = len > 1 && p[0] == '-';
    Py_ssize_t start = negative;
    if (!negative && len > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        start = 2;
    }
    if (len == start) return NULL;
    for (Py_ssize_t i = start; i < len; i++) {
        int d = hexval((unsigned char)p[i]);
        if (d < 0 || d >= base) return NULL;
    }
    PyObject *result = PyLong_FromString(negative ? p : p + start, NULL, base);
    if (result == NULL) PyErr_Clear();
    return result;
}

/* Whether a 32-byte two's-complement word holds a value of `bits` bits: the
 * top 256 - bits (+1 when signed) bits all equal the sign (0 for uint). */
static int range_ok(const unsigned char *word, int bits, int is_signed) {
    int top = 256 - bits + (is_signed ? 1 : 0);
    int fill = (is_signed && (word[0] & 0x80)) ? 1 : 0;
    for (int b = 0; b < top && b < 256; b++)
        if (((word[b / 8] >> (7 - b % 8)) & 1) != fill) return 0;
    return 1;
}

/* The 32-byte word of an int of `bits` bits; 0 when it does not fit (or on
 * any other trouble): Python then raises the precise error. */
static int int_word(PyObject *number, int bits, int is_signed, unsigned char *word) {
    /* One call with no exception on the normal path: an exception per wide
     * value would cost more than its hashing. */
#if PY_VERSION_HEX < 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)number, word, 32, 0, is_signed) < 0) {
        PyErr_Clear();
        return 0;
    }
#else
    int flags = Py_ASNATIVEBYTES_BIG_ENDIAN;
    if (!is_signed) flags |= Py_ASNATIVEBYTES_UNSIGNED_BUFFER | Py_ASNATIVEBYTES_REJECT_NEGATIVE;
    Py_ssize_t need = PyLong_AsNativeBytes(number, word, 32, flags);
    if (need < 0) {
        PyErr_Clear();
        return 0;
    }
    if (need > 32) return 0;
#endif
    return range_ok(word, bits, is_signed);
}

/* One row's words into out; 0 when a value is not in the fast path's forms. */
static int encode_row(PyObject *row, const int *kind, Py_ssize_t ncols, unsigned char *word) {
    PyObject **items;
    if (PyList_CheckExact(row) && PyList_GET_SIZE(row) == ncols)
        items = ((PyListObject *)row)->ob_item;
    else if (PyTuple_CheckExact(row) && PyTuple_GET_SIZE(row) == ncols)
        items = ((PyTupleObject *)row)->ob_item;
    else
        return 0;
    for (Py_ssize_t c = 0; c < ncols; c++, word += 32) {
        PyObject *v = items[c];
        int size = kind[2 * c + 1], ok;
        switch (kind[2 * c]) {
        case K_ADDRESS:
            memset(word, 0, 12);
            if (PyBytes_CheckExact(v) && PyBytes_GET_SIZE(v) == 20) {
                memcpy(word + 12, PyBytes_AS_STRING(v), 20);
                ok = 1;
            } else {
                ok = parse_hex_exact(v, word + 12, 20);
            }
            break;
        case K_UINT:
        case K_INT: {
            PyObject *number = as_int(v);
            if (number == NULL) return 0;
            ok = int_word(number, size, kind[2 * c] == K_INT, word);
            Py_DECREF(number);
            break;
        }
        case K_BOOL:
            memset(word, 0, 32);
            word[31] = v == Py_True;
            ok = v == Py_True || v == Py_False;
            break;
        case K_BYTESN:
            memset(word, 0, 32);
            if (PyBytes_CheckExact(v) && PyBytes_GET_SIZE(v) == size) {
                memcpy(word, PyBytes_AS_STRING(v), (size_t)size);
                ok = 1;
            } else {
                ok = parse_hex_exact(v, word, size);
            }
            break;
        default:
            ok = 0;
        }
        if (!ok) return 0;
    }
    return 1;
}

/* encode_static(rows, kinds) -> (bytearray, missed): the ABI words of every
 * row whose columns are all one-word static types, kinds being ((kind, size),
 * ...). Rows in `missed` (a list of row indices) were left for Python, which
 * writes their words into the bytearray or raises the error. */
static PyObject *py_encode_static(PyObject *self, PyObject *args) {
    PyObject *rows, *kinds_obj;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &rows, &PyTuple_Type, &kinds_obj)) return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj), nrows = PyList_GET_SIZE(rows);
    if (ncols <= 0) {
        PyErr_SetString(PyExc_ValueError, "no columns");
        return NULL;
    }
    int *kind = (int *)PyMem_Malloc(sizeof(int) * 2 * (size_t)ncols);
    if (kind == NULL) return PyErr_NoMemory();
    for (Py_ssize_t c = 0; c < ncols; c++) {
        PyObject *pair = PyTuple_GET_ITEM(kinds_obj, c);
        int k, size;
        if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "ii", &k, &size)) {
            PyMem_Free(kind);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a column kind is (kind, size)");
            return NULL;
        }
        int valid = (k == K_ADDRESS || k == K_BOOL) ||
                    ((k == K_UINT || k == K_INT) && size >= 8 && size <= 256 && size % 8 == 0) ||
                    (k == K_BYTESN && size >= 1 && size <= 32);
        if (!valid) {
            PyMem_Free(kind);
            PyErr_SetString(PyExc_ValueError, "unknown column kind or size");
            return NULL;
        }
        kind[2 * c] = k;
        kind[2 * c + 1] = size;
    }
    Py_ssize_t width = 32 * ncols;
    PyObject *result = PyByteArray_FromStringAndSize(NULL, nrows * width);
    PyObject *missed = PyList_New(0);
    if (result == NULL || missed == NULL) {
        PyMem_Free(kind);
        Py_XDECREF(result);
        Py_XDECREF(missed);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(result);
    for (Py_ssize_t r = 0; r < nrows; r++) {
        unsigned char *word = out + r * width;
        if (encode_row(PyList_GET_ITEM(rows, r), kind, ncols, word)) continue;
        memset(word, 0, (size_t)width);
        PyObject *index = PyLong_FromSsize_t(r);
        if (index == NULL || PyList_Append(missed, index) < 0) {
            Py_XDECREF(index);
            PyMem_Free(kind);
            Py_DECREF(result);
            Py_DECREF(missed);
            return NULL;
        }
        Py_DECREF(index);
    }
    PyMem_Free(kind);
    return Py_BuildValue("(NN)", result, missed);
}

static PyMethodDef methods[] = {
    {"keccak256", py_keccak256, METH_O, "keccak256(data) -> 32 bytes."},
    {"leaf_hashes", py_leaf_hashes, METH_VARARGS,
     "leaf_hashes(encoded, width) -> keccak256(keccak256(record)) of each record, concatenated."},
    {"sort_hashes", py_sort_hashes, METH_O,
     "sort_hashes(hashes) -> (sorted hashes, rank of each input as native uint32)."},
    {"build_tree", py_build_tree, METH_O,
     "build_tree(leaves) -> every node of the tree in OpenZeppelin's array layout."},
    {"encode_static", py_encode_static, METH_VARARGS,
     "encode_static(rows, kinds) -> (bytearray of ABI words, indices of rows left for Python)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_merkle_native",
    "Native hot path of veristream.provers.merkle_core (see its pure-Python reference).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__merkle_native(void) {
    init_hex();
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) keccak_f4 = keccak_f4_avx2;
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "KECCAK_X4", keccak_f4 == keccak_f4_generic ? "generic" : "avx2") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
