-- The call path's fused decode (client:fetch with a shape's checker, csrc/l_json.c
-- a0l_flat_fit): a 2xx answer it takes must give the caller exactly what the general path
-- (finish(): json_flat or cjson, the error member, the shape) gives, value or error; an
-- answer it does not take goes the general way. Each hostile body is served to a client
-- nobody logs for (the fused path) and to one with on_log (which always takes finish()), and
-- the two outcomes are compared.
local auth0 = require "auth0"
local core = require "auth0.core"
local shape = require "auth0.shape"
local raw = require "spec.support.rawserver"


local cmp = require "spec.support.outcome"
local same, outcome = cmp.same, cmp.of

local TOK = '"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"'

-- Token answers: the ones the fused path takes, then everything it must leave alone.
local LOGIN = {
  "{" .. TOK .. ',"id_token":"e30.e30.c2ln","refresh_token":"v1.r","scope":"openid","expires_in":86400,"token_type":"Bearer"}',
  "{" .. TOK .. "}", " \t\r\n{ " .. TOK .. " , \"expires_in\" : 3600 }\n ", "{" .. TOK .. ',"x":"y","n":-1.5e3,"b":true}',
  "{" .. TOK .. ',"expires_in":1,"expires_in":2}',
  "{" .. TOK .. ',"expires_in":1e300}', "{" .. TOK .. ',"unlisted":123456789012345678901234567890}',
  "{" .. TOK .. ',"name":"caf\195\169"}', "{" .. TOK .. ',"bad":"\255\254"}',
  '{"access_token":"' .. ("x"):rep(70000) .. '"}', '{"expires_in":5}', "{}",
  -- not taken: the general path decides
  '{"access_token":1,' .. TOK .. "}", "{" .. TOK .. ',"access_token":1}', "", "   ", "null", "[1]", '"s"',
  "{" .. TOK .. ',"expires_in":"3600"}', "{" .. TOK .. ',"expires_in":1e400}',
  "{" .. TOK .. ',"expires_in":-1e400}', "{" .. TOK .. ',"expires_in":null}', "{" .. TOK .. ',"x":null}',
  "{" .. TOK .. ',"token_type":5}', "{" .. TOK .. ',"token_type":true}', '{"access_token":null}',
  "{" .. TOK .. ',"expires_in":3600,"expires_in":"x"}', "{" .. TOK .. ',"expires_in":"x","expires_in":3600}',
  '{"error":"invalid_grant","error_description":"Wrong email or verification code."}',
  "{" .. TOK .. ',"error":"x"}', '{"error":null,' .. TOK .. "}", '{"error":5}', '{"error":{"a":1}}',
  "{" .. TOK .. ',"scope":"a\\"b"}', "{" .. TOK .. ',"scope":"\\u00e9"}', "{" .. TOK .. ',"o":{"a":1}}',
  "{" .. TOK .. ',"l":[1,2]}', "{" .. TOK .. ',"s":"a\0b"}', "{" .. TOK .. ',"s\0":"b"}',
"{" .. TOK .. ',"n":01}', "{" .. TOK .. ',"n":NaN}', "{" .. TOK .. ",}",
  "{" .. TOK .. "} x", "{" .. TOK .. "}}", "{" .. TOK,
  "{" .. TOK .. ',"n":1' .. ("0"):rep(80) .. "}",
}
local LOGIN_TAKEN = 12   -- the first 11 are taken (invalid UTF-8 too: cjson passes it through)

local START = {
  '{"_id":"a1","email":"bench-00000001@example.com","email_verified":false}', "{}", '{"x":1}',
  '{"_id":"a1","_id":"b2"}', '{"phone_number":"+1555","phone_number_verified":true}',
  -- not taken
  '{"_id":5}', '{"email_verified":"false"}', '{"_id":null}', '{"error":"bad.connection"}', "", "[]",
  '{"_id":"a\\u0001"}', '{"a":[]}',
}
local START_TAKEN = 5

