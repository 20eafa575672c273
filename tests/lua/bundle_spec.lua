-- Specs for scripts/lib/bundle.lua: version folders vN, what gets written (.md, timeline.json,
-- zip of the .md + attachments/), what changed since the previous version. host is stubbed with
-- real files under a temporary directory; host.zip records its call.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"
local stub = require "helpers.host_stub"

local function sh(cmd)
  assert(os.execute(cmd))
end

local read = stub.read_or_nil

local function stub_host(root)
  local zips = {}
  local host = {
    config = function() return { data_dir = root, timezone = "UTC", report = { template = "t.md" } } end,
    templates = function()
      return { ["t.md"] = "# {{title}}\n{{#entries}}- {{time_label}} {{author}}\n{{/entries}}v{{version}}\n" }
    end,
    generation = function() return 1 end,
    now = function() return 1731628000 end,
    log = function() end,
    time_parts = stub.utc_time_parts,
    format_time = stub.utc_format_time,
    mkdir = function(path) sh("mkdir -p '" .. path .. "'") return true end,
    write_file = function(path, data)
      sh("mkdir -p '" .. path:match("^(.*)/") .. "'")
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
      return true
    end,
    -- host.file_writer: the pieces go to a temporary file renamed into place by close()
    file_writer = function(path)
      sh("mkdir -p '" .. path:match("^(.*)/") .. "'")
      local f = assert(io.open(path .. ".tmp", "wb"))
      return {
        -- (chunk:sub(i, j), as the host's writer takes it)
        write = function(_, chunk, i, j) f:write(chunk:sub(i or 1, j or -1)) return true end,
        close = function() f:close() assert(os.rename(path .. ".tmp", path)) return true end,
        abort = function() f:close() os.remove(path .. ".tmp") end,
      }
    end,
    read_file = function(path)
      local s = read(path)
      if not s then return nil, { code = "io", message = "no such file" } end
      return s
    end,
    list_dir = function(path)
      local p = io.popen("ls -1 '" .. path .. "' 2>/dev/null")
      local names = {}
      for n in p:lines() do names[#names + 1] = n end
      p:close()
      if #names == 0 then return nil, { code = "io" } end
      return names
    end,
    exists = function(path)
      if os.execute("test -d '" .. path .. "'") then return "dir" end
      if os.execute("test -f '" .. path .. "'") then return "file" end
      return nil
    end,
    zip = function(zip_path, base, members)
      zips[#zips + 1] = { zip_path = zip_path, base = base, members = members }
      return true
    end,
  }
  package.loaded.host = host
  package.loaded["lib.markdown"] = package.loaded["lib.markdown"]
    or { escape = function(s) return s end }
  for _, m in ipairs({ "lib.bundle", "lib.report", "lib.templates", "lib.slug" }) do package.loaded[m] = nil end
  return host, zips
end

local function timeline(entries)
  return { channel = "C0INCIDENT", channel_name = "incidents", thread_ts = "1731624067.001900", zone = "UTC",
           complete = true, entries = entries, dropped = {}, figures = {}, files = {} }
end

local function entry(ts, text, edited_ts, files)
  return { ts = ts, time = tonumber(ts), time_label = os.date("!%H:%M:%S", math.floor(tonumber(ts))),
           author = { id = "U1", name = "Ada" }, text_md = text, files = files or {},
           edited = edited_ts and { ts = edited_ts, label = "x" } or nil }
end

describe("bundle", function()
  local root, bundle, zips

  before_each(function()
    root = os.tmpname()
    os.remove(root)
    sh("mkdir -p '" .. root .. "'")
    zips = select(2, stub_host(root))
    bundle = require "lib.bundle"
  end)

  after_each(function()
    sh("rm -rf '" .. root .. "'")
  end)

  it("numbers versions v1, v2 under reports/<channel>/<thread_ts>/", function()
    local a = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert.are.equal(root .. "/reports/C0INCIDENT/1731624067.001900/v1", a.dir)
    assert.are.equal(1, a.version)
    assert.is_nil(a.previous)
    assert(bundle.write(timeline({ entry("1731624067.001900", "x") }), a))
    local b = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert.are.equal(2, b.version)
    assert.are.equal(1, b.previous)
    assert.are.equal(a.dir, b.previous_dir)
  end)

  it("a report that failed half-way is no version: the next one takes its number and compares with the last complete", function()
    local v1 = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert(bundle.write(timeline({ entry("1731624067.001900", "x") }), v1))
    local failed = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert.are.equal(2, failed.version)
    -- the attempt fails before bundle.write finishes: its folder exists, without timeline.json
    sh("mkdir -p '" .. failed.dir .. "/attachments'")
    local again = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert.are.equal(2, again.version)
    assert.are.equal(1, again.previous)
    assert.are.equal(v1.dir, again.previous_dir)
    assert.are.same({ 1 }, bundle.versions(root, "C0INCIDENT", "1731624067.001900"))
  end)

  it("keeps hostile channel or ts values inside the reports folder", function()
    local a = bundle.prepare("../../etc", "1/../x")
    assert.are.equal(root .. "/reports/.._.._etc/1_.._x/v1", a.dir)
  end)

  it("writes the .md, timeline.json and zips the .md with attachments/", function()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    sh("mkdir -p '" .. slot.dir .. "/attachments'")
    local t = timeline({ entry("1731624067.001900", "**Checkout errors** in eu") })
    local out = assert(bundle.write(t, slot))
    assert.are.equal("postmortem-2024-11-14-checkout-errors-in-eu.md", out.md_name)
    assert.are.equal("# Checkout errors in eu\n- 22:41:07 Ada\nv1\n", read(out.md_path))
    assert.are.same(t.entries[1].text_md, cjson.decode(read(slot.dir .. "/timeline.json")).entries[1].text_md)
    assert.are.same({ zip_path = slot.dir .. "/postmortem-2024-11-14-checkout-errors-in-eu.zip", base = slot.dir,
                      members = { out.md_name, "attachments" } }, zips[1])
  end)

  -- host.zip_writer recording what it is given; close answers `close_answer` (default true).
  local function zip_writer_stub(close_answer, close_err)
    local calls = {}
    package.loaded.host.zip_writer = function(base)
      calls[#calls + 1] = { "open", base }
      return {
        add = function(_, rel) calls[#calls + 1] = { "add", rel } return true end,
        close = function(_, zip_path, entries)
          calls[#calls + 1] = { "close", zip_path, entries }
          if close_answer == false then return nil, close_err end
          return true
        end,
        abort = function() calls[#calls + 1] = { "abort" } end,
      }
    end
    return calls
  end

  it("finishes the zip begun before: the added attachments, the rest of attachments/, the .md last", function()
    local calls = zip_writer_stub()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    sh("mkdir -p '" .. slot.dir .. "/attachments' && touch '" .. slot.dir .. "/attachments/F1-a.png' '"
       .. slot.dir .. "/attachments/F2-b.png' '" .. slot.dir .. "/attachments/zz-late.txt'")
    local zip = bundle.zip_start(slot)
    zip.add("attachments/F1-a.png")
    zip.add("attachments/F2-b.png")
    local out = assert(bundle.write(timeline({ entry("1731624067.001900", "x") }), slot, { zip_stream = zip }))
    assert.are.same({
      { "open", slot.dir },
      { "add", "attachments/" }, { "add", "attachments/F1-a.png" }, { "add", "attachments/F2-b.png" },
      { "close", out.zip_path, { "attachments/zz-late.txt", out.md_name } },
    }, calls)
    assert.are.same({}, zips) -- host.zip not used
  end)

  it("makes the whole zip at the end as before when the one begun before fails", function()
    local calls = zip_writer_stub(false, { code = "io", message = "disk full" })
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    sh("mkdir -p '" .. slot.dir .. "/attachments' && touch '" .. slot.dir .. "/attachments/F1-a.png'")
    local zip = bundle.zip_start(slot)
    zip.add("attachments/F1-a.png")
    local out = assert(bundle.write(timeline({ entry("1731624067.001900", "x") }), slot, { zip_stream = zip }))
    assert.are.equal("close", calls[#calls][1])
    assert.are.same({ { zip_path = out.zip_path, base = slot.dir, members = { out.md_name, "attachments" } } }, zips)
  end)

  it("leaves attachments/ out of the zip when there is none, and can skip zip and json", function()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    bundle.write(timeline({ entry("1731624067.001900", "x") }), slot)
    assert.are.equal(1, #zips[1].members)
    local offline = root .. "/out"
    local out = bundle.write(timeline({ entry("1731624067.001900", "x") }), { dir = offline }, { zip = false, json = false })
    assert.are.equal(1, #zips)
    assert.is_nil(read(offline .. "/timeline.json"))
    assert.is_not_nil(read(out.md_path))
  end)

  it("counts entries added, edited, gone and files added since the previous timeline", function()
    local before = timeline({ entry("1.000100", "a"), entry("2.000100", "b"), entry("3.000100", "c") })
    local after = timeline({ entry("1.000100", "a"), entry("2.000100", "b2", "9.0"),
                             entry("4.000100", "d"), entry("5.000100", "e") })
    after.entries[1].files = { { id = "F1" } }
    assert.are.same({ added = 2, edited = 1, removed = 1, files_added = 1 }, bundle.changes(before, after))
    assert.are.equal("Version 2. Since version 1: 2 new entries, 1 entry edited, 1 entry gone, 1 new file.",
                     bundle.changes_text(2, 1, bundle.changes(before, after)))
    assert.are.equal("Version 3. Nothing changed since version 2.",
                     bundle.changes_text(3, 2, bundle.changes(after, after)))
    assert.is_nil(bundle.changes_text(1, nil, {}))
  end)

  it("compares with the previous version's digest as with its timeline", function()
    local before = timeline({ entry("1.000100", "a"), entry("2.000100", "b"), entry("3.000100", "c"),
                              entry("6.000100", "f", "8.0") })
    before.entries[2].files = { { id = "F2" } }
    local after = timeline({ entry("1.000100", "a"), entry("2.000100", "b2", "9.0"),
                             entry("4.000100", "d"), entry("5.000100", "e"), entry("6.000100", "f", "8.0") })
    after.entries[1].files = { { id = "F1" } }
    after.entries[2].files = { { id = "F2" }, { id = "F3" } }
    -- as the next version reads it: the digest through JSON
    local digest = { kind = "digest", entries = cjson.decode(cjson.encode(bundle.digest(before).entries)) }
    local expected = { added = 2, edited = 1, removed = 1, files_added = 2 }
    assert.are.same(expected, bundle.changes(before, after))
    assert.are.same(expected, bundle.changes(digest, after))
    assert.are.same({ added = 0, edited = 0, removed = 0, files_added = 0 },
                    bundle.changes(bundle.digest(after), after))
  end)

  it("writes timeline.json and the digest a batch at a time, the same text as one encode of each", function()
    -- 0, one, a batch exactly, a batch and one, several batches and a part
    for _, n in ipairs({ 0, 1, 256, 257, 700 }) do
      local list = {}
      for i = 1, n do
        list[i] = entry(string.format("%d.%06d", 1731624067 + i, i), "text " .. i .. (i % 7 == 0 and " \"q\"\n" or ""),
          i % 5 == 0 and "1731700000.000100" or nil, i % 3 == 0 and { { id = "F" .. i }, { id = "G" .. i } } or nil)
      end
      local t = timeline(list)
      local slot = bundle.prepare("C0INCIDENT", "1731624067.00" .. n)
      bundle.write(t, slot)
      local whole = cjson.encode(t)
      assert.are.equal(#whole, #read(slot.dir .. "/timeline.json"), "timeline.json, " .. n .. " entries")
      assert.are.same(cjson.decode(whole), cjson.decode(read(slot.dir .. "/timeline.json")))
      assert.are.equal(cjson.encode(bundle.digest(t).entries), read(slot.dir .. "/" .. bundle.DIGEST_FILE),
        "digest, " .. n .. " entries")
    end
  end)

  it("writes the digest beside timeline.json and the next version reads it, else the timeline", function()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    local first = timeline({ entry("1731624067.001900", "x"), entry("1731624068.000100", "y") })
    bundle.write(first, slot)
    local digest_path = slot.dir .. "/" .. bundle.DIGEST_FILE
    local raw = read(digest_path)
    assert.is_string(raw)
    assert.are.same(bundle.digest(first).entries, cjson.decode(raw))
    local next_slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    local second = timeline({ entry("1731624067.001900", "x2") })
    -- a digest that says something else than timeline.json: the digest is what is read
    local f = io.open(digest_path, "wb")
    f:write(cjson.encode({ { "1731624067.001900", false, "x2", "" } }))
    f:close()
    assert.are.same({ added = 0, edited = 0, removed = 0, files_added = 0 },
                    bundle.changes(bundle.previous_digest(next_slot), second))
    -- a version without a digest (written before it existed): its timeline.json
    os.remove(digest_path)
    assert.are.same({ added = 0, edited = 1, removed = 1, files_added = 0 },
                    bundle.changes(bundle.previous_digest(next_slot), second))
  end)

  it("makes a version in two steps: timeline.json is in place only when finished, never after abort", function()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    local t = timeline({ entry("1731624067.001900", "x") })
    local written = assert(bundle.write(t, slot, { json = false, defer_zip = true }))
    assert.are.equal(0, #zips) -- the zip waits for finish_zip
    assert.is_true(written.finish_zip())
    assert.are.equal(1, #zips)
    assert.is_true(written.finish_zip()) -- once
    assert.are.equal(1, #zips)
    local job = assert(bundle.complete_begin(t, slot))
    assert.is_nil(read(slot.dir .. "/timeline.json"))
    assert.are.same({}, bundle.versions(root, "C0INCIDENT", "1731624067.001900"))
    assert.is_true(job.finish(written))
    assert.are.equal(slot.dir .. "/timeline.json", written.json_path)
    assert.are.same(t.entries[1].ts, cjson.decode(read(written.json_path)).entries[1].ts)
    assert.are.same({ 1 }, bundle.versions(root, "C0INCIDENT", "1731624067.001900"))
    -- the next one is begun and dropped (its zip failed): no version 2
    local again = bundle.prepare("C0INCIDENT", "1731624067.001900")
    assert.are.equal(2, again.version)
    local dropped = assert(bundle.complete_begin(t, again))
    dropped.abort()
    assert.is_nil(read(again.dir .. "/timeline.json"))
    assert.are.same({ 1 }, bundle.versions(root, "C0INCIDENT", "1731624067.001900"))
    assert.has_error(function() bundle.write(t, again, { defer_zip = true }) end)
  end)

  it("prepares the report templates: the default, each channel's, the picture's when one is drawn; a broken one is left to the render", function()
    local templates = require "lib.templates"
    local real, asked = templates.prepare, {}
    templates.prepare = function(name)
      asked[#asked + 1] = name
      if name == "broken.md" then error("broken.md:1: unclosed section") end
    end
    local ok, err = pcall(bundle.prepare_templates, { report = { template = "t.md",
      templates_by_channel = { C0OPS = "broken.md" } } })
    templates.prepare = real
    assert(ok, err)
    assert.are.same({ "t.md", "incident-timeline.svg", "broken.md" }, asked)
    asked = {}
    templates.prepare = function(name) asked[#asked + 1] = name end
    bundle.prepare_templates({ report = { picture = { format = "none" } } }) -- (no picture drawn)
    templates.prepare = real
    assert.are.same({ "postmortem.md" }, asked)
  end)

  it("reads the previous version's timeline.json back", function()
    local slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    bundle.write(timeline({ entry("1731624067.001900", "x") }), slot)
    local next_slot = bundle.prepare("C0INCIDENT", "1731624067.001900")
    local prev = bundle.load_timeline(next_slot.previous_dir)
    assert.are.equal("1731624067.001900", prev.entries[1].ts)
    assert.is_nil(bundle.load_timeline(root .. "/nowhere"))
  end)
end)
