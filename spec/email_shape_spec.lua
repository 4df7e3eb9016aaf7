-- check.email's rule (`^L@D$`, L and D runs of [!-?A-~\128-\255], D with a dot neither first
-- nor last, at most 254 bytes) runs as core.email_shape's byte scan: it must give the verdict
-- of the rule written as a pattern, on any string.
local check = require "auth0.check"
local core = require "auth0.core"

local function by_pattern(v)
  if #v > 254 or not v:find("^[!-?A-~\128-\255]+@[!-?A-~\128-\255]+$") then return false end
  local d = v:match("@(.*)$")
  return d:find(".", 2, true) ~= nil and d:sub(-1) ~= "."
end

local AT = setmetatable({}, { __index = { fail = function(_, msg) error(msg, 0) end } })

describe("check.email", function()
  it("gives the pattern's verdict on 100,000 random strings", function()
    local chars = { "a", "Z", "0", "@", ".", " ", "\0", "\127", "\128", "\255", "\31", "!", "~", "?", "-", "\t", "\n" }
    math.randomseed(7)
    local ok = 0
    for i = 1, 100000 do
      local t = {}
      for j = 1, math.random(1, 10) do t[j] = chars[math.random(#chars)] end
      local v = table.concat(t)
      if i % 3 == 0 then v = "x@y.z" .. v elseif i % 5 == 0 then v = v .. "a@b.c" end
      if i % 101 == 0 then v = ("a"):rep(246) .. v end
      local want = by_pattern(v)
      local got = pcall(check.email, AT, v)
      assert(got == want, ("%q: %s, the pattern says %s"):format(v, tostring(got), tostring(want)))
      if got then ok = ok + 1 end
    end
    assert(ok > 1000, "too few valid addresses drawn: " .. ok)
  end)

  it("raises with the documented words", function()
    local ok, err = pcall(check.email, AT, "a@b")
    assert.is_false(ok)
    assert.equal("email is malformed", err)
  end)

  it("core.email_shape: false for anything but a string, at the 254-byte cap as the rule says", function()
    for _, v in ipairs { 42, true, {}, print } do assert.is_false(core.email_shape(v)) end
    assert.is_false(core.email_shape())
    assert.is_true(core.email_shape(("a"):rep(250) .. "@b.c"))    -- 254 bytes
    assert.is_false(core.email_shape(("a"):rep(251) .. "@b.c"))   -- 255
    assert.is_false(core.email_shape("a@.b"))   -- the domain's only dot is its first byte
    assert.is_true(core.email_shape("a@.b.c"))
    assert.is_false(core.email_shape("a.b@c"))  -- a dot before the @ does not count
  end)

  it("core.strings: true when every argument is a non-empty string", function()
    assert.is_true(core.strings("a"))
    assert.is_true(core.strings("a", "b", "c"))
    assert.is_false(core.strings())
    assert.is_false(core.strings("a", ""))
    assert.is_false(core.strings("a", nil, "c"))
    assert.is_false(core.strings("a", 1))   -- a number is not a string here
    assert.is_false(core.strings({}, "a"))
  end)
end)
