-- Specs for scripts/lib/incident_picture.lua and templates/incident-timeline.svg.mustache: the
-- picture's data (range, phases and their durations, buckets, markers, lanes, the config's
-- choices), the SVG from the default template (no script, no event attributes, no references, text
-- escaped) and the refusal of an unsafe template. host is stubbed (UTC); templates come from disk.

package.path = "tests/lua/?.lua;" .. package.path
local stub = require "helpers.host_stub"

local T0 = 1731624067 -- 2024-11-14 22:41:07 UTC

local function stub_host(templates)
  package.loaded.host = {
    templates = templates or stub.disk_templates,
    time_parts = stub.utc_time_parts,
    format_time = stub.utc_format_time,
    log = function() end,
  }
  for _, m in ipairs({ "lib.incident_picture", "lib.templates", "lib.timefmt" }) do package.loaded[m] = nil end
  return require "lib.incident_picture"
end

local function entry(offset, who, extra)
  local e = { ts = string.format("%d.000100", T0 + offset), time = T0 + offset,
              author = { id = who, name = who, is_bot = who:match("^B") ~= nil } }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function point(offset)
  return { ts = string.format("%d.000100", T0 + offset), time = T0 + offset, label = "t+" .. offset }
end

local function fixture_timeline()
  local entries = {
    entry(0, "U1"),
    entry(12, "B0ALERT", { merged = { count = 6 } }),
    entry(140, "U2"),
    entry(300, "U1", { marks = { status_update = true } }),
    entry(900, "U3", { marks = { mitigation = true } }),
    entry(3600, "U1", { marks = { resolution = true } }),
  }
  return {
    entries = entries,
    figures = { start = point(0), first_response = point(140), mitigation = point(900), resolution = point(3600) },
  }
end

local function by_kind(markers)
  local out = {}
  for _, m in ipairs(markers) do
    out[m.kind] = out[m.kind] or {}
    table.insert(out[m.kind], m)
  end
  return out
end

