-- Database mode's fencing of visible work (issue 16). A request runs as a job (host.job(): its id
-- and generation, the fencing token; nil in file mode, where every function here just runs the
-- work). Each externally visible step (the report's upload into a thread, a status update to one
-- destination, a chat message) is begun with pmb_job_step_begin, which checks the generation and
-- the lease in the same statement that records the step: a takeover that finds the step done gets
-- its result back instead of doing it again; one that finds it begun by a dead instance asks
-- `visible` whether it happened; an instance whose lease may have passed (a partition, a pause)
-- stops before doing anything visible, and the host posts no failure reply for it (host.job_lost).
-- Called by lib/router.lua (ctx.reply, ctx.update), lib/upload.lua and lib/destinations.lua;
-- calls host.db, host.job, host.job_lost, host.api (conversations.replies), host.bot, host.config
-- and cjson.
-- host is looked up at each call, not kept from load time (the busted specs load lib.router with
-- hosts of their own; one without host.job is file mode).
local function host() return require "host" end

local jobs = {}

local function current_job()
  local h = host()
  return h.job and h.job() or nil
end

local counts = {} -- "id#generation" -> { [key] = n }: names of the chat messages of a run

local function margin()
  local db = (host().config() or {}).database
  return tostring(type(db) == "table" and tonumber(db.step_margin) or 2)
end

local function fenced(job, why)
  host().job_lost() -- the host knows it for the whole request (host.all children included)
  host().log("warn", "job fenced: no visible work from here", { job = job.id,
    generation = tostring(job.generation), reason = why })
  error("this instance no longer holds the job (" .. why .. ")", 0)
end

-- The job of this coroutine, or nil (file mode, or outside a request).
function jobs.current()
  return current_job()
end

local function db_message(err)
  return type(err) == "table" and tostring(err.message or err.code) or tostring(err)
end

-- Run the visible step `name` of this job once. run() does it and returns its result (a string,
-- a number, a table: kept for a takeover) or nil, err. visible(), optional: called when an older
-- generation began the step and died; returns true, result when the step's effect is already
-- visible (then it is not repeated). Returns what run returned (or the kept result).
function jobs.step(name, run, visible)
  local job = current_job()
  if not job then return run() end
  if job.lost then fenced(job, "fenced before") end
  local rows, err = host().db("SELECT verdict, result FROM pmb_job_step_begin($1, $2::int, $3, $4, $5::float8)",
                            job.id, tostring(job.generation), job.owner, name, margin())
  if not rows then
    -- a degraded job (acked while the database did not answer) has no fencing: it runs here
    if job.degraded then return run() end
    fenced(job, "database: " .. db_message(err))
  end
  local verdict, kept = rows[1].verdict, rows[1].result
  if verdict == "absent" and job.degraded then return run() end
  if verdict == "fenced" or verdict == "absent" then fenced(job, "lease lost or taken over") end
  if verdict == "done" then
    host().log("info", "step already done; not repeated", { job = job.id, step = name })
    return jobs.decode(kept)
  end
  if verdict == "check" and visible then
    local seen, result = visible()
    if seen then
      host().log("info", "step already visible; not repeated", { job = job.id, step = name })
      jobs.done(job, name, result)
      return result
    end
  end
  local result, run_err = run()
  if result ~= nil then jobs.done(job, name, result) end
  return result, run_err
end

function jobs.encode(result)
  local cjson = require "cjson"
  return cjson.encode({ v = result })
end

function jobs.decode(kept)
  if not kept then return true end
  local cjson = require "cjson"
  local ok, t = pcall(cjson.decode, kept)
  if ok and type(t) == "table" then return t.v end
  return kept
end

function jobs.done(job, name, result)
  local rows, err = host().db("SELECT pmb_job_step_done($1, $2::int, $3, $4) AS ok", job.id,
                            tostring(job.generation), name, jobs.encode(result))
  if not rows then
    host().log("warn", "step done but not recorded", { job = job.id, step = name, error = db_message(err) })
  end
end

-- Is this coroutine's job still ours (for repeated, idempotent visible work such as updating a
-- progress message)? Raises like step when it is not.
function jobs.check()
  local job = current_job()
  if not job then return true end
  if job.lost then fenced(job, "fenced before") end
  local rows = host().db("SELECT 1 AS ok FROM pmb_jobs WHERE id = $1 AND generation = $2::int "
                       .. "AND owner = $3 AND state = 'running' "
                       .. "AND lease_until > now() + $4::float8 * interval '1 second'",
                       job.id, tostring(job.generation), job.owner, margin())
  if rows and rows[1] then return true end
  if not rows and job.degraded then return true end
  fenced(job, rows and "lease lost or taken over" or "database unreachable")
end

-- Raise (like step) when this request's job was found fenced already; no database call.
function jobs.held()
  local job = current_job()
  if job and job.lost then fenced(job, "fenced before") end
  return true
end

-- A stable name for the nth chat message of a kind in this run: its first line without digits
-- (progress counts change between runs), cut short, numbered within the run.
function jobs.reply_step(text)
  local job = current_job()
  if not job then return "reply" end
  local key = tostring(text):match("^[^\n]*"):gsub("%d", ""):sub(1, 48)
  local run = job.id .. "#" .. job.generation
  counts[run] = counts[run] or {}
  counts[run][key] = (counts[run][key] or 0) + 1
  return "reply:" .. key .. "#" .. counts[run][key]
end

-- The ts of the message the request came from (a mention, the message of a shortcut), from the
-- job's envelope, or nil: a takeover looks for what was posted after it.
function jobs.request_ts()
  local job = current_job()
  if not job then return nil end
  local rows = host().db("SELECT coalesce(envelope::jsonb #>> '{payload,event,ts}', "
                       .. "envelope::jsonb #>> '{payload,message,ts}') AS ts FROM pmb_jobs "
                       .. "WHERE id = $1 AND envelope <> ''", job.id)
  return rows and rows[1] and rows[1].ts or nil
end

-- A takeover's look at what is visible: the first message of the bot in the thread, later than
-- the request's own message, for which pred(message) is true; nil when there is none (or the
-- request's message is not known: then the step is repeated).
function jobs.find_mine_in_thread(channel, thread_ts, pred)
  local after = jobs.request_ts()
  local bot = host().bot() or {}
  if not after or not thread_ts then return nil end
  local cursor
  for _ = 1, 50 do
    local page = host().api("conversations.replies", { channel = channel, ts = thread_ts, limit = 200,
                                                       cursor = cursor })
    if not page then return nil end
    for _, m in ipairs(page.messages or {}) do
      local mine = (bot.user_id and m.user == bot.user_id) or (bot.bot_id and m.bot_id == bot.bot_id)
      if mine and tonumber(m.ts) and tonumber(m.ts) > tonumber(after) and pred(m) then return m end
    end
    cursor = page.response_metadata and page.response_metadata.next_cursor
    if not page.has_more or not cursor or cursor == "" then break end
  end
  return nil
end

return jobs
