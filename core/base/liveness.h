/* liveness.h — what the transport thread may know of the script loop, through atomics only: when
 * the loop last turned (a heartbeat the script loop beats from a timer and from every resume) and
 * since when the current Lua resume has been running. The script loop writes (host_task.c, the
 * heartbeat in main.c); the transport thread reads (health.c's /healthz). */
#ifndef PMB_LIVENESS_H
#define PMB_LIVENESS_H

void liveness_beat(void);         /* script loop: "I turned" */
double liveness_since_beat(void); /* seconds since the last beat; 0 before the first */
void liveness_resume_begin(void); /* script loop: a Lua resume starts */
void liveness_resume_end(void);   /* ... and ends */
double liveness_resume_age(void); /* seconds the current resume has run; 0 when none */

#endif