describe("incident_picture.data", function()
  it("spans the incident and draws its three phases with their durations", function()
    local pic = stub_host()
    local d = pic.data(fixture_timeline(), { zone = "UTC", config = {}, title = "Checkout" })
    assert.are.equal(T0, d.start_epoch)
    assert.are.equal(T0 + 3600, d.end_epoch)
    assert.are.equal(3, #d.phases)
    assert.are.same({ "response", "mitigation", "resolution" }, { d.phases[1].key, d.phases[2].key, d.phases[3].key })
    assert.are.same({ 140, 760, 2700 }, { d.phases[1].seconds, d.phases[2].seconds, d.phases[3].seconds })
    assert.are.equal("45m", d.phases[3].duration_label)
    -- consecutive spans, left to right, inside the plot
    assert.is_true(d.phases[1].x >= d.left)
    assert.is_true(math.abs(d.phases[1].x + d.phases[1].width - d.phases[2].x) < 0.2)
    assert.is_true(d.phases[3].x + d.phases[3].width <= d.right_x)
  end)

  it("puts a marker on every figure, status update and alert storm", function()
    local pic = stub_host()
    local d = pic.data(fixture_timeline(), { zone = "UTC", config = {} })
    local kinds = by_kind(d.markers)
    for _, k in ipairs({ "start", "first-response", "mitigation", "resolution", "status-update", "alert-storm" }) do
      assert.are.equal(1, kinds[k] and #kinds[k] or 0, k)
    end
    assert.are.equal("Alerts ×6", kinds["alert-storm"][1].label)
    assert.are.equal("Mitigation t+900", kinds.mitigation[1].title)
    -- markers are in time order, so their x grows
    for i = 2, #d.markers do assert.is_true(d.markers[i].x >= d.markers[i - 1].x) end
  end)

  it("counts messages per bucket, an alert storm with all its messages", function()
    local pic = stub_host()
    local d = pic.data(fixture_timeline(), { zone = "UTC", config = {} })
    local total = 0
    for _, b in ipairs(d.buckets) do total = total + b.count end
    assert.are.equal(5 + 6, total)
    assert.are.equal(7, d.max_count) -- the first bucket: the first message and the storm
    for _, b in ipairs(d.buckets) do
      assert.is_true(b.height <= d.bars_h and b.y >= d.bars_y and b.x >= d.left and b.x + b.width <= d.right_x + 0.1)
    end
  end)

  it("draws the people who spoke as lanes, bots not, and only when few enough", function()
    local pic = stub_host()
    local d = pic.data(fixture_timeline(), { zone = "UTC", config = {} })
    assert.are.same({ "U1", "U2", "U3" }, { d.lanes[1].name, d.lanes[2].name, d.lanes[3].name })
    assert.are.equal(3, d.lanes[1].count)
    local few = pic.data(fixture_timeline(), { zone = "UTC", config = { report = { picture = { max_lanes = 2 } } } })
    assert.are.equal(0, #few.lanes)
    assert.are.same({ people = 3, max = 2 }, few.lanes_hidden)
  end)

  it("follows the config: png and Mermaid, or nothing", function()
    local pic = stub_host()
    local cfg = { report = { picture = { format = "both", mermaid = true } } }
    local d = pic.data(fixture_timeline(), { zone = "UTC", config = cfg })
    assert.are.equal("attachments/incident-timeline.png", d.png_path)
    assert.matches("^```mermaid\ngantt\n", d.mermaid_block)
    assert.matches("to resolution %(45m%) :resolution, 2024%-11%-14 22:56:07, 2024%-11%-14 23:41:07", d.mermaid_block)
    assert.is_false(pic.data(fixture_timeline(), { config = { report = { picture = { format = "none" } } } }))
    assert.is_false(pic.data({ entries = {} }, { config = {} }))
  end)

  it("has no phases when nothing was marked, and says so", function()
    local pic = stub_host()
    local d = pic.data({ entries = { entry(0, "U1"), entry(30, "U1") }, figures = { start = point(0) } }, { config = {} })
    assert.are.equal(0, #d.phases)
    assert.is_false(d.has_phases)
    local svg = assert(pic.svg({ picture = d }))
    assert.matches("no phases could be computed", svg)
  end)
end)

describe("incident_picture.svg", function()
  it("is a safe SVG whose text is escaped", function()
    local pic = stub_host()
    local t = fixture_timeline()
    t.entries[3].author.name = "<script>alert(1)</script> & \"Bob\" onload=x"
    local svg = assert(pic.svg({ picture = pic.data(t, { zone = "UTC", config = {}, title = "a < b" }) }))
    assert.matches("^<svg xmlns=\"http://www.w3.org/2000/svg\"", svg)
    assert.matches("<title id=\"pmb%-title\">Incident timeline: a &lt; b</title>", svg)
    assert.matches("&lt;script&gt;alert%(1%)&lt;/script&gt; &amp; &quot;Bob&quot; onload=x", svg)
    assert.is_nil(svg:find("<script", 1, true))
    assert.are.same({}, pic.problems(svg))
    assert.matches("class=\"marker marker%-resolution\"", svg)
  end)

  it("refuses what a team's template could add: scripts, handlers, references", function()
    for _, bad in ipairs({
      '<svg><script>x()</script></svg>',
      '<svg><rect onclick="x()"/></svg>',
      '<svg><image href="https://example.com/a.png"/></svg>',
      '<svg><rect style="fill: url(https://example.com/x)"/></svg>',
      '<svg><style>@import "https://example.com/a.css";</style></svg>',
      '<svg><foreignObject/></svg>',
    }) do
      local pic = stub_host(function() return { ["incident-timeline.svg"] = bad } end)
      local svg, why = pic.svg({ picture = { title = "x" } })
      assert.is_nil(svg, bad)
      assert.matches("unsafe SVG", why)
    end
    local pic = stub_host()
    assert.are.same({}, pic.problems('<svg><rect fill="url(#grad)"/><text>say onload=1</text></svg>'))
  end)
end)
