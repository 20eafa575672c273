-- postmortembot configuration (Lua). Every key is optional; the defaults are shown. The full list,
-- with types and ranges, is scripts/lib/config_schema.lua (and README's table made from it): a key
-- it does not know, a wrong type, an unknown template or zone is refused by `check` and by a
-- reload. Relative paths are relative to this file. Reloaded on SIGHUP with everything else: a
-- broken edit keeps the old config running and logs the error. Check an edit with
--   bin/postmortembot check -c config/postmortembot.lua
return {
  scripts_dir   = "../scripts",     -- commands/, filters/, lib/, init.lua
  templates_dir = "../templates",   -- *.mustache (partials in partials/)
  data_dir      = "../var",         -- reports and incident records; POSTMORTEMBOT_DATA_DIR wins
  timezone      = nil,              -- zone of every time in reports, e.g. "Europe/Berlin"; nil: TZ, else UTC
  second_timezone = nil,            -- e.g. "America/New_York": a second time column in the timeline
  admin_channel = nil,              -- channel id that hears about failed reloads, e.g. "C0ADMIN"
  listen        = nil,              -- "127.0.0.1:9102": /healthz and /metrics; POSTMORTEMBOT_LISTEN wins
  log_level     = "info",           -- debug, info, warn, error
  workspace_url = nil,              -- "https://acme.slack.com/": message links in `render` (the bot asks Slack)

  -- database mode (several instances, state in PostgreSQL; README "High availability"):
  -- database = { url = "postgresql://pmb@db.example.com/pmb" },  -- no password here: PGPASSWORD,
  --                                     ~/.pgpass, or the whole URL in POSTMORTEMBOT_DATABASE_URL
  -- database = {
  --   ack_timeout = 0.5,  -- seconds an ack waits for its job row; then acked, run here (degraded)
  --   lease       = 10,   -- seconds a running job's lease lasts; then another instance takes over
  --   renew       = 3,    -- seconds between lease renewals
  --   sweep       = 1,    -- seconds between looks for expired jobs (NOTIFY wakes one sooner)
  --   step_margin = 2,    -- a visible step starts only with this much lease left
  -- },

  http = {
    timeout         = 30,    -- seconds for one Web API call
    connect_timeout = 10,
    max_concurrent  = 16,    -- Web API calls in flight at once
    max_retries     = 5,     -- for 5xx, timeouts and connection errors (not for ok:false)
    max_retry_time  = 120,   -- seconds: give up retrying after this long
  },

  downloads = {
    max_bytes   = 100 * 1024 * 1024,  -- a file larger than this is reported, not downloaded
    concurrency = 4,
    timeout     = 300,
    -- hosts that may receive the bot token (the SLACK_API_URL host is always added)
    allowed_hosts = { "slack.com", "*.slack.com", "slack-files.com", "*.slack-files.com" },
    allow_private = false,             -- true lets files come from loopback/private/link-local addresses
  },

  budget = {
    cpu_seconds     = 30,   -- CPU seconds a command may use over all its time slices
    stretch_seconds = 2,    -- one stretch that cannot yield (a C call, a metamethod) may run this long
    memory_mb       = 256,  -- per generation of scripts
  },

  socket = {
    ping_interval = 10,   -- seconds between our pings
    pong_timeout  = 20,   -- no pong (or any frame) for this long: reconnect
    close_timeout = 1,    -- seconds a polite close may take before the socket is dropped
    max_frame     = 1048576,  -- bytes; bigger messages are logged and skipped
    dedupe_ttl    = 900,  -- seconds an event_id is remembered (Slack retries up to +5 min)
    dedupe_max    = 65536,    -- bound on remembered event ids
  },

  report = {
    template = "postmortem.md",        -- name under templates_dir, without .mustache
    templates_by_channel = {},         -- { C0123 = "postmortem-short.md" }
    upload = true,                     -- upload the .md and .zip into the thread
    progress_after = 3,                -- seconds before a progress message is posted
    picture = {
      format = "svg",                  -- attachments/incident-timeline.svg; "png", "both" or "none"
      mermaid = false,                 -- also a Mermaid gantt block of the phases
      max_lanes = 12,                  -- lanes of the people who spoke, when at most this many
      buckets = 60,                    -- about this many activity bars
    },
  },

  -- Publishing to a Git-backed wiki (`publish`, `autopsy this and publish`). Credentials come from
  -- the environment only: POSTMORTEMBOT_GIT_TOKEN (HTTPS) or POSTMORTEMBOT_GIT_SSH_KEY (a key file).
  publish = {
    git = nil,
    -- git = {
    --   url = "https://git.example.com/ops/wiki.git",
    --   branch = "main",
    --   path = "postmortems/{{year}}/{{date}}-{{slug}}",
    --   page_url = "https://git.example.com/ops/wiki/src/branch/main/{{path}}/{{file}}",
    --   author_name = "postmortembot", author_email = "postmortembot@example.com",
    --   username = "x-access-token",    -- sent with the token (GitLab: "oauth2")
    --   message = "Postmortem: {{title}} (version {{version}})",
    --   timeout = 120,                  -- seconds per git command
    --   attempts = 5,                   -- pushes tried when others' pushes beat ours
    -- },
  },
  programs = { "git", "rsvg-convert" }, -- what scripts may start (host.run)

  timeline = {
    alert_storm_window = 600,          -- seconds: same bot + same title within this collapse
    resolution_phrases = { "resolved", "all clear", "incident closed" },
    mitigation_phrases = { "mitigated", "rolled back", "rollback complete", "workaround in place" },
    resolution_reaction = "white_check_mark",
    user_cache_ttl = 3600,             -- seconds a users.info (and usergroups.list) answer is reused
    emoji = "unicode",                 -- :tada: as the character; "shortcode" keeps :tada: (custom emoji always stay :name:)
    key_event_reactions = { "pushpin" },           -- a key event (pinned messages are too)
    action_item_reactions = { "memo", "ballot_box_with_check" }, -- an action item
    action_item_prefixes = { "TODO:", "Action:", "AI:", "Follow-up:" }, -- ... or a message starting so
  },

  -- channel reports: `autopsy this` outside a thread, `autopsy since 14:05`, `autopsy last 2h`
  channel = {
    max_messages = 20000,              -- the newest this many are read; past it the report says incomplete
    max_read_seconds = 1800,           -- reading stops after this long (15-a-page apps read slowly)
  },

  status = {
    channels = {},                     -- channel ids that receive status updates, e.g. { "C0STATUS" }
    allow_mentions = false,            -- true relays typed @channel/@here/@group/@user as live mentions
    -- who may broadcast: user ids and/or user group ids (S...). Empty both = everyone.
    broadcasters = { users = {}, usergroups = {} },
    template = "statusupdate.slack",   -- templates/statusupdate.slack.mustache
    webhooks = {
      -- A generic JSON relay (a WhatsApp bridge, say). Headers may name environment variables
      -- as ${NAME}; the secret stays in the environment, never in this file.
      -- {
      --   name = "whatsapp-bridge",
      --   url = "https://relay.example.com/whatsapp/send",
      --   headers = { ["Authorization"] = "Bearer ${WHATSAPP_BRIDGE_TOKEN}",
      --               ["Content-Type"] = "application/json" },
      --   body_template = "statusupdate.webhook.json",  -- Content-Type application/json is added for .json
      --   retries = 3,        -- 5xx and connection errors are retried this many times
      --   method = "POST",    -- default POST
      --   timeout = 10,       -- seconds
      --   allow_private = false,  -- true for an internal relay (loopback, a private range)
      -- },
    },
    -- More destinations, one table each with a `kind` (scripts/destinations/<kind>.lua); every
    -- kind also takes name, retries (default 2), timeout and allow_private (an internal service). Secrets come from environment
    -- variables named here (*_env), never from this file. README: "Reaching people outside Slack".
    destinations = {
      -- { kind = "slack", channel = "C0STATUS", template = "statusupdate.slack" },
      -- { kind = "webhook", name = "relay", url = "https://relay.example.com/hook", -- or url_env
      --   headers = {}, body_template = "statusupdate.webhook.json", method = "POST" },
      -- { kind = "whatsapp", name = "company group", phone_number_id = "106540352242922",
      --   to = { "+4915112345678" }, token_env = "WHATSAPP_TOKEN", template = "outage_update",
      --   language = "en_US", parameters = { "headline", "title", "text", "user_name", "when" },
      --   free_form = false, api_url = "https://graph.facebook.com/v21.0/" },
      -- { kind = "email", name = "ops list", url = "smtp://mail.example.com:587",
      --   from = "Status <status@example.com>", to = { "ops@example.com" }, cc = {},
      --   username_env = "SMTP_USER", password_env = "SMTP_PASSWORD", starttls = "required",
      --   subject_prefix = "[status]", retries = 2, timeout = 15 },
      -- { kind = "teams", name = "ops channel", url_env = "TEAMS_WORKFLOW_URL" },
      -- { kind = "statuspage", name = "public page", page_id = "kctbh9vrtdwd",
      --   api_key_env = "STATUSPAGE_API_KEY", components = { ["8kbf7d35c070"] = "major_outage" },
      --   impact = "major", notify = true, api_url = "https://api.statuspage.io/v1/" },
    },
  },

  incident = {
    channel = nil,                     -- channel id where `incident start` posts the root message
    runbook_url = nil,                 -- linked from the incident's root message
    template = "incident.start.slack",
    first_status_update = true,        -- `incident start` also broadcasts a first status update
  },
}
