-- Specs for lib/people.lua: display-name order, one users.info per user, concurrency through
-- host.all, the TTL cache across commands, bots, and unknown ids shown as ids (never an error).
package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"
local H = {}
package.loaded.host = H

local clock = 1000
local function reset_host()
  for k in pairs(H) do H[k] = nil end
  H.calls = {}
  H.log = function() end
  H.now = function() return clock end
  H.config = function() return { timeline = { user_cache_ttl = 60 } } end
  H.all = function(fns, limit)
    H.all_sizes = H.all_sizes or {}
    H.all_sizes[#H.all_sizes + 1] = { n = #fns, limit = limit }
    return stub.run_all(fns)
  end
  H.api = function(method, params)
    H.calls[#H.calls + 1] = { method = method, params = params }
    if method == "users.info" then
      local users = {
        U1 = { id = "U1", name = "ada", real_name = "Ada Lovelace", profile = { display_name = "ada.l", real_name = "Ada Lovelace" } },
        U2 = { id = "U2", name = "bob", real_name = "Bob Okafor", profile = { display_name = "", real_name = "Bob Okafor" } },
        U3 = { id = "U3", name = "chen", profile = { display_name = "" } },
        U4 = { id = "U4", name = "deploybot", is_bot = true, profile = { real_name = "Deploy Bot" } },
      }
      if users[params.user] then return { ok = true, user = users[params.user] } end
      if params.user == "UTIMEOUT" then return nil, { code = "timeout" } end
      return nil, { code = "user_not_found" }
    elseif method == "bots.info" then
      if params.bot == "B1" then return { ok = true, bot = { id = "B1", name = "Grafana" } } end
      return nil, { code = "bot_not_found" }
    end
    error("unexpected " .. method)
  end
end

local people = require "lib.people"

describe("people", function()
  before_each(function()
    reset_host()
    people.reset()
    clock = 1000
  end)

  it("names users by display_name, else real name, else name", function()
    local book = people.ensure({ "U1", "U2", "U3", "U4" })
    assert.are.equal("ada.l", book.U1.name)
    assert.are.equal("Bob Okafor", book.U2.name)
    assert.are.equal("chen", book.U3.name)
    assert.are.equal("Deploy Bot", book.U4.name)
    assert.is_true(book.U4.is_bot)
    assert.is_false(book.U1.is_bot)
  end)

  it("fetches each user once, all in one host.all batch", function()
    people.ensure({ "U1", "U2", "U1", "U2", "U3" })
    assert.are.equal(3, #H.calls)
    assert.are.equal(1, #H.all_sizes)
    assert.are.equal(3, H.all_sizes[1].n)
  end)

  it("reuses the cache across calls until the TTL passes", function()
    people.ensure({ "U1" })
    people.ensure({ "U1" })
    assert.are.equal(1, #H.calls)
    clock = clock + 59
    people.ensure({ "U1" })
    assert.are.equal(1, #H.calls)
    clock = clock + 2
    people.ensure({ "U1" })
    assert.are.equal(2, #H.calls)
  end)

  it("shows an unknown user by id, without raising", function()
    local book = people.ensure({ "UNOPE" })
    assert.are.equal("UNOPE", book.UNOPE.name)
    assert.is_true(book.UNOPE.unknown)
  end)

  it("retries a user whose lookup failed for a transient reason, not one Slack says is unknown", function()
    people.ensure({ "UTIMEOUT", "UNOPE" })
    people.ensure({ "UTIMEOUT", "UNOPE" })
    local timeouts, nopes = 0, 0
    for _, c in ipairs(H.calls) do
      if c.params.user == "UTIMEOUT" then timeouts = timeouts + 1 end
      if c.params.user == "UNOPE" then nopes = nopes + 1 end
    end
    assert.are.equal(2, timeouts)
    assert.are.equal(1, nopes)
  end)

  it("names bots through bots.info", function()
    local book = people.ensure({ "B1", "B9" })
    assert.are.equal("Grafana", book.B1.name)
    assert.is_true(book.B1.is_bot)
    assert.are.equal("B9", book.B9.name)
    assert.are.equal("bots.info", H.calls[1].method)
  end)

  it("gives names as a map for slack.user_names", function()
    assert.are.same({ U1 = "ada.l", U3 = "chen" }, people.names({ "U1", "U3" }))
  end)
end)
