-- The config's one source of truth: every key with its type, default, range and meaning. The
-- binary compiles this file in (Makefile -> build/gen/config_schema.lua.inc): core/host/boot.lua
-- validates and completes each loaded config with it, and the C core reads only resolved values
-- (core/host/config.c). README's config reference is generated from it (tools/config-doc.lua).
-- To add a setting: add its line here, read it where it is used, run `make readme`.
local schema = {}

-- A key: { name, type, default, doc, min, max, values, item, key, fields, env, env_wins, base }.
-- Types: string, number, integer, boolean, path (relative to the config file), zone, channel
-- (Slack channel id), user, usergroup, url, listen ("host:port"), template (a name under
-- templates_dir, without .mustache), enum (values), list (of item), map (key -> item),
-- record (fields), section (fields; a table of the config itself).
local function key(name, type_, default, doc, more)
  local k = more or {}
  k.name, k.type, k.default, k.doc = name, type_, default, doc
  return k
end

local function section(name, doc, fields)
  return { name = name, type = "section", doc = doc, fields = fields }
end

local WEBHOOK = {
  key("name", "string", nil, "the webhook's name in replies and logs (never its URL)"),
  key("url", "url", nil, "where the update is sent", { required = true }),
  key("headers", "map", {}, "request headers; `${NAME}` is expanded from the environment, so "
    .. "secrets stay out of the file", { key = { type = "string" }, item = { type = "string" } }),
  key("body_template", "template", "statusupdate.webhook.json",
    "the body's template (`.json` templates get `Content-Type: application/json`)"),
  key("retries", "integer", 0, "retries of 5xx and connection errors", { min = 0, max = 10 }),
  key("method", "enum", "POST", "HTTP method", { values = { "POST", "PUT", "PATCH", "GET" } }),
  key("timeout", "number", 10, "seconds", { min = 0.1, max = 300 }),
  key("allow_private", "boolean", false, "may reach a loopback, private or link-local address "
    .. "(an internal relay); refused otherwise"),
}

-- status.destinations: every entry has these keys, and its kind's (DESTINATION_KINDS) besides.
-- A kind without an entry here is a script of the operator's own (scripts/destinations/<kind>.lua);
-- its keys are checked by lib/destinations.lua against the script's `schema` when scripts load.
local DESTINATION_COMMON = {
  key("kind", "string", nil, "`slack`, `webhook`, `whatsapp`, `email`, `teams`, `statuspage` or the "
    .. "name of another `scripts/destinations/<kind>.lua`", { required = true }),
  key("name", "string", nil, "its name in replies and logs (never a URL); default: the kind and its "
    .. "place in the list"),
  key("retries", "integer", 2, "retries of 5xx answers and connection errors", { min = 0, max = 10 }),
  key("timeout", "number", 15, "seconds for one request", { min = 0.1, max = 300 }),
  key("allow_private", "boolean", false, "may reach a loopback, private or link-local address "
    .. "(an internal service); refused otherwise"),
}

local function env_name(name, doc, more)
  more = more or {}
  more.shape = "env"
  return key(name, "string", nil, doc, more)
end

