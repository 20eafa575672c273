-- Specs for scripts/lib/jobs.lua: the fencing of visible steps in database mode. host is stubbed:
-- host.job gives the request's job, host.db answers pmb_job_step_begin with a scripted verdict.
-- File mode (no job) runs the work with no database call; 'go' runs it and records it done with
-- its result; 'done' gives the kept result back without running; 'check' asks visible() first;
-- 'fenced' (and a database error for a job with a row) raises and marks the job lost; a degraded
-- job runs unfenced; reply names ignore digits and count repeats; the takeover's thread search.
package.path = "tests/lua/?.lua;" .. package.path

local function stub_host(opts)
  local calls = { db = {}, lost = 0, api = {} }
  package.loaded.host = {
    job = function()
      if not opts.job then return nil end
      local j = {}
      for k, v in pairs(opts.job) do j[k] = v end
      j.lost = calls.lost > 0
      return j
    end,
    job_lost = function() calls.lost = calls.lost + 1 end,
    db = function(sql, ...)
      calls.db[#calls.db + 1] = { sql = sql, args = { ... } }
      if sql:find("pmb_job_step_begin", 1, true) then
        if opts.db_error then return nil, { code = "db_lost", message = "gone" } end
        return { { verdict = opts.verdict, result = opts.kept } }
      end
      if sql:find("envelope::jsonb", 1, true) then return { { ts = opts.request_ts } } end
      return { { ok = "t" } }
    end,
    api = function(method, params)
      calls.api[#calls.api + 1] = { method = method, params = params }
      return { ok = true, messages = opts.messages or {}, has_more = false }
    end,
    bot = function() return { user_id = "U0BOT", bot_id = "B0BOT" } end,
    log = function() end,
    config = function() return { database = { step_margin = 2 } } end,
  }
  package.loaded["lib.jobs"] = nil
  return calls, require "lib.jobs"
end

local JOB = { id = "event:Ev1", generation = 2, owner = "vm:1", degraded = false }

describe("jobs.step", function()
  it("runs the work with no database call in file mode", function()
    local calls, jobs = stub_host({})
    assert.are.equal("ts1", jobs.step("reply:x", function() return "ts1" end))
    assert.are.equal(0, #calls.db)
  end)

  it("'go': runs the work and records it done with its result, under the generation", function()
    local calls, jobs = stub_host({ job = JOB, verdict = "go" })
    assert.are.equal("ts1", jobs.step("upload:C1:1.0", function() return "ts1" end))
    assert.are.same({ "event:Ev1", "2", "vm:1", "upload:C1:1.0", "2" }, calls.db[1].args)
    assert.truthy(calls.db[2].sql:find("pmb_job_step_done", 1, true))
    assert.are.same({ "event:Ev1", "2", "upload:C1:1.0", '{"v":"ts1"}' }, calls.db[2].args)
  end)

  it("'go' and a failed run: nothing recorded, the error comes back", function()
    local calls, jobs = stub_host({ job = JOB, verdict = "go" })
    local r, err = jobs.step("status:x", function() return nil, "refused" end)
    assert.is_nil(r)
    assert.are.equal("refused", err)
    assert.are.equal(1, #calls.db)
  end)

  it("'done': the kept result, the work not run again", function()
    local _, jobs = stub_host({ job = JOB, verdict = "done", kept = '{"v":{"ok":true,"n":3}}' })
    local ran = false
    local r = jobs.step("status:x", function() ran = true end)
    assert.is_false(ran)
    assert.are.same({ ok = true, n = 3 }, r)
  end)

  it("'check': what is visible already is not repeated, and is recorded done", function()
    local calls, jobs = stub_host({ job = JOB, verdict = "check" })
    local ran = false
    local r = jobs.step("upload:x", function() ran = true end, function() return true, "seen" end)
    assert.is_false(ran)
    assert.are.equal("seen", r)
    assert.truthy(calls.db[2].sql:find("pmb_job_step_done", 1, true))
  end)

  it("'check' with nothing visible: the work runs", function()
    local _, jobs = stub_host({ job = JOB, verdict = "check" })
    assert.are.equal("again", jobs.step("upload:x", function() return "again" end, function() return false end))
  end)

  it("'fenced': raises, marks the job lost, never runs the work; later steps raise at once", function()
    local calls, jobs = stub_host({ job = JOB, verdict = "fenced" })
    local ran = false
    local ok, err = pcall(jobs.step, "upload:x", function() ran = true end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no longer holds the job", 1, true))
    assert.is_false(ran)
    assert.are.equal(1, calls.lost)
    local before = #calls.db
    assert.is_false(pcall(jobs.step, "reply:y", function() error("must not run") end))
    assert.are.equal(before, #calls.db)
    assert.is_false(pcall(jobs.held))
  end)

  it("a database error fences a job with a row, and lets a degraded job run", function()
    local calls, jobs = stub_host({ job = JOB, db_error = true })
    assert.is_false(pcall(jobs.step, "upload:x", function() return 1 end))
    assert.are.equal(1, calls.lost)
    local degraded = { id = "event:Ev2", generation = 1, owner = "vm:1", degraded = true }
    calls, jobs = stub_host({ job = degraded, db_error = true })
    assert.are.equal(1, jobs.step("upload:x", function() return 1 end))
    assert.are.equal(0, calls.lost)
    calls, jobs = stub_host({ job = degraded, verdict = "absent" })
    assert.are.equal(2, jobs.step("upload:x", function() return 2 end))
    assert.are.equal(0, calls.lost)
  end)
end)

describe("jobs.reply_step", function()
  it("names a message by its first line without digits, numbered within the run", function()
    local _, jobs = stub_host({ job = JOB })
    assert.are.equal("reply:Working: / pages#1", jobs.reply_step("Working: 3/10 pages"))
    assert.are.equal("reply:Working: / pages#2", jobs.reply_step("Working: 9/10 pages\nmore"))
    assert.are.equal("reply:Done#1", jobs.reply_step("Done"))
  end)
end)

describe("jobs.find_mine_in_thread", function()
  it("finds the bot's message after the request's, nothing before it or from others", function()
    local messages = {
      { ts = "100.0", user = "U0BOT", text = "old answer" },
      { ts = "200.0", user = "U0ALICE", text = "autopsy this" },
      { ts = "250.0", user = "U0ALICE", text = "answer" },
      { ts = "300.0", user = "U0BOT", text = "answer" },
    }
    local calls, jobs = stub_host({ job = JOB, request_ts = "200.0", messages = messages })
    local m = jobs.find_mine_in_thread("C1", "99.0", function(msg) return msg.text == "answer" end)
    assert.are.equal("300.0", m.ts)
    assert.are.equal("conversations.replies", calls.api[1].method)
    assert.is_nil(jobs.find_mine_in_thread("C1", "99.0", function(msg) return msg.text == "old answer" end))
  end)
end)
