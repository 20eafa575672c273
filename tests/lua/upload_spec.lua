-- Specs for scripts/lib/upload.lua: the three-step upload (getUploadURLExternal with the exact
-- length, POST of the file to upload_url, one completeUploadExternal for all files with channel,
-- parent thread_ts and comment), its failures, and the summary comment. host is stubbed.
package.path = "tests/lua/?.lua;" .. package.path
local cjson = require "cjson"

local function stub_host(opts)
  opts = opts or {}
  local calls = {}
  local n = 0
  package.loaded.host = {
    file_size = function(path)
      if opts.sizes[path] then return opts.sizes[path] end
      return nil, { code = "io", message = "no such file " .. path }
    end,
    api = function(method, params)
      calls[#calls + 1] = { kind = "api", method = method, params = params }
      if opts.api_error and opts.api_error[method] then return nil, opts.api_error[method] end
      if method == "files.getUploadURLExternal" then
        n = n + 1
        return { ok = true, upload_url = "http://127.0.0.1:9/upload/" .. n, file_id = "F0UP" .. n }
      end
      return { ok = true, files = cjson.decode(params.files) }
    end,
    http = function(req)
      calls[#calls + 1] = { kind = "http", req = req }
      return { status = opts.status or 200, headers = {}, body = "OK" }
    end,
  }
  package.loaded["lib.upload"] = nil
  return calls
end

local FILES = {
  { path = "/d/v1/p.md", filename = "postmortem-2024-11-14-x.md", title = "Postmortem: x" },
  { path = "/d/v1/p.zip", filename = "postmortem-2024-11-14-x.zip", title = "Postmortem bundle: x" },
}

describe("upload.send and upload.share", function()
  it("asks for an upload URL per file with the exact length, posts the file, then shares once", function()
    local calls = stub_host({ sizes = { ["/d/v1/p.md"] = 1234, ["/d/v1/p.zip"] = 98765 } })
    local upload = require "lib.upload"
    assert.are.equal("F0UP1", upload.send(FILES[1]))
    assert.are.equal("F0UP2", upload.send(FILES[2]))
    local res = assert(upload.share("C0INCIDENT", "1731624067.001900", {
      { id = "F0UP1", title = FILES[1].title }, { id = "F0UP2", title = FILES[2].title },
    }, "Postmortem: 3 entries"))
    assert.are.equal(5, #calls)
    assert.are.same({ filename = "postmortem-2024-11-14-x.md", length = 1234 }, calls[1].params)
    assert.are.same({ method = "POST", url = "http://127.0.0.1:9/upload/1", body_file = "/d/v1/p.md", retries = 2 },
                    calls[2].req)
    assert.are.same({ filename = "postmortem-2024-11-14-x.zip", length = 98765 }, calls[3].params)
    assert.are.equal("/d/v1/p.zip", calls[4].req.body_file)
    local done = calls[5]
    assert.are.equal("files.completeUploadExternal", done.method)
    assert.are.equal("C0INCIDENT", done.params.channel_id)
    assert.are.equal("1731624067.001900", done.params.thread_ts)
    assert.are.equal("Postmortem: 3 entries", done.params.initial_comment)
    assert.are.same({ { id = "F0UP1", title = "Postmortem: x" }, { id = "F0UP2", title = "Postmortem bundle: x" } },
                    cjson.decode(done.params.files))
    assert.are.equal(2, #res.files)
  end)

  it("fails a send without completing anything when the upload URL answers other than 200", function()
    local calls = stub_host({ sizes = { ["/d/v1/p.md"] = 1, ["/d/v1/p.zip"] = 2 }, status = 500 })
    local upload = require "lib.upload"
    local ok, err = upload.send(FILES[1])
    assert.is_nil(ok)
    assert.are.equal("upload_failed", err.code)
    assert.are.equal(500, err.status)
    for _, c in ipairs(calls) do assert.are_not.equal("files.completeUploadExternal", c.method) end
  end)

  it("passes Slack errors through (missing_scope with needed)", function()
    local scope = { code = "missing_scope", message = "missing scope", needed = "files:write" }
    stub_host({ sizes = { ["/d/v1/p.md"] = 1 }, api_error = { ["files.getUploadURLExternal"] = scope } })
    local upload = require "lib.upload"
    local ok, err = upload.send(FILES[1])
    assert.is_nil(ok)
    assert.are.equal("files:write", err.needed)
  end)

  it("fails when a file cannot be sized", function()
    stub_host({ sizes = {} })
    local upload = require "lib.upload"
    local ok, err = upload.send(FILES[1])
    assert.is_nil(ok)
    assert.are.equal("io", err.code)
  end)

  it("turns what a send raises into an upload_failed error", function()
    stub_host({ sizes = { ["/d/v1/p.md"] = 1 } })
    package.loaded.host.http = function() error("curl went away") end
    local upload = require "lib.upload"
    local ok, err = upload.send(FILES[1])
    assert.is_nil(ok)
    assert.are.equal("upload_failed", err.code)
    assert.matches("curl went away", err.message)
  end)
end)

describe("upload.summary", function()
  before_each(function() stub_host({ sizes = {} }) end)

  it("counts entries and files, names missing files and incompleteness, adds the extra line", function()
    local upload = require "lib.upload"
    local view = { counts = { entries = 24, files_downloaded = 4, files_missing = 1 },
                   incomplete = { fetched = 200, expected = 1040 } }
    assert.are.equal("Postmortem: 24 entries, 4 files attached, 1 could not be downloaded. "
      .. "*Incomplete:* only 200 of 1040 messages could be read.\nVersion 2.", upload.summary(view, "Version 2."))
    assert.are.equal("Postmortem: 1 entry, 1 file attached.",
                     upload.summary({ counts = { entries = 1, files_downloaded = 1, files_missing = 0 },
                                      incomplete = false }))
  end)
end)