-- The built-in kinds, in the order the README lists them.
schema.DESTINATION_KINDS = {
  { kind = "slack", fields = {
    key("channel", "channel", nil, "the channel id that receives the update", { required = true }),
    key("template", "template", "statusupdate.slack", "the Slack message"),
  } },
  { kind = "webhook", fields = {
    key("url", "url", nil, "where the update is sent (or `url_env`)"),
    env_name("url_env", "environment variable holding the URL, when the URL itself is a secret"),
    key("headers", "map", {}, "request headers; `${NAME}` is expanded from the environment",
      { key = { type = "string" }, item = { type = "string" } }),
    key("body_template", "template", "statusupdate.webhook.json", "the body's template"),
    key("method", "enum", "POST", "HTTP method", { values = { "POST", "PUT", "PATCH", "GET" } }),
  } },
  { kind = "whatsapp", fields = {
    key("phone_number_id", "string", nil, "the sending number's id (WhatsApp Manager → API Setup)",
      { required = true }),
    key("to", "list", {}, "recipients' phone numbers with country code, e.g. `\"+4915112345678\"`",
      { item = { type = "string" }, required = true }),
    env_name("token_env", "environment variable holding the access token (a System User token)",
      { required = true }),
    key("template", "string", nil, "the approved template's name; its body takes the parameters "
      .. "below", { required = true }),
    key("language", "string", "en_US", "the template's language code"),
    key("parameters", "list", { "headline", "title", "text", "user_name", "when" },
      "the body's {{1}}, {{2}}, … from these fields of the update (`headline`, `title`, `text`, "
      .. "`user_name`, `when`, `thread_url`, `duration`)", { item = { type = "string" } }),
    key("free_form", "boolean", false, "send plain text instead of the template (reaches only "
      .. "people who wrote to the number in the last 24 hours)"),
    key("api_url", "url", "https://graph.facebook.com/v21.0/", "the Graph API base"),
  } },
  { kind = "email", fields = {
    key("url", "string", nil, "`smtp://host:587` (STARTTLS) or `smtps://host:465`", { required = true }),
    key("from", "string", nil, "the sender address", { required = true }),
    key("to", "list", {}, "recipients", { item = { type = "string" }, required = true }),
    key("cc", "list", {}, "copies", { item = { type = "string" } }),
    env_name("username_env", "environment variable holding the SMTP user name"),
    env_name("password_env", "environment variable holding the SMTP password"),
    key("starttls", "enum", "required", "`required`: refuse to send unencrypted; `try`: use it when "
      .. "offered; `off`", { values = { "required", "try", "off" } }),
    key("subject_prefix", "string", "[status]", "put before the subject"),
  } },
  { kind = "teams", fields = {
    env_name("url_env", "environment variable holding the Workflows webhook URL (it carries a "
      .. "signature)", { required = true }),
  } },
  { kind = "statuspage", fields = {
    key("page_id", "string", nil, "the page's id (Statuspage → API info)", { required = true }),
    env_name("api_key_env", "environment variable holding the API key", { required = true }),
    key("components", "map", {}, "component id → its status while the incident is open "
      .. "(`degraded_performance`, `partial_outage`, `major_outage`); the command's words "
      .. "\"degraded\", \"partial outage\", \"major outage\" override it",
      { key = { type = "string" }, item = { type = "string" } }),
    key("impact", "enum", nil, "`impact_override` of a new incident",
      { values = { "none", "minor", "major", "critical" } }),
    key("notify", "boolean", true, "`deliver_notifications` to the page's subscribers"),
    key("api_url", "url", "https://api.statuspage.io/v1/", "the API base"),
  } },
}

