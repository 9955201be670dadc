/* util.c — see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* errors */

static _Thread_local char g_errmsg[2048];

gq_status gq_errf(gq_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

gq_status gq_err_prefix(gq_status st, const char *fmt, ...) {
    char prefix[1024], old[sizeof g_errmsg];
#pragma GCC diagnostic push
#ifndef __clang__ /* a GCC-only warning; clang warns about the unknown name */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_errmsg, sizeof old);
    snprintf(g_errmsg, sizeof g_errmsg, "%s%s", prefix, old);
#pragma GCC diagnostic pop
    return st;
}

const char *gq_errmsg(void) { return g_errmsg; }
void gq_err_clear(void) { g_errmsg[0] = 0; }

const char *gq_status_name(gq_status st) {
    switch (st) {
    case GQ_OK: return "ok";
    case GQ_ERR_IO: return "I/O error";
    case GQ_ERR_FORMAT: return "format error";
    case GQ_ERR_ARG: return "invalid argument";
    case GQ_ERR_NOMEM: return "out of memory";
    case GQ_ERR_NUMERIC: return "numerical error";
    case GQ_ERR_UNSUPPORTED: return "unsupported";
    case GQ_ERR_DB: return "database error";
    case GQ_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

_Noreturn void gq_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "gqsa: assertion failed: %s (%s:%d)\nHINT: this is a bug in gqsa; please report it with the command line.\n",
            expr, file, line);
    abort();
}

/* ------------------------------------------------------------------------------------------ */
/* allocation */

static _Noreturn void oom(size_t n) {
    fprintf(stderr, "gqsa: out of memory allocating %zu bytes\nHINT: use a smaller model, seqlen or calibration budget.\n", n);
    abort();
}

void *gq_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}
void *gq_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}
void *gq_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}
char *gq_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = gq_malloc(n);
    memcpy(d, s, n);
    return d;
}
void *gq_try_malloc(size_t n) { return malloc(n ? n : 1); }

int gq_mul_overflow(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* files */

gq_status gq_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gq_errf(GQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END) != 0) {
        fclose(f);
        return gq_errf(GQ_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    }
    off_t sz = ftello(f);
    if (sz < 0) {
        fclose(f);
        return gq_errf(GQ_ERR_IO, "%s: cannot determine size", path);
    }
    rewind(f);
    char *buf = gq_try_malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return gq_errf(GQ_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)sz);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        free(buf);
        return gq_errf(GQ_ERR_IO, "%s: short read (%zu of %lld bytes)", path, got, (long long)sz);
    }
    buf[sz] = 0;
    *data = buf;
    *len = (size_t)sz;
    return GQ_OK;
}

