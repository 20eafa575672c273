-- `@postmortembot autopsy this` (or just `autopsy`): in a thread, reads that thread; outside one,
-- the channel (a new thread under the command gets the report); `since …` / `last …` a window of
-- the channel; `autopsy <thread link>` the linked thread, answered where it was asked (a DM too).
-- Writes data_dir/reports/<channel>/<key>/vN/, uploads the .md and .zip, shows progress (hourglass
-- reaction, a message it updates) and says what failed and what to do. Calls lib/autopsy_scope.lua,
-- lib/timeline.lua (collect, collect_channel), lib/bundle.lua (zip_start, write), lib/upload.lua,
-- lib/incidents.lua.
local host = require "host"
local timeline_lib = require "lib.timeline"
local bundle = require "lib.bundle"
local upload = require "lib.upload"
local scope_lib = require "lib.autopsy_scope"
local incidents = require "lib.incidents"

local WORKING, DONE, FAILED = "hourglass_flowing_sand", "white_check_mark", "x"

-- The words after each progress stage's count (lib/timeline.lua's stages; an unknown stage shows
-- as its own name).
local STAGE_WORDS = {
  messages = "messages read",
  people = "names looked up",
  files = "files downloaded",
  pages = "pages read",
  threads = "threads read",
}

-- What to tell the thread for an error (a host err table or a Lua error string).
local function advice(err)
  if type(err) ~= "table" then
    return "something broke inside the bot (" .. tostring(err) .. "). The details are in its log."
  end
  local code = tostring(err.code)
  if code == "not_in_channel" or code == "channel_not_found" then
    return "I am not a member of this channel. Invite me with `/invite @postmortembot` and ask again."
  elseif code == "missing_scope" then
    return "the Slack app lacks the scope `" .. tostring(err.needed or "?") .. "`. Add it under OAuth & "
      .. "Permissions, reinstall the app, and ask again."
  elseif code == "invalid_auth" or code == "not_authed" or code == "token_revoked"
      or code == "token_expired" or code == "account_inactive" then
    return "Slack rejected the bot's token (`" .. code .. "`). The bot's operator must check SLACK_BOT_TOKEN."
  elseif code == "ratelimited" then
    return "Slack kept rate-limiting me. Try again in a few minutes."
  elseif code == "thread_not_found" then
    return "Slack cannot find this thread. Ask again in the thread itself."
  elseif code == "timeout" or code == "connect" or code == "http_status" or code == "upload_failed" then
    return "I could not reach Slack (`" .. code .. "`: " .. tostring(err.message or "") .. "). Try again in a few minutes."
  end
  return "`" .. code .. "`: " .. tostring(err.message or "") .. ". The details are in the bot's log."
end

