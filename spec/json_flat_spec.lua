-- core.json_flat (csrc/l_json.c): the C decoder of flat JSON objects the call path uses before
-- cjson. Whatever it accepts it must decode exactly as cjson does (values, number subtypes,
-- null, duplicate keys); whatever else it must hand back to cjson by returning nothing.
local core = require "auth0.core"
local cjson = require("cjson.safe").new()

local mtype = math.type or function() return "float" end -- luacheck: ignore 143 (LuaJIT: doubles only)

-- Deep equality that tells 1 from 1.0 and compares NaN to itself.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return mtype(a) == mtype(b) and (a == b or (a ~= a and b ~= b)) end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local TOKENS = '{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln","id_token":"eyJ0eXAiOiJKV1QifQ.e30.c2ln",'
  .. '"refresh_token":"v1.MfQ-x_y","scope":"openid profile email","expires_in":86400,"token_type":"Bearer"}'

local FAST = {
  TOKENS, "{}", " {\n} \r\n", '{"_id":"a1","email":"bench-00000001@example.com","email_verified":false}',
  '{"a":true,"b":false,"c":null}', '{"a":"x","a":"y"}', '{"a":"caf\195\169 \1 ok"}', '{"":""}',
  '{"n":-0.5e3,"m":1E+2,"z":-0,"big":1e400,"i":123456789012345678901234567890}',
  '{"s":"' .. ("x"):rep(5000) .. '"}', '\t{ "k" : "v" , "j" :1 }\n',
  -- integers of up to 15 digits are summed in C, longer ones go to strtod
  '{"a":999999999999999,"b":-999999999999999,"c":9007199254740993,"d":0,"e":1234567890123456,"f":-7}',
}

local FALLBACK = {
  '{"a":"x\\"y"}', '{"a":"\\u00e9"}', '{"a":{"b":1}}', '{"a":[1]}', "[1]", '"s"', "null", "true", "1", "",
  "   ", '{"a":1,}', '{"a":01}', '{"a":+1}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":tru}', '{"a":truex}',
  '{"a":1} x', '{"a" 1}', "{a:1}", '{"a":"b"', '{"a":"b\0c"}', '{"a\0":"b"}', '{"a":NaN}', '{"a":Infinity}',
  '{"a":0x10}', '{"a":-}', "{,}", '{"a":"b"}}', '{"a":1' .. ("0"):rep(80) .. "}",
}

describe("core.json_flat", function()
  it("decodes flat objects exactly as cjson does", function()
    for _, s in ipairs(FAST) do
      local fast, slow = core.json_flat(s), cjson.decode(s)
      assert.is_table(fast, s)
      assert.is_true(same(fast, slow), s)
    end
    local t = core.json_flat('{"n":86400,"x":null}')
    assert.equal(cjson.null, t.x)
    assert.equal(mtype(cjson.decode("[86400]")[1]), mtype(t.n))
    -- -0 keeps its sign, as cjson's does
    assert.equal(1 / cjson.decode("[-0]")[1], 1 / core.json_flat('{"z":-0}').z)
    assert.equal(-math.huge, 1 / core.json_flat('{"z":-0}').z)
  end)

  it("returns nothing for every other text, valid or not", function()
    for _, s in ipairs(FALLBACK) do
      assert.equal(0, select("#", core.json_flat(s)), s)
    end
  end)

  it("agrees with cjson on mutated token answers", function()
    local bytes = { '"', "\\", "{", "}", ",", ":", " ", "\0", "\n", "-", ".", "e", "0", "1", "n", "t", "[", "\200" }
    math.randomseed(7)
    local fast_seen, fallback_seen = 0, 0
    for _ = 1, 3000 do
      local s = TOKENS
      for _ = 1, math.random(1, 3) do
        local at = math.random(1, #s)
        local op = math.random(1, 3)
        local b = bytes[math.random(#bytes)]
        if op == 1 then s = s:sub(1, at - 1) .. b .. s:sub(at + 1)
        elseif op == 2 then s = s:sub(1, at - 1) .. b .. s:sub(at)
        else s = s:sub(1, at - 1) .. s:sub(at + 1) end
      end
      local fast = core.json_flat(s)
      local slow = cjson.decode(s)
      if fast ~= nil then
        fast_seen = fast_seen + 1
        assert.is_true(same(fast, slow), s)
      else
        fallback_seen = fallback_seen + 1
      end
    end
    assert.is_true(fast_seen > 100 and fallback_seen > 100, fast_seen .. " / " .. fallback_seen)
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() core.json_flat({}) end)
  end)
end)
