-- Specs for lib/early_downloads.lua: files downloaded before the rules ran end up as if the
-- downloads had waited for the rules (the kept files' names, outcomes, failures), the files of
-- dropped entries are removed and never set on an entry, a dropped file not started is never
-- fetched, a name a dropped file held is fetched again for the kept one, and nothing runs beside
-- more than `concurrency` downloads. host.all runs one function after another here (the bot runs
-- them concurrently); calling run before keep makes the early downloads happen first. The ahead
-- specs at the end take turns instead (coroutines, each download a few turns long), to see when
-- keep()'s ahead is called and what the entries hold then.
package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
local H = {}
package.loaded.host = H

-- (host.all runs one function after another here: the dispatcher starts once the reading is over,
-- so it must never wait: the stub signal's wait raises)
local function reset_host()
  stub.download_host(H)
end
reset_host()

local files = require "lib.files"
local early_downloads = require "lib.early_downloads"

local function job(id, name, url)
  return { entry = { id = id, name = name, kind = "image" }, url = url or ("https://f/" .. tostring(id)) }
end

-- The same file as the job `j` describes, as a new entry (the kept timeline's own file entry).
local function again(j)
  return { entry = { id = j.entry.id, name = j.entry.name, kind = j.entry.kind }, url = j.url }
end

local OUT = "/data/reports/C1/1.000001/v1"

describe("early_downloads", function()
  before_each(reset_host)

  it("keeps the early downloads of kept files, removes a dropped one's and never sets it", function()
    local a, b, c = job("F1", "a.png"), job("F2", "dropped.png"), job("F3", "c.png")
    local e = early_downloads.new(OUT, { concurrency = 2 })
    e.add({ a, b, c })
    e.run(function() end) -- the downloads happen here
    local ka, kc = again(a), again(c)
    e.keep({ ka, kc })
    e.finish()
    assert.are.same({ OUT .. "/attachments/F1-a.png", OUT .. "/attachments/F2-dropped.png",
                      OUT .. "/attachments/F3-c.png" }, H.downloads)
    assert.are.same({ OUT .. "/attachments/F2-dropped.png" }, H.removed)
    assert.are.equal("attachments/F1-a.png", ka.entry.local_path)
    assert.are.equal("sum-https://f/F1", ka.entry.sha256)
    assert.are.equal("attachments/F3-c.png", kc.entry.local_path)
    assert.is_nil(b.entry.local_path)
    -- (at most `concurrency` downloads at once: the ahead specs below count them)
  end)

  it("never fetches a dropped file whose download had not started when the rules ran", function()
    local a, b = job("F1", "a.png"), job("F2", "dropped.png")
    local e = early_downloads.new(OUT, {})
    e.add({ a, b })
    local ka = again(a)
    e.run(function() e.keep({ ka }) end) -- the rules ran before any download started
    e.finish()
    assert.are.same({ OUT .. "/attachments/F1-a.png" }, H.downloads)
    assert.are.same({}, H.removed)
    assert.are.equal("attachments/F1-a.png", ka.entry.local_path)
  end)

  it("fetches the kept files nobody handed over early, once, under the kept files' names", function()
    local a = job("F1", "a.png")
    local e = early_downloads.new(OUT, {})
    e.add({ a })
    local ka, late, late_twice = again(a), job("F9", "stub.png"), job("F9", "stub.png")
    e.run(function() e.keep({ ka, late, late_twice }) end)
    e.finish()
    assert.are.same({ OUT .. "/attachments/F1-a.png", OUT .. "/attachments/F9-stub.png" }, H.downloads)
    assert.are.equal("attachments/F9-stub.png", late.entry.local_path)
    assert.are.equal("attachments/F9-stub.png", late_twice.entry.local_path)
  end)

  it("reports a failed early download on the kept entry with its reason", function()
    local bad = job("F1", "a.png", "https://f/fail")
    local e = early_downloads.new(OUT, { max_bytes = 1000 })
    e.add({ bad })
    e.run(function() end)
    local kept = again(bad)
    e.keep({ kept })
    e.finish()
    assert.are.equal(files.reason({ code = "http_status", status = 403 }, 1000), kept.entry.missing_reason)
    assert.are.equal("HTTP status 403", kept.entry.missing_reason)
    assert.is_nil(kept.entry.local_path)
  end)

  it("gives a kept file the name it would have had alone when a dropped one held it early", function()
    -- two files without an id and with the same name: early they were report.pdf and report-2.pdf;
    -- the first is dropped, so the kept one is report.pdf, what it is named without the other
    local first = { entry = { name = "report.pdf", kind = "file" }, url = "https://x/1" }
    local second = { entry = { name = "report.pdf", kind = "file" }, url = "https://x/2" }
    local e = early_downloads.new(OUT, {})
    e.add({ first, second })
    e.run(function() end)
    local kept = again(second)
    e.keep({ kept })
    e.finish()
    local alone = files.unique_names(files.group_by_id({ again(second) }))
    assert.are.equal("attachments/" .. alone["https://x/2"], kept.entry.local_path)
    assert.are.equal("attachments/F-report.pdf", kept.entry.local_path)
    assert.are.equal("sum-https://x/2", kept.entry.sha256)
    -- fetched again under its final name, after both early files were removed
    assert.are.same({ OUT .. "/attachments/F-report.pdf", OUT .. "/attachments/F-report-2.pdf",
                      OUT .. "/attachments/F-report.pdf" }, H.downloads)
    assert.are.same({ OUT .. "/attachments/F-report.pdf", OUT .. "/attachments/F-report-2.pdf" }, H.removed)
  end)

  it("removes the files before fetching a name again, and the folder when nothing is kept", function()
    local order = {}
    local first = { entry = { name = "r.pdf" }, url = "https://x/1" }
    local second = { entry = { name = "r.pdf" }, url = "https://x/2" }
    local e = early_downloads.new(OUT, {})
    e.add({ first, second })
    e.run(function() end)
    H.remove = function(p) order[#order + 1] = "remove " .. p return true end
    H.download = function(_, dest) order[#order + 1] = "fetch " .. dest return { size = 1, sha256 = "0" } end
    e.keep({ again(second) })
    e.finish()
    assert.are.same({ "remove " .. OUT .. "/attachments/F-r.pdf", "remove " .. OUT .. "/attachments/F-r-2.pdf",
                      "fetch " .. OUT .. "/attachments/F-r.pdf" }, order)

    reset_host()
    local e2 = early_downloads.new(OUT, {})
    e2.add({ job("F1", "a.png") })
    e2.run(function() e2.keep({}) end)
    e2.finish()
    assert.are.same({}, H.downloads)
    assert.are.same({ OUT .. "/attachments" }, H.removed)
  end)

  it("says the folder could not be made", function()
    H.mkdir = function() return nil, { code = "io" } end
    local a = job("F1", "a.png")
    local e = early_downloads.new(OUT, {})
    e.add({ a })
    local ka = again(a)
    e.run(function() e.keep({ ka }) end)
    e.finish()
    assert.are.same({}, H.downloads)
    assert.are.equal(files.NO_FOLDER, ka.entry.missing_reason)
  end)

  it("stops starting downloads when the reading fails, and raises its error", function()
    local e = early_downloads.new(OUT, {})
    e.add({ job("F1", "a.png") })
    local ok, err = pcall(e.run, function() error("the reading broke", 0) end)
    assert.is_false(ok)
    assert.are.equal("the reading broke", err)
    assert.are.same({}, H.downloads)
  end)

  -- host.all's functions as coroutines taking turns (a download is 1 turn long, 6 for a URL holding
  -- "slow"; a host.all inside a function gives the others a turn after each of its own rounds),
  -- host.sleep one turn, host.signal woken by any notify after the wait began.
  local function taking_turns()
    local log = {}
    H.all = function(fns)
      local cos, results = {}, {}
      for i, fn in ipairs(fns) do cos[i] = coroutine.create(fn) end
      for _ = 1, 1000 do
        local alive = false
        for i, co in ipairs(cos) do
          if coroutine.status(co) == "suspended" then
            local ok, v = coroutine.resume(co)
            if not ok then
              results[i] = { ok = false, error = v }
            elseif coroutine.status(co) == "dead" then
              results[i] = { ok = true, value = v }
            else
              alive = true
            end
          end
        end
        if not alive then return results end
        if coroutine.isyieldable() then coroutine.yield() end
      end
      error("host.all: its functions never ended")
    end
    H.sleep = function() coroutine.yield() end
    H.signal = function()
      local sig = { notified = 0 }
      function sig.notify() sig.notified = sig.notified + 1 return 0 end
      function sig.wait()
        local seen = sig.notified
        repeat coroutine.yield() until sig.notified ~= seen
        return true
      end
      return sig
    end
    local running = 0
    log.most = 0
    H.download = function(url, dest)
      log[#log + 1] = "start " .. url
      H.downloads[#H.downloads + 1] = dest
      running = running + 1
      log.most = math.max(log.most, running)
      for _ = 1, url:find("slow") and 6 or 1 do coroutine.yield() end
      running = running - 1
      log[#log + 1] = "end " .. url
      if url:find("fail") then return nil, { code = "http_status", status = 403 } end
      return { path = dest, size = #url, sha256 = "sum-" .. url }
    end
    return log
  end

  -- A job whose Slack size is what the download will give (lib/files.lua's entry size).
  local function sized(id, name, url)
    local j = job(id, name, url)
    j.entry.size = #j.url
    return j
  end

  -- The three kept files a, b and c (c slow, url_c), two at a time, the rules done before any
  -- download: returns the kept jobs, what ahead saw (nil when not called) and the early downloads.
  local function three_files(url_c, ahead_too)
    local log = taking_turns()
    local a, b, c = sized("F1", "a.png"), sized("F2", "b.png"), sized("F3", "c.png", url_c)
    local ka, kb, kc = again(a), again(b), again(c)
    for _, k in ipairs({ ka, kb, kc }) do k.entry.size = #k.url end
    local e = early_downloads.new(OUT, { concurrency = 2 })
    e.add({ a, b, c })
    local saw
    e.run(function()
      e.keep({ ka, kb, kc }, ahead_too ~= false and function(unchanged)
        saw = { log = table.concat(log, ","), unchanged = unchanged, a = ka.entry.local_path,
                c = kc.entry.local_path, c_sha = kc.entry.sha256, c_size = kc.entry.size }
      end or nil)
    end)
    e.finish()
    return { ka, kb, kc }, saw, log
  end

  it("calls ahead once the last download is on its way, with the entries as they will be", function()
    local kept, saw, log = three_files("https://f/slow-c")
    assert.are.equal(2, log.most) -- (two at a time, as asked)
    assert.is_table(saw)
    -- a and b were in, c had started and was not
    assert.are.equal("start https://f/F1,start https://f/F2,end https://f/F1,start https://f/slow-c,"
                     .. "end https://f/F2", saw.log)
    assert.are.equal("attachments/F1-a.png", saw.a)
    assert.are.equal("attachments/F3-c.png", saw.c)
    assert.is_nil(saw.c_sha)
    assert.are.equal(#"https://f/slow-c", saw.c_size)
    -- c came in as announced: what ahead saw holds, and the entry has its digest now
    assert.is_true(saw.unchanged())
    assert.are.equal("sum-https://f/slow-c", kept[3].entry.sha256)
  end)

  it("says ahead's entries changed when the last download fails, and leaves no path on it", function()
    local kept, saw = three_files("https://f/slow-fail")
    assert.are.equal("attachments/F3-c.png", saw.c)
    assert.is_false(saw.unchanged())
    assert.are.equal("HTTP status 403", kept[3].entry.missing_reason)
    assert.is_nil(kept[3].entry.local_path)
    assert.is_nil(kept[3].entry.sha256)
    assert.are.equal("attachments/F1-a.png", kept[1].entry.local_path)
  end)

  it("says ahead's entries changed when a file is not the size Slack gave", function()
    local kept, saw = three_files("https://f/slow-c", true)
    assert.is_true(saw.unchanged())
    kept[3].entry.size = 1 -- (as if the bytes had not been what Slack announced)
    assert.is_false(saw.unchanged())
  end)

  it("calls no ahead when every download ended before the rules, or when none was given", function()
    taking_turns()
    local a = sized("F1", "a.png")
    local e = early_downloads.new(OUT, {})
    e.add({ a })
    e.run(function() end)
    local called = false
    e.keep({ again(a) }, function() called = true end)
    e.finish()
    assert.is_false(called)
    local _, saw = three_files("https://f/slow-c", false)
    assert.is_nil(saw)
  end)
end)