-- The fields of one destination entry of kind `kind`: the common ones and its own; nil when the
-- kind is not built in.
function schema.destination_fields(kind)
  for _, k in ipairs(schema.DESTINATION_KINDS) do
    if k.kind == kind then
      local all = {}
      for _, f in ipairs(DESTINATION_COMMON) do all[#all + 1] = f end
      for _, f in ipairs(k.fields) do all[#all + 1] = f end
      return all
    end
  end
  return nil
end

schema.TREE = {
  key("scripts_dir", "path", "../scripts", "`init.lua`, `commands/`, `filters/`, `lib/`"),
  key("templates_dir", "path", "../templates", "`*.mustache`, partials in `partials/`"),
  key("data_dir", "path", "var", "reports (`reports/<channel>/<thread_ts>/vN/`) and incident "
    .. "records; without it, `var` under the directory the bot was started in",
    { env = "POSTMORTEMBOT_DATA_DIR", env_wins = true, default_base = "cwd" }),
  key("timezone", "zone", "UTC", "zone of every time in reports", { env = "TZ" }),
  key("second_timezone", "zone", nil, "a second time column in the timeline, e.g. "
    .. "`\"America/New_York\"`"),
  key("admin_channel", "channel", nil, "channel id told about failed reloads"),
  key("listen", "listen", nil, "`host:port` for `/healthz` and `/metrics`",
    { env = "POSTMORTEMBOT_LISTEN", env_wins = true }),
  key("log_level", "enum", "info", "least severe level logged",
    { values = { "debug", "info", "warn", "error" } }),
  key("workspace_url", "url", nil, "the workspace's URL (`https://acme.slack.com/`) for message "
    .. "links in `render`; the bot itself learns it from `auth.test`"),
  key("programs", "list", { "git", "rsvg-convert" }, "the programs scripts may start (`host.run`)",
    { item = { type = "string" } }),
  section("publish", "`publish`: commit reports to a Git-backed wiki", {
    key("git", "record", nil, "the wiki's repository; unset = publishing off", { fields = {
      key("url", "string", nil, "`https://…`, `git://…`, `ssh://…` or `user@host:path` (no "
        .. "password in it: the token comes from `POSTMORTEMBOT_GIT_TOKEN`)"),
      key("branch", "string", "main", "the branch commits go to"),
      key("path", "string", "postmortems/{{year}}/{{date}}-{{slug}}", "folder of a report "
        .. "(Mustache: `year`, `month`, `day`, `date`, `slug`, `channel`, `thread_ts`, `version`)"),
      key("page_url", "string", nil, "the answer's link, e.g. `https://git.example.com/ops/wiki/"
        .. "src/branch/{{branch}}/{{path}}/{{file}}` (also `page`, `commit`)"),
      key("author_name", "string", "postmortembot", "author and committer of the commits"),
      key("author_email", "string", "postmortembot@localhost", "their e-mail"),
      key("username", "string", "x-access-token", "the user name sent with the token (GitLab: "
        .. "`oauth2`)"),
      key("message", "string", "Postmortem: {{title}} (version {{version}})", "commit message"),
      key("timeout", "number", 120, "seconds per git command", { min = 1, max = 3600 }),
      key("attempts", "integer", 5, "pushes tried when others' pushes beat ours",
        { min = 1, max = 50 }),
    } }),
  }),
  section("database", "database mode: several instances share state in PostgreSQL", {
    key("url", "dburl", nil, "a libpq URI or conninfo (`postgresql://pmb@db.example.com/pmb`); "
      .. "unset = state in files under `data_dir`. No password here: it comes from `PGPASSWORD` "
      .. "or `~/.pgpass`, or with the URL in the environment", { env = "POSTMORTEMBOT_DATABASE_URL",
      env_wins = true }),
    key("ack_timeout", "number", 0.5, "seconds the ack of a request waits for its job row; then it "
      .. "is acked anyway, run here and recorded later (degraded)", { min = 0.01, max = 2.5 }),
    key("lease", "number", 10, "seconds a running job's lease lasts without renewal; another "
      .. "instance takes over a job whose lease expired", { min = 1, max = 600 }),
    key("renew", "number", 3, "seconds between lease renewals (at most half of `lease`)",
      { min = 0.1, max = 200 }),
    key("sweep", "number", 1, "seconds between looks for expired jobs (NOTIFY wakes one sooner)",
      { min = 0.1, max = 60 }),
    key("step_margin", "number", 2, "a visible step (upload, status update, message) starts only "
      .. "while the lease has this many seconds left", { min = 0, max = 60 }),
  }),
  section("http", "Slack Web API calls", {
    key("timeout", "number", 30, "seconds for one Web API call", { min = 0.1, max = 3600 }),
    key("connect_timeout", "number", 10, "seconds to connect", { min = 0.1, max = 600 }),
    key("max_concurrent", "integer", 16, "Web API calls in flight at once", { min = 1, max = 1024 }),
    key("max_retries", "integer", 5, "retries of 5xx, timeouts and connection errors (not of "
      .. "`ok:false`); 0 = none", { min = 0, max = 100 }),
    key("max_retry_time", "number", 120, "seconds after which retrying stops",
      { min = 0, max = 86400 }),
  }),
  section("downloads", "the thread's files", {
    key("max_bytes", "integer", 100 * 1024 * 1024, "a bigger file is reported, not downloaded",
      { min = 0 }),
    key("concurrency", "integer", 4, "downloads at once", { min = 1, max = 64 }),
    key("timeout", "number", 300, "seconds for one download", { min = 1, max = 86400 }),
    key("allowed_hosts", "list", { "slack.com", "*.slack.com", "slack-files.com", "*.slack-files.com" },
      "hosts that may receive the bot token (the `SLACK_API_URL` host always may)",
      { item = { type = "string" }, max_items = 32 }),
    key("allow_private", "boolean", false, "files (and the upload URL) may come from loopback, "
      .. "private, link-local or other internal addresses; refused otherwise, on every redirect"),
  }),
  section("budget", "limits of the scripts", {
    key("cpu_seconds", "number", 30, "seconds of CPU a command may use over all its time slices",
      { min = 0.01, max = 86400 }),
    key("stretch_seconds", "number", 2, "a command running this long without yielding (inside "
      .. "a C call, a metamethod, a coroutine it made) is stopped", { min = 0.01, max = 3600 }),
    key("memory_mb", "number", 256, "memory cap of one generation of scripts",
      { min = 8, max = 65536 }),
  }),
  section("socket", "the Socket Mode connection (read at start only)", {
    key("ping_interval", "number", 10, "seconds between our pings", { min = 0.1, max = 3600 }),
    key("pong_timeout", "number", 20, "no pong (or any frame) for this long: reconnect",
      { min = 0.1, max = 3600 }),
    key("close_timeout", "number", 1, "seconds a polite close may take before the socket is "
      .. "dropped", { min = 0.01, max = 60 }),
    key("max_frame", "integer", 1024 * 1024, "bytes; bigger messages are logged and skipped",
      { min = 1024, max = 256 * 1024 * 1024 }),
    key("dedupe_ttl", "number", 900, "seconds an `event_id` is remembered (Slack retries up to "
      .. "+5 min)", { min = 1, max = 86400 }),
    key("dedupe_max", "integer", 65536, "bound on remembered event ids",
      { min = 1, max = 16 * 1024 * 1024 }),
  }),
  section("report", "the postmortem", {
    key("template", "template", "postmortem.md", "template name (without `.mustache`)"),
    key("templates_by_channel", "map", {}, "another template in some channels: "
      .. "`{ C0123 = \"postmortem-short.md\" }`",
      { key = { type = "channel" }, item = { type = "template" } }),
    key("upload", "boolean", true, "upload into the thread (else only written under the data dir)"),
    key("progress_after", "number", 3, "seconds before a progress message is posted",
      { min = 0, max = 3600 }),
    section("picture", "the incident picture (`attachments/incident-timeline.svg`)", {
      key("format", "enum", "svg", "`svg`, `png` (rsvg-convert; the SVG is kept beside it), "
        .. "`both` (SVG embedded, PNG linked) or `none`", { values = { "svg", "png", "both", "none" } }),
      key("mermaid", "boolean", false, "also a Mermaid `gantt` block of the phases (GitHub, GitLab, "
        .. "Obsidian, Docusaurus render it)"),
      key("max_lanes", "integer", 12, "lanes are drawn for at most this many people",
        { min = 0, max = 100 }),
      key("buckets", "integer", 60, "about this many activity bars", { min = 1, max = 1000 }),
    }),
  }),
  section("timeline", "which messages mark what", {
    key("alert_storm_window", "number", 600, "seconds: same bot, same alert title within this is "
      .. "one entry \"× N\"", { min = 0 }),
    key("resolution_phrases", "list", { "resolved", "all clear", "incident closed" },
      "phrases that mark the resolution", { item = { type = "string" } }),
    key("mitigation_phrases", "list",
      { "mitigated", "rolled back", "rollback complete", "workaround in place" },
      "phrases that mark the mitigation", { item = { type = "string" } }),
    key("resolution_reaction", "reaction", "white_check_mark",
      "a reaction (name without colons) that marks the resolving message"),
    key("user_cache_ttl", "number", 3600, "seconds a `users.info` answer is reused", { min = 0 }),
    key("emoji", "enum", "unicode", "`unicode`: emoji as the characters Slack draws; `shortcode`: "
      .. "keep `:name:` (a workspace's custom emoji stay `:name:` either way)",
      { values = { "unicode", "shortcode" } }),
    key("key_event_reactions", "list", { "pushpin" }, "reactions (names without colons) that make "
      .. "a message a key event (pinned messages are key events too)", { item = { type = "reaction" } }),
    key("action_item_reactions", "list", { "memo", "ballot_box_with_check" }, "reactions that make "
      .. "a message an action item", { item = { type = "reaction" } }),
    key("action_item_prefixes", "list", { "TODO:", "Action:", "AI:", "Follow-up:" }, "a message "
      .. "starting with one of these (any case) is an action item", { item = { type = "string" } }),
  }),
  section("channel", "channel reports (`autopsy this` outside a thread, `autopsy since`/`last`)", {
    key("max_messages", "integer", 20000, "at most this many channel messages are read (the newest); "
      .. "past it the report is marked incomplete", { min = 1 }),
    key("max_read_seconds", "number", 1800, "reading stops after this many seconds (a channel under "
      .. "the 15-a-page limits reads slowly); past it the report is marked incomplete", { min = 1 }),
  }),
  section("status", "`statusupdate` and the broadcasts of `incident start` / `resolve`", {
    key("channels", "list", {}, "channel ids that receive status updates",
      { item = { type = "channel" } }),
    key("allow_mentions", "boolean", false, "relay `@channel`, `@here`, `@everyone`, user group "
      .. "and user mentions typed in an update as live mentions; by default they go out as text"),
    key("broadcasters", "record", nil, "who may broadcast; both empty = everyone", { fields = {
      key("users", "list", {}, "user ids (`U…`)", { item = { type = "user" } }),
      key("usergroups", "list", {}, "user group ids (`S…`)", { item = { type = "usergroup" } }),
    } }),
    key("template", "template", "statusupdate.slack", "the Slack message of an update"),
    key("webhooks", "list", {}, "outgoing webhooks (a WhatsApp bridge, say), each a table:",
      { item = { type = "record", fields = WEBHOOK } }),
    key("destinations", "list", {}, "where else updates go (README: Reaching people outside "
      .. "Slack), each a table with a `kind`:", { item = { type = "destination" } }),
  }),
  section("incident", "`incident start` / `incident resolve`", {
    key("channel", "channel", nil, "where `incident start` posts (default: where it is typed)"),
    key("runbook_url", "url", nil, "linked from the incident's root message"),
    key("template", "template", "incident.start.slack", "the root message"),
    key("first_status_update", "boolean", true, "`incident start` also broadcasts"),
  }),
}

-- ---- checking one value ----

local SHAPES = {
  channel = { "^[CGD][A-Z0-9]+$", "a channel id like \"C0123ABCD\"" },
  user = { "^[UW][A-Z0-9]+$", "a user id like \"U0123ABCD\"" },
  usergroup = { "^S[A-Z0-9]+$", "a user group id like \"S0123ABCD\"" },
  reaction = { "^[%w_+%-']+$", "a reaction name without colons, like \"white_check_mark\"" },
}

local DESCRIPTIONS = {
  path = "a path", zone = "a time zone name like \"Europe/Berlin\"",
  url = "an http:// or https:// URL",
  dburl = "a libpq URI (postgresql://…) or conninfo (host=… dbname=…)", listen = "\"host:port\" (like \"127.0.0.1:9102\")",
  template = "a template name like \"postmortem.md\"",
}

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggestion(name, fields)
  local best, best_d
  for _, f in ipairs(fields) do
    local lower = name:lower()
    local d = distance(lower, f.name)
    -- "retry" for "retries": a shared start of 4+ letters counts as close
    if #lower >= 4 and f.name:sub(1, #lower - 1) == lower:sub(1, -2) then d = math.min(d, 1) end
    if d <= math.max(2, #f.name // 3) and (not best_d or d < best_d) then best, best_d = f.name, d end
  end
  return best
end

local check_value

local function check_fields(tbl, fields, path, ctx)
  local known = {}
  for _, f in ipairs(fields) do known[f.name] = f end
  local unknown = {}
  for k in pairs(tbl) do
    if type(k) ~= "string" then
      ctx.errors[#ctx.errors + 1] = path .. ": " .. show(k) .. " is not a key (this table takes "
        .. "named keys only)"
    elseif not known[k] then
      unknown[#unknown + 1] = k
    end
  end
  table.sort(unknown)
  for _, k in ipairs(unknown) do
    local near = suggestion(k, fields)
    ctx.errors[#ctx.errors + 1] = path .. k .. " is not a known key"
      .. (near and (" (did you mean " .. path .. near .. "?)") or "")
  end
  for _, f in ipairs(fields) do
    local v = tbl[f.name]
    if v == nil and f.required then
      ctx.errors[#ctx.errors + 1] = path .. f.name .. " is required"
    elseif v ~= nil then
      check_value(v, f, path .. f.name, ctx)
    end
  end
end

check_value = function(v, spec, path, ctx)
  local t = spec.type
  local function bad(what)
    ctx.errors[#ctx.errors + 1] = path .. " must be " .. what .. ", not " .. show(v)
  end
  if t == "destination" then
    if type(v) ~= "table" then return bad("a table { kind = \"…\", … }") end
    if type(v.kind) ~= "string" then
      ctx.errors[#ctx.errors + 1] = path .. ".kind is required (a string: \"slack\", \"webhook\", "
        .. "\"whatsapp\", \"email\", \"teams\", \"statuspage\", …)"
      return
    end
    local fields = schema.destination_fields(v.kind)
    if fields then return check_fields(v, fields, path .. ".", ctx) end
    -- another script's kind: only the common keys here, the rest against its own schema later
    for _, f in ipairs(DESTINATION_COMMON) do
      if v[f.name] ~= nil then check_value(v[f.name], f, path .. "." .. f.name, ctx) end
    end
    return
  end
  if spec.shape == "env" and type(v) == "string" and not v:match("^[%a_][%w_]*$") then
    return bad("the name of an environment variable (letters, digits, _)")
  end
  if t == "section" or t == "record" then
    if type(v) ~= "table" then return bad("a table") end
    return check_fields(v, spec.fields, path .. ".", ctx)
  elseif t == "list" then
    if type(v) ~= "table" or not is_array(v) then return bad("a list { … }") end
    if spec.max_items and #v > spec.max_items then
      ctx.errors[#ctx.errors + 1] = path .. " may hold at most " .. spec.max_items .. " entries"
    end
    for i, x in ipairs(v) do check_value(x, spec.item, path .. "[" .. i .. "]", ctx) end
  elseif t == "map" then
    if type(v) ~= "table" then return bad("a table { key = value }") end
    for k, x in pairs(v) do
      check_value(k, spec.key, path .. " key " .. show(k), ctx)
      check_value(x, spec.item, path .. "." .. tostring(k), ctx)
    end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return bad("true or false") end
  elseif t == "number" or t == "integer" then
    if type(v) ~= "number" or v ~= v then return bad("a number") end
    if t == "integer" and math.type(v) ~= "integer" and v ~= math.floor(v) then
      return bad("a whole number")
    end
    if spec.min and v < spec.min then return bad("at least " .. spec.min) end
    if spec.max and v > spec.max then return bad("at most " .. spec.max) end
  else
    if type(v) ~= "string" then
      return bad(SHAPES[t] and SHAPES[t][2] or DESCRIPTIONS[t] or "a string")
    end
    if t == "enum" then
      for _, ok in ipairs(spec.values) do if v == ok then return end end
      bad("one of " .. table.concat(spec.values, ", "))
    elseif t == "path" then
      if v == "" then bad("a path") end
    elseif SHAPES[t] then
      if not v:match(SHAPES[t][1]) then bad(SHAPES[t][2]) end
    elseif t == "url" then
      if not v:match("^https?://[%w%.%-%[%]:]+[:/]?") or v:find("%s") then bad(DESCRIPTIONS.url) end
    elseif t == "dburl" then
      -- the value is never shown: from the environment it may hold a password
      if not (v:match("^postgres") or v:match("=")) or v:find("[\r\n]") then
        ctx.errors[#ctx.errors + 1] = path .. " must be " .. DESCRIPTIONS.dburl
      end
    elseif t == "listen" then
      local port = v:match("^[%w%.%-%[%]:]*:(%d+)$")
      if not port or tonumber(port) < 1 or tonumber(port) > 65535 then
        bad(DESCRIPTIONS.listen)
      end
    elseif t == "zone" then
      if ctx.valid_zone and not ctx.valid_zone(v) then
        bad("a known time zone (see /usr/share/zoneinfo)")
      end
    elseif t == "template" then
      if ctx.templates and ctx.templates[v] == nil then
        ctx.errors[#ctx.errors + 1] = path .. " names the template " .. show(v)
          .. ", which is not in templates_dir (no " .. v .. ".mustache)"
      end
    end
  end
end

-- The problems of one table against a list of fields (a destination script's own schema), each
-- named from `path` ("status.destinations[2].").
function schema.check(tbl, fields, path)
  local ctx = { errors = {} }
  if type(tbl) ~= "table" then return { path .. " must be a table" } end
  check_fields(tbl, fields, path, ctx)
  return ctx.errors
end

-- ---- defaults ----

local function copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x) end
  return c
end

local function fill(tbl, fields)
  for _, f in ipairs(fields) do
    local v = tbl[f.name]
    if v == nil and (f.type == "section" or (f.type == "record" and f.default == nil)) then
      v = {}
      tbl[f.name] = v
    elseif v == nil then
      tbl[f.name] = copy(f.default)
    end
    if type(v) == "table" and f.fields then fill(v, f.fields) end
    if type(v) == "table" and f.type == "list" and f.item.fields then
      for _, x in ipairs(v) do if type(x) == "table" then fill(x, f.item.fields) end end
    end
    if type(v) == "table" and f.type == "list" and f.item.type == "destination" then
      for _, x in ipairs(v) do
        local kind_fields = type(x) == "table" and schema.destination_fields(x.kind)
        if kind_fields then fill(x, kind_fields) end
      end
    end
  end
end

-- A table holding every default (sections included), as a config with no keys would resolve.
function schema.defaults()
  local t = {}
  fill(t, schema.TREE)
  return t
end

local function join(dir, p)
  if p:sub(1, 1) == "/" then return p end
  return dir .. "/" .. p
end

-- Checks `cfg` (what the config file returned) and completes it in place: defaults filled, the
-- environment applied, paths made absolute. ctx: { getenv = fn, cwd, config_dir, valid_zone = fn,
-- templates = { name = source } | nil }. Returns cfg, or nil and the list of problems.
function schema.resolve(cfg, ctx)
  ctx = ctx or {}
  local errors = {}
  if type(cfg) ~= "table" then
    return nil, { "the file must return a table (return { … }), not " .. show(cfg) }
  end
  local vctx = { errors = errors, valid_zone = ctx.valid_zone, templates = ctx.templates }
  local from_env = {}
  -- a password may come from the environment, never from the file (checked before the
  -- environment replaces the file's value)
  local file_url = type(cfg.database) == "table" and cfg.database.url
  if type(file_url) == "string" and (file_url:match("^postgres[%w]*://[^/@]*:[^/@]*@")
      or file_url:match("password%s*=") or file_url:match("[?&]password=")) then
    errors[#errors + 1] = "database.url holds a password: put it in PGPASSWORD or ~/.pgpass (or the "
      .. "whole URL in POSTMORTEMBOT_DATABASE_URL), not in the config file"
  end
  -- a section's keys may come from the environment too (database.url)
  for _, sec in ipairs(schema.TREE) do
    for _, f in ipairs(sec.type == "section" and sec.fields or {}) do
      local env = f.env and ctx.getenv and ctx.getenv(f.env)
      if env and env ~= "" and (f.env_wins or type(cfg[sec.name]) ~= "table"
          or cfg[sec.name][f.name] == nil) then
        if cfg[sec.name] == nil then cfg[sec.name] = {} end
        if type(cfg[sec.name]) == "table" then
          cfg[sec.name][f.name] = env
        end
      end
    end
  end
  for _, f in ipairs(schema.TREE) do
    local env = f.env and ctx.getenv and ctx.getenv(f.env)
    if f.env == "TZ" and env then env = env:gsub("^:", "") end
    if env and env ~= "" and (f.env_wins or cfg[f.name] == nil) then
      check_value(env, f, f.name .. " (from " .. f.env .. ")", vctx)
      cfg[f.name] = env
      from_env[f.name] = true
    end
  end
  check_fields(cfg, schema.TREE, "", vctx)
  if #errors > 0 then return nil, errors end
  local given = {}
  for _, f in ipairs(schema.TREE) do given[f.name] = cfg[f.name] ~= nil end
  fill(cfg, schema.TREE)
  -- a lease renewed less often than twice in its life would lapse on one slow renewal
  local db = cfg.database
  if db.renew * 2 > db.lease or db.step_margin >= db.lease then
    return nil, { string.format("database.renew (%g) must be at most half of database.lease (%g), "
      .. "and database.step_margin (%g) less than it", db.renew, db.lease, db.step_margin) }
  end
  for _, f in ipairs(schema.TREE) do
    if f.type == "path" then
      local base = ctx.config_dir or "."
      if from_env[f.name] or (not given[f.name] and f.default_base == "cwd") then
        base = ctx.cwd or "."
      end
      cfg[f.name] = join(base, cfg[f.name])
    end
  end
  return cfg
end

-- The template names the config refers to, checked against the loaded templates: a list of
-- problems (empty when all exist). cfg must be resolved already.
function schema.check_templates(cfg, templates)
  local errors = {}
  check_fields(cfg, schema.TREE, "", { errors = errors, templates = templates })
  return errors
end

-- ---- the reference in README.md ----

local function default_text(f)
  local d = f.default
  if f.required then return "required" end
  if f.env and f.env_wins then
    return (d ~= nil and ("`" .. show(d) .. "`") or "none") .. "; `" .. f.env .. "` wins"
  end
  if f.env then return "`" .. show(d) .. "` (else `" .. f.env .. "`)" end
  if d == nil then return "none" end
  if type(d) == "table" then
    if next(d) == nil then return "`{}`" end
    local parts = {}
    for _, x in ipairs(d) do parts[#parts + 1] = show(x) end
    return "`{ " .. table.concat(parts, ", ") .. " }`"
  end
  return "`" .. show(d) .. "`"
end

local function type_text(f)
  if f.type == "enum" then return table.concat(f.values, " \\| ") end
  if f.type == "list" then
    local tables = f.item.type == "record" or f.item.type == "destination"
    return "list of " .. (tables and "tables" or f.item.type)
  end
  if f.type == "map" then return "table " .. f.key.type .. " → " .. f.item.type end
  local range = ""
  if f.min and f.max then range = " " .. f.min .. "–" .. f.max
  elseif f.min then range = " ≥ " .. f.min end
  return f.type .. range
end

local function rows(out, fields, prefix)
  for _, f in ipairs(fields) do
    if f.type == "section" then
      rows(out, f.fields, prefix .. f.name .. ".")
    else
      out[#out + 1] = "| `" .. prefix .. f.name .. "` | " .. type_text(f) .. " | "
        .. default_text(f) .. " | " .. f.doc .. " |"
      if f.fields then rows(out, f.fields, prefix .. f.name .. ".") end
      if f.item and f.item.fields then rows(out, f.item.fields, prefix .. f.name .. "[i].") end
      if f.item and f.item.type == "destination" then
        rows(out, DESTINATION_COMMON, prefix .. f.name .. "[i].")
        for _, k in ipairs(schema.DESTINATION_KINDS) do
          out[#out + 1] = "| `kind = \"" .. k.kind .. "\"` | | | |"
          rows(out, k.fields, prefix .. f.name .. "[i].")
        end
      end
    end
  end
end

-- The Markdown table of every key, as README.md holds it between its config-reference markers.
function schema.reference()
  local out = { "| key | type | default | meaning |", "| --- | --- | --- | --- |" }
  rows(out, schema.TREE, "")
  return table.concat(out, "\n") .. "\n"
end

-- Every key's dotted name (webhook fields as status.webhooks[i].name), in order.
function schema.key_names()
  local names = {}
  local function walk(fields, prefix)
    for _, f in ipairs(fields) do
      names[#names + 1] = prefix .. f.name
      if f.fields then walk(f.fields, prefix .. f.name .. ".") end
      if f.item and f.item.fields then walk(f.item.fields, prefix .. f.name .. "[i].") end
      if f.item and f.item.type == "destination" then
        walk(DESTINATION_COMMON, prefix .. f.name .. "[i].")
        for _, k in ipairs(schema.DESTINATION_KINDS) do walk(k.fields, prefix .. f.name .. "[i].") end
      end
    end
  end
  walk(schema.TREE, "")
  return names
end

return schema
