-- Specs for scripts/lib/permissions.lua: everyone may broadcast when no broadcasters are listed,
-- listed users may, members of listed user groups may (looked up with usergroups.users.list and
-- cached briefly), everyone else is refused, and a failed lookup refuses rather than allows.
describe("permissions", function()
  local permissions, calls, members, clock, failing

  local function config(users, groups)
    return { status = { broadcasters = { users = users, usergroups = groups } } }
  end

  before_each(function()
    calls, clock, failing = {}, 100, {}
    members = { S0ONCALL = { "U2", "U3" }, S0SRE = { "U4" } }
    package.loaded.host = {
      api = function(method, params)
        calls[#calls + 1] = method .. " " .. params.usergroup
        if failing[params.usergroup] then
          return nil, setmetatable({ code = "missing_scope" }, { __tostring = function() return "missing_scope: usergroups:read" end })
        end
        return { ok = true, users = members[params.usergroup] or {} }
      end,
      monotonic = function() return clock end,
      log = function() end,
    }
    package.loaded["lib.permissions"] = nil
    permissions = require "lib.permissions"
  end)

  after_each(function()
    package.loaded.host = nil
  end)

  it("lets everyone broadcast when no users and no groups are listed", function()
    assert.is_true(permissions.may_broadcast("U9", config({}, {})))
    assert.is_true(permissions.may_broadcast("U9", {}))
    assert.are.equal(0, #calls)
  end)

  it("lets listed users broadcast without asking Slack", function()
    assert.is_true(permissions.may_broadcast("U1", config({ "U1" }, { "S0ONCALL" })))
    assert.are.equal(0, #calls)
  end)

  it("lets members of a listed user group broadcast", function()
    assert.is_true(permissions.may_broadcast("U4", config({ "U1" }, { "S0ONCALL", "S0SRE" })))
    assert.are.same({ "usergroups.users.list S0ONCALL", "usergroups.users.list S0SRE" }, calls)
  end)

  it("refuses everyone else", function()
    local ok, why = permissions.may_broadcast("U9", config({ "U1" }, { "S0ONCALL" }))
    assert.is_false(ok)
    assert.are.equal("not a listed broadcaster", why)
  end)

  it("caches group members for a minute, then asks again", function()
    local cfg = config({}, { "S0ONCALL" })
    assert.is_true(permissions.may_broadcast("U2", cfg))
    assert.is_true(permissions.may_broadcast("U3", cfg))
    assert.are.equal(1, #calls)
    members.S0ONCALL = { "U3" }
    clock = clock + 61
    assert.is_false(permissions.may_broadcast("U2", cfg))
    assert.are.equal(2, #calls)
  end)

  it("refuses when the group lookup fails, and says why", function()
    failing.S0ONCALL = true
    local ok, why = permissions.may_broadcast("U2", config({}, { "S0ONCALL" }))
    assert.is_false(ok)
    assert.matches("lookup failed for S0ONCALL: missing_scope", why, 1, true)
  end)

  it("words the refusal politely, naming the user and saying nothing was sent", function()
    local text = permissions.refusal("U9", "send status updates")
    assert.matches("^Sorry <@U9>", text)
    assert.matches("send status updates", text, 1, true)
    assert.matches("Nothing was sent", text, 1, true)
  end)
end)
