/* liveness.c — two monotonic timestamps shared between the threads as atomics (nanoseconds of
 * uv_hrtime; 0 = never / none). No lock: each is written by the script loop alone. */
#include "base/liveness.h"

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

static _Atomic uint64_t liveness_beat_ns;
static _Atomic uint64_t liveness_resume_ns;

static double liveness_age(uint64_t then)
{
    uint64_t now = uv_hrtime();
    return then == 0 || now < then ? 0.0 : (double)(now - then) / 1e9;
}

void liveness_beat(void)
{
    atomic_store(&liveness_beat_ns, uv_hrtime());
}

double liveness_since_beat(void)
{
    return liveness_age(atomic_load(&liveness_beat_ns));
}

void liveness_resume_begin(void)
{
    atomic_store(&liveness_resume_ns, uv_hrtime());
}

void liveness_resume_end(void)
{
    atomic_store(&liveness_resume_ns, 0);
    liveness_beat();
}

double liveness_resume_age(void)
{
    return liveness_age(atomic_load(&liveness_resume_ns));
}
