-- Specs for lib/files.lua: what each file mode becomes (image, file, snippet, hidden_by_limit,
-- tombstone, external, check_file_info stubs, too large), hostile names made safe, downloads with
-- their failure reasons and the concurrency limit (through lib/early_downloads.lua), and the offline
-- render's use of present files.
package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
local H = {}
package.loaded.host = H

local function reset_host()
  stub.download_host(H)
end
reset_host()

local files = require "lib.files"
local early_downloads = require "lib.early_downloads"

-- What the bot does for jobs whose files were all handed over early and whose entries were all kept.
local function download_all(jobs, out_dir, opts)
  local e = early_downloads.new(out_dir, opts)
  e.add(jobs)
  e.run(function() end)
  e.keep(jobs)
  e.finish()
end

local function hosted(id, name, mimetype, extra)
  local f = { id = id, name = name, title = name, mimetype = mimetype, mode = "hosted", size = 100,
              url_private = "https://files.slack.com/files-pri/T-" .. id .. "/x",
              url_private_download = "https://files.slack.com/files-pri/T-" .. id .. "/download/x",
              permalink = "https://acme.slack.com/files/U1/" .. id .. "/x" }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

describe("files.describe", function()
  it("embeds images, links other files, keeps snippet previews", function()
    local img, url = files.describe(hosted("F1", "a.png", "image/png"))
    assert.are.equal("image", img.kind)
    assert.are.equal("https://files.slack.com/files-pri/T-F1/download/x", url)
    assert.is_nil(img.missing_reason)
    assert.are.equal("https://acme.slack.com/files/U1/F1/x", img.slack_permalink)
    local log = files.describe(hosted("F2", "a.log", "text/plain"))
    assert.are.equal("file", log.kind)
    local snip, surl = files.describe(hosted("F3", "r.sh", "text/x-sh", { mode = "snippet", preview = "#!/bin/sh\necho" }))
    assert.are.equal("snippet", snip.kind)
    assert.are.equal("#!/bin/sh\necho", snip.preview)
    assert.is_string(surl)
  end)

  it("falls back to url_private when there is no url_private_download", function()
    local _, url = files.describe(hosted("F1", "a.png", "image/png", { url_private_download = "" }))
    assert.are.equal("https://files.slack.com/files-pri/T-F1/x", url)
  end)

  local cases = {
    { "hidden_by_limit", { id = "F4", mode = "hidden_by_limit" }, "history limit" },
    { "tombstone", { id = "F5", mode = "tombstone" }, "deleted" },
    { "external", hosted("F6", "doc", "application/pdf", { mode = "external", is_external = true, external_type = "gdrive" }),
      "outside Slack %(gdrive%)" },
    { "check_file_info stub", { id = "F7", mode = "file_access", file_access = "check_file_info", created = 0 },
      "files.info" },
    { "no url", { id = "F8", mode = "hosted", name = "x" }, "no download link" },
    { "too large", hosted("F9", "big.bin", "application/octet-stream", { size = 300 * 1024 * 1024 }), "too large %(300.0 MB, limit 100.0 MB%)" },
  }
  for _, c in ipairs(cases) do
    it("states why a " .. c[1] .. " file is not downloaded", function()
      local fe, url = files.describe(c[2], 100 * 1024 * 1024)
      assert.is_nil(url)
      assert.is_string(fe.missing_reason)
      assert.truthy(fe.missing_reason:find(c[3]), fe.missing_reason)
      assert.are.equal(c[2].id, fe.id)
      assert.is_truthy(fe.name or fe.title)
    end)
  end
end)

