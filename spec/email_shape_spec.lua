-- check.email's rule (`^L@D$`, L and D runs of [!-?A-~\128-\255], D with a dot neither first
-- nor last, at most 254 bytes) now runs as core.graphic's byte scan and a plain search: it must
-- give the verdict of the rule written as a pattern, on any string.
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

  it("core.graphic: false on a control byte, a space or DEL; else where the byte occurs", function()
    assert.same({ true, 2, 4 }, { core.graphic("a@b@c", 64) })
    assert.same({ true }, { core.graphic("abc", 64) })
    assert.same({ true }, { core.graphic("", 64) })
    for _, v in ipairs { "a b", "a\0b", "a\127", "\31", "a\n" } do assert.same({ false }, { core.graphic(v, 64) }) end
    assert.same({ true, 1, 1 }, { core.graphic("\128\255", 128) })
  end)
end)