-- Progress reporting: a message posted once the work takes longer than report.progress_after
-- seconds, then updated (at most once a second) as the collector reports stages.
local function progress_reporter(ctx)
  local report_cfg = (ctx.config or {}).report or {}
  local after = tonumber(report_cfg.progress_after) or 3
  local started = host.monotonic()
  local state = { counts = {}, order = {}, last_update = 0 }

  local function text(prefix)
    local parts = {}
    for _, stage in ipairs(state.order) do
      local c = state.counts[stage]
      local words = STAGE_WORDS[stage] or stage
      if stage == "small" then
        parts[#parts + 1] = words
      elseif c.total then
        parts[#parts + 1] = string.format("%d/%d %s", c.n, c.total, words)
      else
        parts[#parts + 1] = string.format("%d %s", c.n, words)
      end
    end
    local body = #parts > 0 and (": " .. table.concat(parts, ", ")) or ""
    return prefix .. body
  end

  function state.progress(stage, n, total, small_pages)
    if small_pages and not state.small then
      state.small = true
      state.order[#state.order + 1] = "small"
      state.counts.small = { n = 0 }
      STAGE_WORDS.small = "(Slack gives this app 15 messages a page: a long channel takes minutes)"
    end
    if not state.counts[stage] then state.order[#state.order + 1] = stage end
    state.counts[stage] = { n = tonumber(n) or 0, total = tonumber(total) }
    local now = host.monotonic()
    if now - started < after then return end
    -- stages report from several coroutines at once (the downloads run beside the reading): one
    -- posts the message, the others wait for its ts rather than post a second one
    if state.posting then return end
    if not state.ts then
      state.posting = true
      state.ts = ctx.reply(text(":hourglass_flowing_sand: Working on the postmortem"))
      state.posting = false
      state.last_update = now
    elseif now - state.last_update >= 1 then
      state.last_update = now
      ctx.update(state.ts, text(":hourglass_flowing_sand: Working on the postmortem"))
    end
  end

  function state.finish(ok)
    if not state.ts then return end
    if ok then
      ctx.update(state.ts, text(":white_check_mark: Postmortem done"))
    else
      ctx.update(state.ts, text(":x: Postmortem failed"))
    end
  end

  return state
end

-- The ts of the latest incident started in this channel (lib/incidents.lua records), or nil: a
-- channel report starts there rather than at the channel's first message.
local function incident_start(channel)
  local latest
  for _, name in ipairs(host.list_dir(incidents.dir()) or {}) do
    local ts = name:match("^" .. channel .. "%-(%d+%.%d+)%.json$")
    if ts and (not latest or tonumber(ts) > tonumber(latest)) then latest = ts end
  end
  return latest
end

local function slack_ts(epoch)
  return epoch and string.format("%.6f", epoch) or nil
end

-- What to read, where to keep it and where to answer, for a parsed scope (lib/autopsy_scope.lua).
local function plan_of(ctx, scope)
  if scope.kind == "thread" then
    return { channel = ctx.channel, key = ctx.thread_ts, what = "reading the thread",
             read = function(opts) return timeline_lib.collect(ctx, opts) end }
  elseif scope.kind == "link" then
    local linked = setmetatable({ channel = scope.channel, thread_ts = scope.thread_ts, ts = false },
                                { __index = ctx })
    return { channel = scope.channel, key = scope.thread_ts, what = "reading the linked thread",
             note = "Postmortem of the thread " .. scope.url,
             read = function(opts) return timeline_lib.collect(linked, opts) end }
  end
  local channel = scope.channel or ctx.channel
  local in_channel = setmetatable({ channel = channel }, { __index = ctx })
  local oldest = slack_ts(scope.oldest)
  local root = not oldest and incident_start(channel) or nil
  oldest = oldest or root
  return { channel = channel, key = "channel-" .. (oldest or "all"), what = "reading the channel",
           note = scope.kind == "window" and ("Channel report, " .. scope.label)
             or (root and "Channel report since the incident started") or "Channel report of the whole channel",
           read = function(opts)
             opts.oldest, opts.thread_ts = oldest, root
             return timeline_lib.collect_channel(in_channel, opts)
           end }
end

-- One report of a thread (or of a channel's window) at a time in this process: a version is
-- numbered "last complete + 1" (lib/store_files.lua), so a second request while the first is
-- being made would write into the same folder. making[key] is the coroutine making that report:
-- build_and_upload runs in a coroutine of its own (run's host.all), which is dead once it has
-- returned, raised or been stopped, so a turn is never left taken. Weak values: a finished report's
-- coroutine is collected and its key goes with it (one key per thread ever reported would stay).
local making = setmetatable({}, { __mode = "v" })
local function take_turn(key)
  local me = coroutine.running()
  local holder = making[key]
  while holder and holder ~= me and coroutine.status(holder) ~= "dead" do
    host.sleep(0.05)
    holder = making[key]
  end
  making[key] = me
end

-- The work: returns a short description of what was done, or raises / returns nil, err, stage.
local function build_and_upload(ctx, progress, plan)
  take_turn(plan.channel .. "\n" .. plan.key)
  local build_started = host.monotonic()
  local slot = bundle.prepare(plan.channel, plan.key)
  -- the zip takes each kept attachment as its download ends: after the last one only the .md and
  -- the zip's directory are left to write
  local zip = bundle.zip_start(slot)
  local collected = false
  -- the .md; timeline.json (what makes the folder a version) is written beside the upload, below,
  -- and the zip is finished there too: the .md goes up meanwhile
  local function render(t)
    progress.progress("report", 1, 1)
    if not collected then
      collected = true
      -- the messages as read are garbage now: collected before the render allocates (a big thread)
      timeline_lib.collect_messages(t.fetched or #(t.entries or {}))
    end
    return bundle.write(t, slot, { json = false, zip_stream = zip, defer_zip = true })
  end
  -- rendered while the last downloads are on the wire, kept if they ended as announced
  local ahead, ahead_unchanged
  local timeline, err = plan.read({ out_dir = slot.dir, progress = progress.progress,
                                    on_file = zip and zip.add,
                                    ahead = function(t, unchanged)
                                      ahead, ahead_unchanged = render(t), unchanged
                                    end })
  if not timeline then
    if zip then zip.abort() end
    return nil, err, plan.what
  end
  local written
  if ahead and ahead_unchanged() then
    written = ahead
  else
    written, err = render(timeline)
  end
  if not written then
    if zip then zip.abort() end
    return nil, err, "writing the report"
  end
  host.observe("pmb_report_build_seconds", host.monotonic() - build_started)
  ctx.log("info", "report written", { path = written.md_path, version = slot.version,
                                      entries = written.view.counts.entries,
                                      rendered = written == ahead and "beside the last downloads" or "after the downloads" })

  -- the upload's comment, with what changed since the previous version (made beside the upload:
  -- it is needed only to share the files)
  local function make_comment()
    local changes_text
    if slot.previous then
      local changes = bundle.changes(bundle.previous_digest(slot), timeline)
      changes_text = bundle.changes_text(slot.version, slot.previous, changes)
    end
    local text = upload.summary(written.view, changes_text)
    if plan.note then
      local extra = ""
      if timeline.scope == "channel" then
        extra = string.format(" (%d messages, %d threads%s)", timeline.fetched or 0, timeline.threads or 0,
          timeline.complete == false and "; *incomplete*: see the report's top" or "")
      end
      text = plan.note .. extra .. ".\n" .. text
    end
    return text
  end
  local report_cfg = (ctx.config or {}).report or {}
  if report_cfg.upload == false then
    local zip_done, zip_done_err = written.finish_zip()
    if not zip_done then return nil, zip_done_err, "writing the report" end
    local saved, save_err = bundle.complete(timeline, slot, written)
    if not saved then return nil, save_err, "writing the report" end
    ctx.reply(make_comment() .. "\nSaved as `" .. written.md_path .. "` (uploads are off in the config).")
    return written
  end
  local title = written.view.title
  -- Four things side by side: the .md goes up; the zip is finished, then goes up; the comment is
  -- made; timeline.json is written (a batch of entries at a time: the uploads' steps get the
  -- thread between its time slices). Whichever ends last of what a step needs does that step: the
  -- version's completion (timeline.json put in place once the zip is there: a version is complete
  -- only with its zip), then the share (both files, the comment, and the version complete or
  -- failed: a report seen in the thread is a version the next one compares with).
  local md_id, md_err, zip_id, zip_err, zipped, zip_failed, comment_text
  local job, job_err, completed, complete_err
  local shared, share_err, share_tried
  local function share_when_ready()
    if share_tried or not (md_id and zip_id and comment_text) or completed == nil then return end
    share_tried = true
    shared, share_err = upload.share(ctx.channel, ctx.thread_ts, {
      { id = md_id, title = "Postmortem: " .. title },
      { id = zip_id, title = "Postmortem bundle: " .. title },
    }, comment_text)
  end
  local function complete_when_ready()
    if zipped and job and completed == nil then
      completed, complete_err = job.finish(written)
      completed = completed or false
      share_when_ready()
    end
  end
  local done = host.all({
    function()
      md_id, md_err = upload.send({ path = written.md_path, filename = written.md_name })
      share_when_ready()
    end,
    function()
      zipped, zip_failed = written.finish_zip()
      if not zipped then return end
      complete_when_ready()
      zip_id, zip_err = upload.send({ path = written.zip_path, filename = written.zip_name })
      share_when_ready()
    end,
    -- (these two first let the loop send the uploads' first requests: they take the thread)
    function()
      host.sleep(0)
      comment_text = make_comment()
      share_when_ready()
    end,
    function()
      host.sleep(0)
      job, job_err = bundle.complete_begin(timeline, slot)
      if not job then completed = false end -- (the share goes on; the command then says why)
      complete_when_ready()
      share_when_ready()
    end,
  })
  if job and completed == nil then job.abort() end -- the zip failed (or a step raised)
  for _, r in ipairs(done) do
    if not r.ok then error(r.error, 0) end
  end
  if not zipped then return nil, zip_failed, "writing the report" end
  if not md_id then return nil, md_err, "uploading the report" end
  if not zip_id then return nil, zip_err, "uploading the report" end
  if not shared then return nil, share_err, "uploading the report" end
  if not job then return nil, job_err, "writing the report" end
  if not completed then return nil, complete_err, "writing the report" end
  return written
end

return {
  name = "autopsy this",
  aliases = { "autopsy" },
  help = "autopsy this — turn this thread (or, outside a thread, this channel) into a postmortem; "
    .. "also `autopsy since 14:05`, `autopsy since <link>`, `autopsy last 2h`, `autopsy <thread link>`",
  run = function(ctx, args)
    local scope, why = scope_lib.parse(args, ctx)
    if not scope then
      ctx.reply(":warning: " .. why .. ". Try `autopsy this`, `autopsy since 14:05`, `autopsy last 2h` "
        .. "or `autopsy <thread link>`.")
      return false
    end
    local plan = plan_of(ctx, scope)
    local progress = progress_reporter(ctx)
    -- the "working on it" reaction goes out while the work starts: nothing waits for it
    local ok, result, err, stage
    local done = host.all({
      function() ctx.react(WORKING) end,
      function() ok, result, err, stage = pcall(build_and_upload, ctx, progress, plan) end,
    })
    if ok == nil then  -- the work itself was stopped (CPU budget, memory cap)
      ok, result = false, done[2].error
    end
    local success = ok and result ~= nil
    ctx.unreact(WORKING)
    ctx.react(success and DONE or FAILED)
    progress.finish(success)
    if success then return true end -- commands/publish.lua goes on after a report
    if not ok then
      err, stage = result, "building the report"
      ctx.log("error", "autopsy failed", { err = tostring(err) })
    else
      ctx.log("warn", "autopsy failed", { stage = stage, code = type(err) == "table" and err.code or nil,
                                          err = tostring(err) })
    end
    ctx.reply(":x: The postmortem failed while " .. stage .. ": " .. advice(err))
  end,
  advice = advice,
}
