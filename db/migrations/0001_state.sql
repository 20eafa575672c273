-- 0001: the state that file mode keeps under data_dir, shared by every instance.
-- Incident records (scripts/lib/incidents.lua: one JSON document per incident thread) and the
-- report versions of each thread (scripts/lib/bundle.lua: vN allocated here, so that two
-- instances never both write a v3; the Markdown and the timeline are kept, attachments are not).
CREATE TABLE pmb_incidents (
    channel    text NOT NULL,
    thread_ts  text NOT NULL,
    record     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, thread_ts)
);

-- The last version number handed out per thread: an upsert on this row is the allocation.
CREATE TABLE pmb_report_counters (
    channel      text NOT NULL,
    thread_ts    text NOT NULL,
    last_version integer NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);

-- One row per allocated version; complete once the report was written (a version whose report
-- failed half-way stays 'writing' and is never anyone's "previous").
CREATE TABLE pmb_reports (
    channel      text NOT NULL,
    thread_ts    text NOT NULL,
    version      integer NOT NULL,
    state        text NOT NULL DEFAULT 'writing' CHECK (state IN ('writing', 'complete')),
    instance     text,
    md_name      text,
    markdown     text,
    timeline     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (channel, thread_ts, version)
);

-- Allocate the next version of a thread and return it with the latest complete one before it.
CREATE FUNCTION pmb_report_allocate(p_channel text, p_thread_ts text, p_instance text,
                                    OUT version integer, OUT previous integer)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pmb_report_counters AS c (channel, thread_ts, last_version)
    VALUES (p_channel, p_thread_ts, 1)
    ON CONFLICT (channel, thread_ts) DO UPDATE SET last_version = c.last_version + 1
    RETURNING c.last_version INTO version;
    INSERT INTO pmb_reports (channel, thread_ts, version, instance)
    VALUES (p_channel, p_thread_ts, version, p_instance);
    SELECT max(r.version) INTO previous FROM pmb_reports r
     WHERE r.channel = p_channel AND r.thread_ts = p_thread_ts AND r.state = 'complete'
       AND r.version < pmb_report_allocate.version;
END
$$;

-- Save an incident record whole, keeping the status updates that another instance appended since
-- this one read the record (an update is known by its ts).
CREATE FUNCTION pmb_incident_updates(r jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(r -> 'status_updates') = 'array' THEN r -> 'status_updates'
                ELSE '[]'::jsonb END
$$;

CREATE FUNCTION pmb_incident_save(p_channel text, p_thread_ts text, p_record jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pmb_incidents AS i (channel, thread_ts, record)
    VALUES (p_channel, p_thread_ts, p_record)
    ON CONFLICT (channel, thread_ts) DO UPDATE
    SET record = EXCLUDED.record || jsonb_build_object('status_updates', (
            SELECT coalesce(jsonb_agg(u ORDER BY u ->> 'ts'), '[]'::jsonb)
              FROM (SELECT DISTINCT ON (u ->> 'ts') u
                      FROM jsonb_array_elements(pmb_incident_updates(i.record)
                                                || pmb_incident_updates(EXCLUDED.record)) AS e(u)
                     ORDER BY u ->> 'ts') AS merged)),
        updated_at = now()
$$;
