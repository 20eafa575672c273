-- Specs for scripts/lib/usergroups.lua (handles from usergroups.list: one call, cached, none when no
-- group is mentioned, a failure leaves ids) and scripts/lib/mentions.lua (users, channels and user
-- groups found in text, blocks and attachments). host is stubbed.
package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"

local H = { calls = {} }
package.loaded.host = H
local usergroups = require "lib.usergroups"
local mentions = require "lib.mentions"

local LIST = { ok = true, usergroups = {
  { id = "S1", handle = "oncall-db", name = "DB on call" },
  { id = "S2", handle = "", name = "network" },
  { id = "S3" },
} }

before_each(function()
  usergroups.reset()
  H.calls = {}
  H.clock = 1000
  H.now = function() return H.clock end
  H.log = function() end
  H.api = function(method)
    H.calls[#H.calls + 1] = method
    if H.fail then return nil, stub.host_error("missing_scope") end
    return LIST
  end
end)

describe("usergroups.ensure", function()
  it("lists the groups once and names them by handle (else name)", function()
    local handles = usergroups.ensure({ "S1", "S2" })
    assert.are.same({ S1 = "oncall-db", S2 = "network" }, handles)
    assert.are.same({ "usergroups.list" }, H.calls)
  end)

  it("answers from the cache while it is fresh and knows every id", function()
    usergroups.ensure({ "S1" })
    usergroups.ensure({ "S1", "S2" }, { ttl = 60 })
    assert.are.equal(1, #H.calls)
    H.clock = H.clock + 61
    usergroups.ensure({ "S1" }, { ttl = 60 })
    assert.are.equal(2, #H.calls)
  end)

  it("asks again for an id the cache does not know", function()
    usergroups.ensure({ "S1" })
    usergroups.ensure({ "S9" })
    assert.are.equal(2, #H.calls)
  end)

  it("makes no call when no group is mentioned", function()
    assert.are.same({}, usergroups.ensure({}))
    assert.are.same({}, H.calls)
  end)

  it("gives nothing (ids stay ids) when the call fails", function()
    H.fail = true
    assert.are.same({}, usergroups.ensure({ "S1" }))
    H.fail = nil
  end)

  it("reads a saved response or a plain array", function()
    assert.are.same({ S1 = "oncall-db", S2 = "network" }, usergroups.handles(LIST))
    assert.are.same({ S7 = "sre" }, usergroups.handles({ { id = "S7", handle = "@sre" } }))
    assert.are.same({}, usergroups.handles("junk"))
  end)
end)

describe("mentions.of", function()
  it("finds ids in text, blocks and attachments, each once, sorted", function()
    local refs = mentions.of({
      { text = "<@U2> <#C2> <#C3|named> <!subteam^S2> <!subteam^S3|@labelled>" },
      { blocks = {
        { type = "rich_text", elements = { { type = "rich_text_section", elements = {
          { type = "user", user_id = "U1" }, { type = "channel", channel_id = "C1" },
          { type = "usergroup", usergroup_id = "S1" } } } } },
        { type = "section", text = { type = "mrkdwn", text = "poll by <@U3>" },
          fields = { { type = "mrkdwn", text = "<@U4>, <@U2>" } } },
      } },
      { attachments = { { pretext = "<@U5>", fields = { { value = "<!subteam^S4>" } },
        blocks = { { type = "context", elements = { { type = "mrkdwn", text = "<#C4>" } } } } } } },
      { text = 42, blocks = "junk", attachments = { "junk" } },
    })
    assert.are.same({ "U1", "U2", "U3", "U4", "U5" }, refs.users)
    assert.are.same({ "C1", "C2", "C4" }, refs.channels)
    assert.are.same({ "S1", "S2", "S4" }, refs.usergroups)
  end)

  it("stops at a depth no payload has", function()
    local deep = { type = "user", user_id = "U0" }
    for _ = 1, 100 do deep = { elements = { deep } } end
    assert.are.same({}, mentions.of({ { blocks = { deep } } }).users)
  end)
end)