gq_status gq_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
        return gq_errf(GQ_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return gq_errf(GQ_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return gq_errf(GQ_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return gq_errf(GQ_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return gq_errf(GQ_ERR_IO, "%s: rename failed: %s", path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return GQ_OK;
}

int gq_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

gq_status gq_mkdirs(const char *path) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf) return gq_errf(GQ_ERR_ARG, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return gq_errf(GQ_ERR_IO, "%s: mkdir failed: %s", buf, strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return gq_errf(GQ_ERR_IO, "%s: mkdir failed: %s", buf, strerror(errno));
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* data root */

static char g_data_root[4096];

void gq_set_data_root(const char *root) { snprintf(g_data_root, sizeof g_data_root, "%s", root ? root : ""); }

const char *gq_data_root(void) {
    if (g_data_root[0]) return g_data_root;
    const char *e = getenv("GQSA_DATA_ROOT");
    if (e && *e) return e;
    return "../shared";
}

const char *gq_data_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", gq_data_root(), rel);
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* time, progress, threads */

double gq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void gq_progress_init(gq_progress *p, const char *label, double total, const char *unit) {
    p->label = label;
    p->total = total;
    p->unit = unit;
    p->t0 = gq_now();
    p->t_last = 0;
    const char *force = getenv("GQSA_PROGRESS");
    p->tty = isatty(2) ? 1 : (force && *force == '1' ? 2 : 0);
}

static void fmt_secs(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) { snprintf(buf, cap, "?"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%dh%02dm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, cap, "%dm%02ds", t / 60, t % 60);
    else snprintf(buf, cap, "%ds", t);
}

static void progress_print(gq_progress *p, double done, int final) {
    double now = gq_now(), el = now - p->t0;
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (p->total - done) / rate : -1;
    char e1[32], e2[32];
    fmt_secs(e1, sizeof e1, el);
    fmt_secs(e2, sizeof e2, eta);
    double pct = p->total > 0 ? 100.0 * done / p->total : 0;
    fprintf(stderr, "%s%s: %.0f/%.0f %s (%.1f%%) %.1f %s/s elapsed %s ETA %s%s", p->tty == 1 ? "\r" : "", p->label, done,
            p->total, p->unit, pct, rate, p->unit, e1, final ? "0s" : e2, (final || p->tty != 1) ? "\n" : "\x1b[K");
    fflush(stderr);
}

void gq_progress_update(gq_progress *p, double done) {
    if (!p->tty) return;
    double now = gq_now();
    double gap = p->tty == 1 ? 0.25 : 5.0;
    if (now - p->t_last < gap) return;
    p->t_last = now;
    progress_print(p, done, 0);
}

void gq_progress_done(gq_progress *p, double done) {
    if (!p->tty) return;
    progress_print(p, done, 1);
}

int gq_num_threads(void) {
    const char *e = getenv("GQSA_THREADS");
    if (e && *e) {
        long v = strtol(e, NULL, 10);
        if (v > 0 && v < 4096) return (int)v;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* RNG: xoshiro256** seeded through splitmix64 */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
void gq_rng_seed(gq_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t gq_rng_u64(gq_rng *r) {
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}
double gq_rng_uniform(gq_rng *r) { return (double)(gq_rng_u64(r) >> 11) * 0x1.0p-53; }
double gq_rng_normal(gq_rng *r) {
    double u1 = gq_rng_uniform(r), u2 = gq_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
uint64_t gq_rng_below(gq_rng *r, uint64_t n) {
    GQ_ASSERT(n > 0);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do x = gq_rng_u64(r);
    while (x >= lim);
    return x % n;
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4) */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha_block(gq_sha256 *s, const uint8_t *b) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25), ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22), mj = (a & bb) ^ (a & c) ^ (bb & c);
        uint32_t t2 = S0 + mj;
        h = g; g = f; f = e; e = d + t1; d = c; c = bb; bb = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += bb; s->h[2] += c; s->h[3] += d; s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}
void gq_sha256_init(gq_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}
void gq_sha256_update(gq_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    while (n) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take; p += take; n -= take;
        if (s->nbuf == 64) { sha_block(s, s->buf); s->nbuf = 0; }
    }
}
void gq_sha256_final(gq_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    gq_sha256_update(s, &pad, 1);
    uint8_t z = 0;
    while (s->nbuf != 56) gq_sha256_update(s, &z, 1);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(bits >> (56 - 8 * i));
    gq_sha256_update(s, lb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24); out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8); out[4 * i + 3] = (uint8_t)s->h[i];
    }
}
static void to_hex(const uint8_t d[32], char out[65]) {
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}
void gq_sha256_hex(const void *data, size_t n, char out_hex[65]) {
    gq_sha256 s;
    uint8_t d[32];
    gq_sha256_init(&s);
    gq_sha256_update(&s, data, n);
    gq_sha256_final(&s, d);
    to_hex(d, out_hex);
}
gq_status gq_sha256_file(const char *path, char out_hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return gq_errf(GQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gq_sha256 s;
    gq_sha256_init(&s);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) gq_sha256_update(&s, buf, n);
    int err = ferror(f);
    fclose(f);
    if (err) return gq_errf(GQ_ERR_IO, "%s: read error", path);
    uint8_t d[32];
    gq_sha256_final(&s, d);
    to_hex(d, out_hex);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* half precision */

float gq_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 31) bits = sign | 0x7f800000 | mant << 13;
    else bits = sign | (exp + 112) << 23 | mant << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gq_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | (uint32_t)exp << 10 | mant >> 13, rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* carry into the exponent is correct */
    return (uint16_t)half;
}

float gq_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
