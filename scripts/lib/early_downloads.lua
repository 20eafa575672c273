-- Downloads begun before the filter rules ran. lib/timeline.lua's reader hands over each page's
-- files as soon as the page is read (never the bot's own uploads) and runs the reading, the names
-- and the rules beside them (run); once the rules ran, keep() names the files the kept entries
-- need; finish() removes the files nobody kept and downloads the ones not fetched yet, then sets
-- each kept file entry (local_path, sha256, size, or missing_reason). The local names are those of
-- the kept files alone (files.unique_names over them, in order), as if nothing had been fetched
-- before the rules: an early file whose name differs (a clash with a dropped one) is fetched again.
-- With opts.on_file, each kept file is handed on (its local path) as soon as it and every kept
-- file before it in name order are in (lib/bundle.lua's zip takes them).
-- keep(jobs, ahead): the last downloads' wait is not lost. ahead(unchanged) is called at most once,
-- beside the downloads, as soon as the last kept file's download has started (and one at least is
-- still on the wire), with every kept file entry set as finish() would set it if those files
-- arrive as announced (under their kept names, Slack's size): the report can be rendered
-- meanwhile. Once finish() returned, unchanged() says whether the entries are still what ahead saw
-- (else it must be rendered again).
-- Calls lib/files.lua and host (all, signal, mkdir, remove, download through files.fetch).
local host = require "host"
local files = require "lib.files"

local early_downloads = {}

-- out_dir: the report folder. opts: concurrency (default 4), max_bytes, allow_private, progress(n,
-- total), on_file(local_path).
function early_downloads.new(out_dir, opts)
  opts = opts or {}
  local concurrency = opts.concurrency or 4
  local fetch_opts = { max_bytes = opts.max_bytes, allow_private = files.allow_private(opts) }
  local self = {}
  local early, early_order = {}, {} -- key -> { url, safe, state, outcome, used }
  local provisional = {}            -- local name -> the early download that holds it
  local name_of = files.namer()
  local queue, head = {}, 1
  local reading, stopped = true, false
  local kept, kept_order            -- after keep(): files.group_by_id of the kept jobs
  local folder                      -- nil: not made yet; true; false: could not be made
  local started, done = 0, 0
  -- the dispatcher waits on it while the queue is empty and the reading goes on; a queued file and
  -- the reading's end notify it
  local changed = host.signal()
  local in_order, handed = {}, 0    -- after keep(): the kept downloads in name order; how many handed on
  local ahead                       -- keep()'s ahead, until it is called
  -- notified when a download starts and when the dispatcher returns: the ahead's wait looks again
  local moved = host.signal()
  local dispatching = true          -- until the dispatcher returned

  -- Hand on the kept files that are in, in name order, up to the first one still missing.
  local function hand_on()
    if not opts.on_file then return end
    while in_order[handed + 1] do
      local d = in_order[handed + 1]
      if d.state ~= "done" then return end
      handed = handed + 1
      if d.outcome.local_path then opts.on_file(d.outcome.local_path) end
    end
  end

  local function ensure_folder()
    if folder == nil then
      local ok, err = host.mkdir(out_dir .. "/" .. files.DIR)
      folder = not (ok == nil and err)
    end
    return folder
  end

  local function enqueue(d)
    d.state = "queued"
    queue[#queue + 1] = d
    changed:notify()
  end

  -- Early downloads for jobs ({ entry = file entry, url = }), in order; a file already handed over
  -- (the same id or URL) is not fetched twice.
  function self.add(jobs)
    local groups, order = files.group_by_id(jobs)
    if #order == 0 or kept or not ensure_folder() then return end
    for _, key in ipairs(order) do
      if not early[key] then
        local g = groups[key]
        local d = { url = g.url, safe = name_of(g.id, g.name) }
        early[key] = d
        early_order[#early_order + 1] = key
        provisional[d.safe] = d
        enqueue(d)
      end
    end
  end

  local function fetch(d)
    d.state = "running"
    started = started + 1
    moved:notify() -- (the ahead's wait wakes once this download is on its way)
    d.outcome = files.fetch(d.url, out_dir, d.safe, fetch_opts)
    d.state = "done"
    done = done + 1
    hand_on()
    if opts.progress then opts.progress(done, started + #queue - head + 1) end
  end

  local function next_queued()
    while head <= #queue do
      local d = queue[head]
      head = head + 1
      if d.state == "queued" then return d end -- (a dropped file's download is "skipped")
    end
    return nil
  end

  -- After keep(): "ready" when every kept file is in or on its way and one at least is on the
  -- wire; "wait" while one is still to start (queued, or a name freed by a dropped file: finish()
  -- fetches those); "never" when all are in (nothing to wait for beside the work).
  local function ahead_state()
    local running = false
    for _, key in ipairs(kept_order) do
      local state = kept[key].source.state
      if state == "running" then
        running = true
      elseif state ~= "done" then
        return "wait"
      end
    end
    return running and "ready" or "never"
  end

  -- The kept files' entries as finish() would set them if the downloads still running end as
  -- announced; then ahead(unchanged) (see the top).
  local function call_ahead()
    local fn = ahead
    ahead = nil
    local seen = {} -- { entry, local_path, size, missing_reason } as ahead saw them
    for _, key in ipairs(kept_order) do
      local g = kept[key]
      local d = g.source
      files.apply(g.entries, d.state == "done" and d.outcome or { local_path = files.local_path(d.safe) })
      for _, fe in ipairs(g.entries) do
        seen[#seen + 1] = { fe, fe.local_path, fe.size, fe.missing_reason }
      end
    end
    local function unchanged()
      for _, s in ipairs(seen) do
        local fe = s[1]
        if fe.local_path ~= s[2] or fe.size ~= s[3] or fe.missing_reason ~= s[4] then return false end
      end
      return true
    end
    local ok, err = pcall(fn, unchanged)
    if not ok then host.log("warn", "work beside the last downloads failed", { err = tostring(err) }) end
  end

  local function worker()
    while not stopped do
      local d = next_queued()
      if not d then return end
      fetch(d)
    end
  end

  -- Once the reading (and keep) is over, in its coroutine: calls keep()'s ahead as soon as the last
  -- kept download is on its way; returns without it when that cannot happen any more (no ahead,
  -- everything in, the rest left for finish(), the reading failed).
  local function wait_to_call_ahead()
    while ahead and kept and not stopped do
      local state = ahead_state()
      if state == "ready" then
        host.sleep(0) -- (the download just started goes out on the loop first)
        if not stopped then call_ahead() end
        return
      elseif state == "never" or not dispatching then
        return
      end
      moved:wait()
    end
  end

  -- While the reading goes on: a round of `concurrency` workers whenever the queue holds work, else
  -- wait for a file or the reading's end (nothing runs between the look and the wait).
  local function dispatcher()
    while not stopped do
      if head <= #queue then
        local workers = {}
        for i = 1, concurrency do workers[i] = worker end
        host.all(workers, concurrency)
      elseif not reading then
        return
      else
        changed:wait()
      end
    end
  end

  -- Run fn (the reading, the names, the rules) beside the downloads; returns once fn returned and
  -- the queue is empty. An error in fn stops the downloads not started and is raised again. When fn
  -- called keep() with an ahead, its coroutine then waits to call it (see the top).
  function self.run(fn)
    local results = host.all({
      function()
        local ok, err = pcall(fn)
        reading = false
        if not ok then stopped = true end
        changed:notify()
        if not ok then error(err, 0) end
        wait_to_call_ahead()
      end,
      function()
        dispatcher()
        dispatching = false
        moved:notify()
      end,
    })
    for _, r in ipairs(results) do
      if not r.ok then error(r.error, 0) end
    end
  end

  -- The jobs of the kept entries (lib/timeline.lua's complete). Early downloads nobody needs and not
  -- started are skipped; kept files not fetched yet are queued, unless their name is an early
  -- file's (then finish() fetches them once that file is gone). ahead_fn: optional (see the top).
  function self.keep(jobs, ahead_fn)
    ahead = ahead_fn
    kept, kept_order = files.group_by_id(jobs)
    local names = files.unique_names(kept, kept_order)
    for _, key in ipairs(kept_order) do
      local g, d = kept[key], early[key]
      if d and d.safe == names[key] then
        d.used = true
        g.source = d
      else
        g.source = { url = g.url, safe = names[key], state = "deferred" }
        if not provisional[names[key]] and ensure_folder() then enqueue(g.source) end
      end
    end
    for _, key in ipairs(early_order) do
      local d = early[key]
      if not d.used and d.state == "queued" then d.state = "skipped" end
    end
    for _, key in ipairs(kept_order) do in_order[#in_order + 1] = kept[key].source end
    table.sort(in_order, function(a, b) return a.safe < b.safe end)
    hand_on()
  end

  -- After run and keep: removes the early files no kept entry uses, fetches what is left (at most
  -- `concurrency` at once) and sets the kept file entries (local_path, sha256, size or
  -- missing_reason). Returns nothing.
  function self.finish()
    for _, key in ipairs(early_order) do
      local d = early[key]
      if not d.used and d.outcome and d.outcome.local_path then
        host.remove(out_dir .. "/" .. d.outcome.local_path)
      end
    end
    if not kept or #kept_order == 0 then
      if folder then host.remove(out_dir .. "/" .. files.DIR) end -- (an empty folder only)
      return
    end
    local left, fns = {}, {}
    for _, key in ipairs(kept_order) do
      local d = kept[key].source
      if (d.state == "queued" or d.state == "deferred") and ensure_folder() then
        left[#left + 1] = d
        fns[#fns + 1] = function() fetch(d) end
      end
    end
    if #fns > 0 then
      local results = host.all(fns, concurrency)
      for i, r in ipairs(results) do
        local d = left[i]
        if not r.ok then
          d.outcome, d.state = files.outcome_of(r), "done"
        end
      end
      hand_on()
    end
    for _, key in ipairs(kept_order) do
      local g = kept[key]
      files.apply(g.entries, g.source.outcome or { reason = files.NO_FOLDER })
    end
  end

  return self
end

return early_downloads