-- The outcomes of `bodies` (200 answers) for the fused path and for the general one.
local function both(method, p, bodies)
  local answers = {}
  for i, b in ipairs(bodies) do
    answers[i] = raw.http("200 OK", { "Content-Type: application/json" }, b)
    answers[#bodies + i] = answers[i]
  end
  local base = raw.serve(answers, "flatfit")
  local fast, slow = {}, {}
  local c = auth0.new { base_url = base, client_id = "emu-native", retries = 0 }
  for i = 1, #bodies do fast[i] = outcome(c[method](c, p)) end
  c:close()
  c = auth0.new { base_url = base, client_id = "emu-native", retries = 0, on_log = function() end }
  for i = 1, #bodies do slow[i] = outcome(c[method](c, p)) end
  c:close()
  return fast, slow
end

describe("the fused decode of the call path", function()
  it("gives a login exactly what the general path gives, for every answer", function()
    local fast, slow = both("passwordless_login", { realm = "email", username = "a@b.co", otp = "123456" }, LOGIN)
    for i, b in ipairs(LOGIN) do
      assert(same(fast[i], slow[i]), ("answer %d (%q) differs"):format(i, b:sub(1, 80)))
    end
    assert.is_table(fast[1].value)
    assert.equal(86400, fast[1].value.expires_in)
    assert.equal("bad_response", fast[11].err.code)   -- taken, then refused by the shape
    assert.matches("token response without an access_token", fast[11].err.message, 1, true)
  end)

  it("gives a start exactly what the general path gives, for every answer", function()
    local fast, slow = both("passwordless_start", { connection = "email", email = "a@b.co" }, START)
    for i, b in ipairs(START) do
      assert(same(fast[i], slow[i]), ("answer %d (%q) differs"):format(i, b))
    end
    assert.same({ _id = "a1", email = "bench-00000001@example.com", email_verified = false }, fast[1].value)
  end)

  -- Which answers the fused path takes: the comparisons above test it only on those.
  it("takes the flat answers that fit and leaves the others to the general path", function()
    local function taken(ep, fields, checker, bodies, n)
      local answers = {}
      for i, b in ipairs(bodies) do answers[i] = raw.http("200 OK", {}, b) end
      local base = raw.serve(answers, "flatfit2")
      local cc = core.client { base_url = base, timeout = 10 }
      for i, b in ipairs(bodies) do
        local status, body, t = cc:fetch(ep, fields, nil, checker)
        assert.equal(200, status)
        if i <= n then
          assert(body == false, ("answer %d (%q) not taken"):format(i, b:sub(1, 80)))
          assert(same(t, core.json_flat(b)), ("answer %d decoded otherwise than json_flat"):format(i))
          assert.is_table(cc:last_headers())
        else
          assert(body == b, ("answer %d (%q) taken"):format(i, b:sub(1, 80)))
        end
      end
      cc:close()
    end
    taken("passwordless_login", { client_id = "x", realm = "email", username = "a@b.co", otp = "1" },
      assert(shape.flat[shape.tokens]), LOGIN, LOGIN_TAKEN)
    taken("passwordless_start", { client_id = "x", connection = "email", email = "a@b.co", send = "code" },
      assert(shape.flat[shape.start]), START, START_TAKEN)
  end)

  -- Random texts near the answers (fragments spliced, bytes flipped): whatever the fused
  -- decode takes, json_flat takes too, without a null or an error member, the checker finds
  -- every field of its kind, and the tables are equal.
  it("takes only what json_flat and the checker take, on 20,000 mutated answers", function()
    local checker = shape.flat[shape.tokens]
    local seeds = {}
    for _, b in ipairs(LOGIN) do if #b < 2000 then seeds[#seeds + 1] = b end end
    local bits = { '"', "\\", "\0", ":", ",", "{", "}", " ", "null", "true", "1e400", "-0", "\255",
      '"error":', '"expires_in":', '"access_token":', '"x"', "5", "" }
    math.randomseed(10)
    local taken = 0
    for _ = 1, 20000 do
      local s = seeds[math.random(#seeds)]
      for _ = 1, math.random(0, 3) do
        local i = math.random(0, #s)
        local j = math.random(i, math.min(#s, i + math.random(0, 4)))
        s = s:sub(1, i) .. bits[math.random(#bits)] .. s:sub(j + 1)
      end
      local fast = core.flat_fit(s, checker)
      if fast ~= nil then
        taken = taken + 1
        local slow, had_null = core.json_flat(s)
        assert(slow ~= nil and had_null == false and slow.error == nil, ("taken, not by json_flat: %q"):format(s))
        assert(checker(slow) == nil, ("taken, not by the checker: %q"):format(s))
        assert(same(fast, slow), ("decoded otherwise: %q"):format(s))
      end
    end
    assert(taken > 1000, "too few mutations decoded: " .. taken)
  end)

  it("refuses a checker that is not one of core.kinds", function()
    local cc = core.client { base_url = "http://127.0.0.1:9" }
    local ok, err = pcall(cc.fetch, cc, "passwordless_start", {}, nil, print)
    assert.is_false(ok)
    assert.matches("a checker of core.kinds expected", err, 1, true)
    cc:close()
  end)
end)
