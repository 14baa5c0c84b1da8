/* test_prof_sampler.c: the sampler's statistics and the profile's figures.
 *
 * 1. The sampler alone (zm_smp_tick/zm_smp_decide, as the fast path calls
 *    them) on a fixed stream with a fixed seed: the number of samples is
 *    within 5 standard deviations of its expectation sum(1 - exp(-s/T)),
 *    the weighted byte estimate within 5 of its own, and the same seed gives
 *    the same samples.
 * 2. Through zmalloc: a known live heap, dumped with zmalloc_prof_dump,
 *    read back: the in-use total within 10% of the truth, and nothing left
 *    in use once everything is freed.
 * 3. The library's own ln and expm1 (it links no libm) against libm's over
 *    the domains the sampler uses.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"
#include "test.h"
#include "zmalloc.h"

static const size_t sizes[] = {16, 100, 1000, 10000, 100000, 48, 4096};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define STREAM 300000

typedef struct run {
    long samples;
    double est_bytes, exp_samples, var_samples, var_bytes, true_bytes;
    uint64_t digest;
} run;

static void sample_stream(uint64_t seed, long interval, run *r) {
    memset(r, 0, sizeof *r);
    zmalloc_prof_set_sample((size_t)interval);
    zm_smp_seed(seed);
    for (long i = 0; i < STREAM; i++) {
        size_t s = sizes[(i * 7 + i / 5) % NSIZES];
        double p = -expm1(-(double)s / (double)interval);
        r->exp_samples += p;
        r->var_samples += p * (1 - p);
        r->var_bytes += (double)s * (double)s * (1 - p) / p;
        r->true_bytes += (double)s;
        if (zm_smp_tick(s)) {
            zm_smp_decision d;
            zm_smp_decide(s, 1, &d);
            if (d.profile) {
                r->samples++;
                r->est_bytes += d.weight * (double)s;
                r->digest = r->digest * 31 + (uint64_t)i;
            }
        }
    }
    zmalloc_prof_set_sample(0);
}

/* "heap profile: N: B [N2: B2] @ heapprofile" */
static int read_header(const char *path, long long v[4]) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = fscanf(f, "heap profile: %lld: %lld [%lld: %lld]", &v[0], &v[1], &v[2], &v[3]);
    fclose(f);
    return n == 4;
}

__attribute__((noinline)) void **keep_blocks(int n, size_t size) {
    void **v = malloc(sizeof(void *) * (size_t)n);
    for (int i = 0; i < n; i++) v[i] = zmalloc(size);
    return v;
}

static double rel_err(double got, double want) {
    double d = fabs(got - want), m = fabs(want);
    return m > 1.0 ? d / m : d;
}

static void check_own_math(void) {
    double worst_log = 0, worst_expm1 = 0;
    /* ln over (0, 1] as the draws use it (down to 2^-53), and beyond 1. */
    for (double x = 0x1p-53; x < 1e6; x *= 1.0009765625) {
        double e = rel_err(zm_smp_log(x), log(x));
        if (e > worst_log) worst_log = e;
    }
    CHECK(zm_smp_log(1.0) == 0.0);
    /* expm1 on x <= 0: tiny, around the 1/2 switch, large, and past the
     * point where e^x is below the smallest double. */
    static const double edges[] = {-0.0, -1e-300, -1e-12, -1e-6, -0.49999999, -0.5, -0.50000001,
                                   -1.0, -10.0, -700.0, -744.0, -745.5, -1e6};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        double want = expm1(edges[i]), got = zm_smp_expm1(edges[i]);
        double e = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
        if (e > worst_expm1) worst_expm1 = e;
    }
    for (double x = -1e-9; x > -800; x *= 1.001) {
        double want = expm1(x), e = fabs(zm_smp_expm1(x) - want) / fabs(want);
        if (e > worst_expm1) worst_expm1 = e;
    }
    printf("own ln: worst error %.3g; own expm1: worst relative error %.3g\n", worst_log,
           worst_expm1);
    CHECK(worst_log < 1e-12);
    CHECK(worst_expm1 < 1e-12);
}

int main(void) {
    check_own_math();
    run a, b;
    long interval = 65536;
    sample_stream(12345, interval, &a);
    printf("samples %ld, expected %.1f (sd %.1f); bytes estimated %.0f, true %.0f (sd %.0f)\n",
           a.samples, a.exp_samples, sqrt(a.var_samples), a.est_bytes, a.true_bytes,
           sqrt(a.var_bytes));
    CHECK(fabs((double)a.samples - a.exp_samples) < 5 * sqrt(a.var_samples));
    CHECK(fabs(a.est_bytes - a.true_bytes) < 5 * sqrt(a.var_bytes));
    /* The sampler must sample at all (a sampler that never fires would pass
     * nothing above: expected is in the hundreds). */
    CHECK(a.exp_samples > 200 && a.samples > 0);
    sample_stream(12345, interval, &b);
    CHECK(a.samples == b.samples && a.digest == b.digest);
    sample_stream(999, interval, &b);
    CHECK(a.digest != b.digest);

    /* Off: the slow path never samples. */
    zmalloc_prof_set_sample(0);
    long fired = 0;
    for (long i = 0; i < 100000; i++) {
        if (zm_smp_tick(1000)) {
            zm_smp_decision d;
            zm_smp_decide(1000, 1, &d);
            fired += d.profile + d.guard;
        }
    }
    CHECK(fired == 0);

    /* Through zmalloc: 30000 x 200 B + 300 x 20000 B live = 12 MB. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/zm-prof-test-%ld.heap", (long)getpid());
    zmalloc_prof_set_sample(4096);
    CHECK(zmalloc_prof_get_sample() == 4096);
    void **s = keep_blocks(30000, 200);
    void **l = keep_blocks(300, 20000);
    CHECK(zmalloc_prof_dump(path) == 0);
    long long v[4] = {0, 0, 0, 0};
    CHECK(read_header(path, v));
    double truth = 30000.0 * 200 + 300.0 * 20000;
    printf("in use: estimated %lld bytes in %lld blocks, true %.0f bytes in 30300\n", v[1], v[0],
           truth);
    CHECK(fabs((double)v[1] - truth) < 0.1 * truth);
    CHECK(v[0] > 30300 * 0.9 && v[0] < 30300 * 1.1);
    CHECK(v[3] >= v[1]);
    for (int i = 0; i < 30000; i++) zfree(s[i]);
    for (int i = 0; i < 300; i++) zfree(l[i]);
    CHECK(zmalloc_prof_dump(path) == 0);
    CHECK(read_header(path, v));
    CHECK(v[0] == 0 && v[1] == 0);
    CHECK(v[3] > truth * 0.9);
    /* %p becomes the pid. */
    CHECK(zmalloc_prof_dump("/tmp/zm-prof-test-%p.heap") == 0);
    CHECK(access(path, R_OK) == 0);
    unlink(path);
    CHECK(zmalloc_prof_dump("/nonexistent-dir/x.heap") == -1);
    CHECK(zmalloc_prof_dropped() == 0);
    zmalloc_prof_set_sample(0);
    free(s);
    free(l);
    return test_summary("test_prof_sampler");
}