describe("files.safe_name", function()
  local hostile = {
    { "F1", "../../etc/passwd", "F1-_._etc_passwd" },
    { "F1", "..", "F1-file" },
    { "F1", ".bashrc", "F1-bashrc" },
    { "F1", "a/b\\c.txt", "F1-a_b_c.txt" },
    { "F1", "evil\0name\n\r\t.png", "F1-evil_name___.png" },
    { "F1", "résumé 日本語.pdf", "F1-résumé 日本語.pdf" },
    { "F1", "x\226\128\174gnp.exe", "F1-x_gnp.exe" },              -- U+202E right-to-left override
    { "F1", "bad\255\254utf8.txt", "F1-bad__utf8.txt" },
    { "F1", "", "F1-file" },
    { "F1", nil, "F1-file" },
    { "../F1", "a.txt", "F1-a.txt" },
    { "F1", "a..b...c.txt", "F1-a.b.c.txt" },
    { "F1", "trailing. . .", "F1-trailing" },
    { "F1", "C:\\Windows\\x.dll", "F1-C__Windows_x.dll" },
  }
  for _, h in ipairs(hostile) do
    it("makes " .. string.format("%q", tostring(h[2])) .. " safe", function()
      assert.are.equal(h[3], files.safe_name(h[1], h[2]))
    end)
  end

  it("never yields separators, dot-dot, controls or a leading dot, for any of the hostile names", function()
    for _, h in ipairs(hostile) do
      local s = files.safe_name(h[1], h[2])
      assert.is_nil(s:find("/", 1, true))
      assert.is_nil(s:find("\\", 1, true))
      assert.is_nil(s:find("..", 1, true))
      assert.is_nil(s:find("%c"))
      assert.are_not.equal(".", s:sub(1, 1))
      assert.is_truthy(utf8.len(s))
    end
  end)

  it("bounds long names to 100 bytes on a UTF-8 boundary and keeps the extension", function()
    local long = string.rep("日本", 80) .. ".png"
    local s = files.safe_name("F0ABCDEF", long)
    assert.is_true(#s <= 100)
    assert.is_truthy(utf8.len(s))
    assert.are.equal(".png", s:sub(-4))
    assert.are.equal("F0ABCDEF-日本", s:sub(1, 15))
    local plain = files.safe_name("F1", string.rep("a", 300))
    assert.are.equal(100, #plain)
  end)
end)

describe("the downloads (lib/early_downloads.lua, every file handed over early and kept)", function()
  before_each(reset_host)

  local function job(id, name)
    local fe, url = files.describe(hosted(id, name, "image/png"))
    return { entry = fe, url = url }
  end

  it("downloads into attachments/ under the safe name, at most `concurrency` at once", function()
    local dests = {}
    H.download = function(_url, dest, opts)
      dests[#dests + 1] = dest
      assert.are.equal(1000, opts.max_bytes)
      return { path = dest, size = 42, sha256 = "ab", content_type = "image/png" }
    end
    local jobs = { job("F1", "../a.png"), job("F2", "b.png") }
    download_all(jobs, "/data/reports/C1/1.000001/v1", { concurrency = 3, max_bytes = 1000 })
    assert.are.equal(3, H.limits[#H.limits]) -- the last host.all: the downloads
    assert.are.same({ "/data/reports/C1/1.000001/v1/attachments" }, H.mkdirs)
    assert.are.same({ "/data/reports/C1/1.000001/v1/attachments/F1-_a.png",
                      "/data/reports/C1/1.000001/v1/attachments/F2-b.png" }, dests)
    assert.are.equal("attachments/F1-_a.png", jobs[1].entry.local_path)
    assert.are.equal(42, jobs[1].entry.size)
    assert.are.equal("ab", jobs[1].entry.sha256)
  end)

  it("records each failure with its reason and goes on", function()
    local errors = {
      F1 = { code = "login_page" }, F2 = { code = "too_large" }, F3 = { code = "http_status", status = 403 },
      F4 = { code = "redirect_refused" }, F5 = { code = "timeout" },
    }
    H.download = function(url, dest)
      local id = url:match("T%-(F%d)")
      if errors[id] then return nil, errors[id] end
      return { path = dest, size = 1, sha256 = "00" }
    end
    local jobs = {}
    for i = 1, 6 do jobs[i] = job("F" .. i, "f" .. i .. ".png") end
    download_all(jobs, "/out", { max_bytes = 1024 * 1024 })
    assert.are.equal("login page instead of the file", jobs[1].entry.missing_reason)
    assert.are.equal("too large (limit 1.0 MB)", jobs[2].entry.missing_reason)
    assert.are.equal("HTTP status 403", jobs[3].entry.missing_reason)
    assert.truthy(jobs[4].entry.missing_reason:find("redirect"))
    assert.are.equal("download timed out", jobs[5].entry.missing_reason)
    assert.is_nil(jobs[6].entry.missing_reason)
    assert.are.equal("attachments/F6-f6.png", jobs[6].entry.local_path)
    for i = 1, 5 do assert.is_nil(jobs[i].entry.local_path) end
  end)

  it("fetches a file shared twice only once", function()
    local n = 0
    H.download = function(_, dest)
      n = n + 1
      return { path = dest, size = 1, sha256 = "00" }
    end
    local a, b = job("F1", "x.png"), job("F1", "x.png")
    download_all({ a, b }, "/out", {})
    assert.are.equal(1, n)
    assert.are.equal("attachments/F1-x.png", b.entry.local_path)
  end)

  it("gives two files without an id and with the same name two local names", function()
    local written = {}
    H.download = function(url, dest)
      assert.is_nil(written[dest], "a second download would overwrite " .. dest)
      written[dest] = url
      return { path = dest, size = 1, sha256 = url }
    end
    local function anon(url)
      return { entry = { name = "report.pdf", kind = "file" }, url = url }
    end
    -- and two ids that safe_name makes alike ("F1!" and "F1?" both become "F1")
    local a, b = anon("https://x/1"), anon("https://x/2")
    local c = { entry = { id = "F1!", name = "z.png" }, url = "https://x/3" }
    local d = { entry = { id = "F1?", name = "z.png" }, url = "https://x/4" }
    download_all({ a, b, c, d }, "/out", {})
    assert.are_not.equal(a.entry.local_path, b.entry.local_path)
    assert.are_not.equal(c.entry.local_path, d.entry.local_path)
    assert.are.equal("attachments/F-report.pdf", a.entry.local_path)
    assert.are.equal("attachments/F-report-2.pdf", b.entry.local_path)
    assert.are.equal("https://x/2", b.entry.sha256)
    assert.are.equal("https://x/4", d.entry.sha256)
  end)

  it("names each failure for what it is: a loop, a bad scheme, an internal address, a short body", function()
    local errors = {
      F1 = { code = "too_many_redirects" }, F2 = { code = "redirect_refused" },
      F3 = { code = "address_refused" }, F4 = { code = "truncated" },
      F5 = { code = "connect", message = "the connection broke: reset" },
    }
    H.download = function(url)
      return nil, errors[url:match("T%-(F%d)")]
    end
    local jobs = {}
    for i = 1, 5 do jobs[i] = job("F" .. i, "f" .. i .. ".png") end
    download_all(jobs, "/out", {})
    local seen = {}
    for i = 1, 5 do
      local r = jobs[i].entry.missing_reason
      assert.is_nil(r:find("another host"), r)
      assert.is_nil(seen[r], "two different failures read alike: " .. r)
      seen[r] = true
    end
    assert.truthy(jobs[1].entry.missing_reason:find("redirects"))
    assert.truthy(jobs[2].entry.missing_reason:find("not http"))
    assert.truthy(jobs[3].entry.missing_reason:find("internal address"))
    assert.truthy(jobs[4].entry.missing_reason:find("early"))
    assert.is_nil(jobs[5].entry.missing_reason:find("could not connect"))
  end)

  it("passes downloads.allow_private from the config, and only when it is true", function()
    local seen = {}
    H.download = function(_, dest, opts)
      seen[#seen + 1] = opts.allow_private == true
      return { path = dest, size = 1, sha256 = "00" }
    end
    H.config = function() return { downloads = { allow_private = true } } end
    download_all({ job("F1", "a.png") }, "/out", {})
    H.config = function() return { downloads = { allow_private = "yes" } } end
    download_all({ job("F1", "a.png") }, "/out", {})
    H.config = function() return {} end
    download_all({ job("F1", "a.png") }, "/out", {})
    assert.are.same({ true, false, false }, seen)
  end)

  it("counts downloaded and missing files with their bytes", function()
    local s = files.stats({ { files = { { local_path = "attachments/a", size = 10 }, { missing_reason = "x" } } },
                            { files = { { local_path = "attachments/b", size = 5 } } } })
    assert.are.same({ downloaded = 2, missing = 1, bytes = 15 }, s)
  end)
end)

describe("files.attach_offline", function()
  before_each(reset_host)

  it("uses a file already in out_dir/attachments and marks the rest 'offline render'", function()
    H.exists = function(p) return p == "/r/attachments/F1-a.png" and "file" or nil end
    H.file_size = function() return 77 end
    local a = { entry = files.describe(hosted("F1", "a.png", "image/png")) }
    local b = { entry = files.describe(hosted("F2", "b.png", "image/png")) }
    files.attach_offline({ a, b }, "/r")
    assert.are.equal("attachments/F1-a.png", a.entry.local_path)
    assert.are.equal(77, a.entry.size)
    assert.are.equal("offline render", b.entry.missing_reason)
  end)
end)
