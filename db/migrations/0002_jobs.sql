-- 0002: accepted requests (jobs) and their externally visible steps (issue 16: several instances).
-- A job is written by the transport thread of the instance that received the envelope, BEFORE it
-- acks (core/net/accept.c), keyed by Slack's event_id ('event:Ev...') or, for slash commands and
-- shortcuts, the envelope id ('envelope:...'): a redelivery to another instance finds the row and
-- is acked without running again. The running instance renews lease_until (core/db/jobs.c); when
-- it stops renewing, another instance claims the job (pmb_job_claim) with generation + 1. The
-- generation is the fencing token: every visible step is begun with pmb_job_step_begin, which
-- checks it in the same statement that records the step (scripts/lib/jobs.lua).
CREATE TABLE pmb_jobs (
    id          text PRIMARY KEY,
    envelope    text NOT NULL,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    owner       text NOT NULL,
    generation  integer NOT NULL DEFAULT 1,
    lease_until timestamptz NOT NULL,
    accepted_by text NOT NULL,
    degraded    boolean NOT NULL DEFAULT false,
    takeovers   integer NOT NULL DEFAULT 0,
    outcome     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX pmb_jobs_running ON pmb_jobs (lease_until) WHERE state = 'running';

-- One row per visible step of a job ('upload:<name>', 'status:<destination>', 'reply:<n>').
-- 'started' by a generation, then 'done' with its result (e.g. a message ts) once it happened.
CREATE TABLE pmb_job_steps (
    job_id     text NOT NULL REFERENCES pmb_jobs (id) ON DELETE CASCADE,
    step       text NOT NULL,
    generation integer NOT NULL,
    state      text NOT NULL CHECK (state IN ('started', 'done')),
    result     text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, step)
);

-- The envelope as it is kept: without Slack's verification token ("token":"…", a credential the
-- scripts never need). On the JSON text, not jsonb: an escaped quote inside a string value is \",
-- so the pattern matches keys only, and a text jsonb would refuse (\u0000) is kept as it is.
CREATE FUNCTION pmb_envelope_scrub(p_envelope text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(p_envelope, '"token"\s*:\s*"[^"\\]*"\s*,\s*', '', 'g'),
                          '\s*,\s*"token"\s*:\s*"[^"\\]*"', '', 'g')
$$;

-- Accept: the row, unless the event is known already (then NULL: a redelivery).
CREATE FUNCTION pmb_job_accept(p_id text, p_envelope text, p_owner text, p_lease float8,
                               p_degraded boolean) RETURNS integer
LANGUAGE sql AS $$
    INSERT INTO pmb_jobs (id, envelope, owner, lease_until, accepted_by, degraded)
    VALUES (p_id, pmb_envelope_scrub(p_envelope), p_owner, now() + p_lease * interval '1 second',
            p_owner, p_degraded)
    ON CONFLICT (id) DO NOTHING
    RETURNING generation
$$;

-- Claim one job whose lease expired (its instance died or lost the database): a new generation.
CREATE FUNCTION pmb_job_claim(p_owner text, p_lease float8)
RETURNS TABLE (id text, generation integer, envelope text, previous_owner text)
LANGUAGE sql AS $$
    WITH expired AS (
        SELECT j.id, j.owner FROM pmb_jobs j
         WHERE j.state = 'running' AND j.lease_until < now()
         ORDER BY j.lease_until LIMIT 1 FOR UPDATE SKIP LOCKED)
    UPDATE pmb_jobs j SET owner = p_owner, generation = j.generation + 1,
           lease_until = now() + p_lease * interval '1 second', takeovers = j.takeovers + 1
      FROM expired WHERE j.id = expired.id
    RETURNING j.id, j.generation, j.envelope, expired.owner
$$;

-- Begin a visible step under the fencing token (the owner and the generation: a job acked while
-- the database did not answer runs as generation 1 on its instance, and another instance that got
-- the redelivery may hold generation 1 of the same row). verdict: 'go' (do it), 'done' (already done:
-- result holds what it returned), 'check' (an older generation began it and may have done it:
-- look at what is visible first), 'fenced' (this generation no longer holds the job, or its lease
-- has less than p_margin seconds left: do nothing visible), 'absent' (no row: a degraded job).
CREATE FUNCTION pmb_job_step_begin(p_job text, p_generation integer, p_owner text, p_step text,
                                   p_margin float8, OUT verdict text, OUT result text)
LANGUAGE plpgsql AS $$
DECLARE
    s pmb_job_steps%ROWTYPE;
    j pmb_jobs%ROWTYPE;
BEGIN
    SELECT * INTO j FROM pmb_jobs WHERE id = p_job FOR UPDATE;
    IF NOT FOUND THEN
        verdict := 'absent'; -- a degraded job whose row is not written yet
        RETURN;
    END IF;
    IF j.generation <> p_generation OR j.owner <> p_owner OR j.state <> 'running'
       OR j.lease_until <= now() + p_margin * interval '1 second' THEN
        verdict := 'fenced';
        RETURN;
    END IF;
    SELECT * INTO s FROM pmb_job_steps WHERE job_id = p_job AND step = p_step;
    IF NOT FOUND THEN
        INSERT INTO pmb_job_steps (job_id, step, generation, state)
        VALUES (p_job, p_step, p_generation, 'started');
        verdict := 'go';
    ELSIF s.state = 'done' THEN
        verdict := 'done';
        result := s.result;
    ELSIF s.generation = p_generation THEN
        verdict := 'go';
    ELSE
        UPDATE pmb_job_steps SET generation = p_generation, updated_at = now()
         WHERE job_id = p_job AND step = p_step;
        verdict := 'check';
    END IF;
END
$$;

-- A step happened (its result kept for a takeover); only the generation that began it records it.
CREATE FUNCTION pmb_job_step_done(p_job text, p_generation integer, p_step text, p_result text)
RETURNS boolean
LANGUAGE sql AS $$
    WITH d AS (
        UPDATE pmb_job_steps SET state = 'done', result = p_result, updated_at = now()
         WHERE job_id = p_job AND step = p_step AND generation = p_generation
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM d)
$$;

-- The job ended (whatever its outcome). An upsert: a job accepted while the database did not
-- answer may end before its record was written (then its row is written done).
CREATE FUNCTION pmb_job_finish(p_id text, p_generation integer, p_owner text, p_outcome text)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pmb_jobs AS j (id, envelope, state, owner, generation, lease_until, accepted_by,
                               degraded, outcome, finished_at)
    VALUES (p_id, '', 'done', p_owner, p_generation, now(), p_owner, true, p_outcome, now())
    ON CONFLICT (id) DO UPDATE SET state = 'done', outcome = p_outcome, finished_at = now()
     WHERE j.generation = p_generation AND j.owner = p_owner AND j.state = 'running'
$$;
