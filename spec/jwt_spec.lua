-- auth0.jwt: decoding and ID-token validation against tokens signed with auth0.Key.
local core = require "auth0.core"
local jwt = require "auth0.jwt"
local cjson = require("cjson.safe").new()

local ISS = "https://tenant.auth0.test/"
local CID = "client123"
local NOW = 1700000000
local REMOVE = {}

local key = core.rsa_key()
local other_key = core.rsa_key()

local function jwk_of(k, kid)
  local j = k:jwk()
  j.kid, j.alg, j.use = kid, "RS256", "sig"
  return j
end

local JWKS = { keys = { jwk_of(key, "k1") } }

local function merge(base, over)
  for k, v in pairs(over or {}) do
    if v == REMOVE then base[k] = nil else base[k] = v end
  end
  return base
end

local function claims(over)
  return merge({ iss = ISS, sub = "email|5f0c", aud = CID, iat = NOW - 10, exp = NOW + 36000 }, over)
end

local function encode(t)
  return core.b64url_encode(assert(cjson.encode(t)))
end

-- Signs header/payload with k (default: the JWKS key); sig_fn may replace the signature.
local function token(payload_over, header_over, k)
  local header = merge({ alg = "RS256", typ = "JWT", kid = "k1" }, header_over)
  local input = encode(header) .. "." .. encode(claims(payload_over))
  local sig
  if header.alg == "RS256" then sig = (k or key):sign_rs256(input) else sig = "" end
  return input .. "." .. core.b64url_encode(sig)
end

local function opts(over)
  return merge({ jwks = JWKS, issuer = ISS, client_id = CID, now = NOW }, over)
end

-- Asserts verification fails with exactly msg and that the error never leaks the token.
local function rejects(tok, msg, o)
  local res, err = jwt.verify_id_token(tok, o or opts())
  assert.is_nil(res)
  assert.equal("table", type(err))
  assert.equal("invalid_id_token", err.code)
  assert.equal(msg, err.message)
  assert.equal("invalid_id_token: " .. msg, tostring(err))
  for part in tok:gmatch("[^.]+") do
    assert.is_nil(err.message:find(part, 1, true))
  end
end

describe("auth0.jwt.decode", function()
  it("splits and decodes a token", function()
    local tok = token()
    local d = assert(jwt.decode(tok))
    assert.same({ alg = "RS256", typ = "JWT", kid = "k1" }, d.header)
    assert.same(claims(), d.payload)
    assert.equal(tok:match("^(.*)%."), d.signing_input)
    assert.equal(256, #d.signature)
  end)

  it("returns nil, err for malformed tokens without echoing them", function()
    local cases = {
      { "abc.def", "token is not a JWS compact serialization (expected 3 parts)" },
      { "a.b.c.d.e", "token is not a JWS compact serialization (expected 3 parts)" },
      { "e30.e30.a+b", "token signature is not base64url: invalid base64url character at position 2" },
      { "!!.e30.", "token header is not base64url: invalid base64url character at position 1" },
      { core.b64url_encode("not json") .. ".e30.", "token header is not a JSON object" },
      { "e30." .. core.b64url_encode('"str"') .. ".", "token payload is not a JSON object" },
    }
    for _, c in ipairs(cases) do
      local d, err = jwt.decode(c[1])
      assert.is_nil(d)
      assert.is_true(require("auth0.error").is(err))
      assert.equal("invalid_jwt", err.code)
      assert.equal(c[2], err.message)
      assert.equal("jwt.decode: invalid_jwt: " .. c[2], tostring(err))
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() jwt.decode(nil) end, "bad argument #1 to 'decode' (string expected, got nil)")
  end)
end)

describe("auth0.jwt.verify_id_token", function()
  it("accepts a valid token and returns its claims", function()
    assert.same(claims(), jwt.verify_id_token(token(), opts()))
    assert.same(claims({ nonce = "n-1" }), jwt.verify_id_token(token({ nonce = "n-1" }), opts({ nonce = "n-1" })))
    local c = claims({ aud = { CID, "https://api" }, azp = CID, auth_time = NOW - 100 })
    assert.same(c, jwt.verify_id_token(token(c), opts({ max_age = 3600 })))
    assert.truthy(jwt.verify_id_token(token({ aud = { CID } }), opts()))
  end)

  it("uses the only jwks key when the header has no kid", function()
    assert.truthy(jwt.verify_id_token(token(nil, { kid = REMOVE }), opts()))
    local two = { keys = { jwk_of(other_key, "k0"), jwk_of(key, "k1") } }
    assert.truthy(jwt.verify_id_token(token(), opts({ jwks = two })))
    rejects(token(nil, { kid = REMOVE }), "id token has no kid and the jwks has several keys", opts({ jwks = two }))
  end)

  it("honours the leeway on exp", function()
    assert.truthy(jwt.verify_id_token(token({ exp = NOW - 59 }), opts()))
    rejects(token({ exp = NOW - 60 }), "id token expired: exp 1699999940 is before now 1700000000 (leeway 60 s)")
    rejects(token({ exp = NOW }), "id token expired: exp 1700000000 is before now 1700000000 (leeway 0 s)",
      opts({ leeway = 0 }))
  end)

  it("rejects a bad signature", function()
    local tok = token()
    local h, p, s = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    -- payload swapped after signing
    rejects(h .. "." .. encode(claims({ sub = "email|attacker" })) .. "." .. s,
      "id token signature verification failed")
    -- one signature bit flipped
    local raw = core.b64url_decode(s)
    local flipped = string.char((raw:byte(1) + 1) % 256) .. raw:sub(2)
    rejects(h .. "." .. p .. "." .. core.b64url_encode(flipped), "id token signature verification failed")
    -- truncated / empty signature
    rejects(h .. "." .. p .. ".", "id token signature verification failed")
    -- signed by another key under the same kid
    rejects(token(nil, nil, other_key), "id token signature verification failed")
  end)

  it("keeps a JWK's imported key only while the JWK's n and e are unchanged", function()
    -- the import is cached per JWK table: a table whose key is replaced in place must not go
    -- on verifying with the old key, and the new key's tokens must verify at once
    local j = jwk_of(key, "k1")
    local o = opts({ jwks = { keys = { j } } })
    assert.truthy(jwt.verify_id_token(token(), o))
    local other = other_key:jwk()
    j.n = other.n
    rejects(token(), "id token signature verification failed", o)
    assert.truthy(jwt.verify_id_token(token(nil, nil, other_key), o))
    j.n = "!!"   -- unusable now: refused, not verified with the key imported before
    rejects(token(nil, nil, other_key), "id token signature verification failed", o)
  end)

  it("import_keys imports a key set ahead of use and ignores what is not an RSA key", function()
    local j = jwk_of(key, "k1")
    local set = { keys = { { kty = "EC" }, "x", { kty = "RSA", n = 1 }, { kty = "RSA", n = "!!", e = "AQAB" }, j } }
    jwt.import_keys(set)
    jwt.import_keys(nil)
    jwt.import_keys({ keys = "x" })
    assert.truthy(jwt.verify_id_token(token(), opts({ jwks = { keys = { j } } })))
    j.n = other_key:jwk().n   -- changed after the import: imported again, the old key is not used
    rejects(token(), "id token signature verification failed", opts({ jwks = { keys = { j } } }))
  end)

  it("rejects alg none and HS256 unless a client secret is given", function()
    rejects(token(nil, { alg = "none", kid = REMOVE }),
      "id token signing algorithm not supported: expected RS256, got none")
    rejects(token(nil, { alg = REMOVE }), "id token header has no alg")
    rejects(token(nil, { alg = "RS512" }), "id token signing algorithm not supported: expected RS256, got RS512")

    local secret = "s3cr3t-client-secret"
    local input = encode({ alg = "HS256", typ = "JWT" }) .. "." .. encode(claims())
    local hs = input .. "." .. core.b64url_encode(core.hmac("SHA256", secret, input))
    rejects(hs, "id token signing algorithm not supported: expected RS256, got HS256")
    assert.same(claims(), jwt.verify_id_token(hs, opts({ client_secret = secret, jwks = REMOVE })))
    rejects(hs, "id token signature verification failed", opts({ client_secret = "wrong", alg = "HS256" }))
    local _, err = jwt.verify_id_token(hs, opts({ client_secret = "wrong", alg = "HS256" }))
    assert.is_nil(err.message:find(secret, 1, true))
  end)

  it("pins the algorithm: an HS256 token MACed with the real secret is refused beside a JWKS (issue 11)", function()
    local secret = "s3cr3t-client-secret"
    local input = encode({ alg = "HS256", typ = "JWT" }) .. "." .. encode(claims())
    local hs = input .. "." .. core.b64url_encode(core.hmac("SHA256", secret, input))
    rejects(hs, "id token signing algorithm not supported: expected RS256, got HS256",
      opts({ client_secret = secret }))
    rejects(hs, "id token signing algorithm not supported: expected RS256, got HS256",
      opts({ client_secret = secret, alg = "RS256" }))
    assert.same(claims(), jwt.verify_id_token(hs, opts({ client_secret = secret, alg = "HS256" })))
    -- pinned to HS256: an RS256 token that would verify is refused
    rejects(token(), "id token signing algorithm not supported: expected HS256, got RS256",
      opts({ client_secret = secret, alg = "HS256" }))
    assert.has_error(function() jwt.verify_id_token(token(), opts({ alg = "HS256" })) end)
    assert.has_error(function() jwt.verify_id_token(token(), opts({ alg = "PS256" })) end)
  end)

  it("rejects nbf in the future and iat in the future beyond the leeway (issue 11)", function()
    rejects(token({ nbf = NOW + 61 }), "id token not yet valid: nbf 1700000061 is after now 1700000000 (leeway 60 s)")
    assert(jwt.verify_id_token(token({ nbf = NOW + 59 }), opts()))
    rejects(token({ nbf = NOW + 5 }), "id token not yet valid: nbf 1700000005 is after now 1700000000 (leeway 0 s)",
      opts({ leeway = 0 }))
    rejects(token({ nbf = "soon" }), "id token not-before (nbf) claim is not a number")
    rejects(token({ iat = NOW + 61 }), "id token issued in the future: iat 1700000061 is after now 1700000000 (leeway 60 s)")
    assert(jwt.verify_id_token(token({ iat = NOW + 59 }), opts()))
  end)

  it("accepts only canonical base64url: a respelled copy does not verify (issue 11)", function()
    local tok = token()
    assert(jwt.verify_id_token(tok, opts()))
    local h, p, s = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    -- the last character of a part whose length leaves unused bits, with one of them set
    local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local function respell(part)   -- canonical: the unused low bits are zero; set the lowest
      local i = ALPHA:find(part:sub(-1), 1, true) - 1
      assert.equal(0, i % ((#part % 4 == 2) and 16 or 4))
      return part:sub(1, -2) .. ALPHA:sub(i + 2, i + 2)
    end
    local respelled = 0
    for _, which in ipairs({ 1, 2, 3 }) do
      local parts = { h, p, s }
      if #parts[which] % 4 ~= 0 then
        local r = respell(parts[which])
        assert.equal(core.b64url_decode(parts[which]), core.b64url_decode(r))   -- the same bytes
        parts[which] = r
        assert.is_nil(jwt.verify_id_token(table.concat(parts, "."), opts()))
        respelled = respelled + 1
      end
    end
    assert.is_true(respelled > 0)
    -- padding
    assert.is_nil(jwt.verify_id_token(h .. "." .. p .. "." .. s .. "==", opts()))
    if #p % 4 ~= 0 then
      assert.is_nil(jwt.verify_id_token(h .. "." .. p .. ("="):rep(4 - #p % 4) .. "." .. s, opts()))
    end
  end)

  it("rejects an unknown kid or an unusable jwks key", function()
    rejects(token(nil, { kid = "other" }), "id token signing key not found in jwks: kid other")
    rejects(token(), "jwks has no keys", opts({ jwks = { keys = {} } }))
    local enc = jwk_of(key, "k1")
    enc.use = "enc"
    rejects(token(), "jwks key for the id token is not an RS256 signing key", opts({ jwks = { keys = { enc } } }))
  end)

  it("checks every claim with an exact message", function()
    local cases = {
      { { iss = "https://evil.test/" },
        "id token issuer mismatch: expected https://tenant.auth0.test/, got https://evil.test/" },
      { { iss = "https://tenant.auth0.test" },
        "id token issuer mismatch: expected https://tenant.auth0.test/, got https://tenant.auth0.test" },
      { { iss = REMOVE }, "id token issuer (iss) claim missing" },
      { { sub = REMOVE }, "id token subject (sub) claim missing or empty" },
      { { sub = "" }, "id token subject (sub) claim missing or empty" },
      { { sub = 42 }, "id token subject (sub) claim missing or empty" },
      { { aud = "someone-else" }, "id token audience (aud) mismatch: expected client123, got someone-else" },
      { { aud = REMOVE }, "id token audience (aud) claim missing" },
      { { aud = { "a", "b" } }, "id token audience (aud) does not contain the client id client123" },
      { { aud = { CID, "b" } }, "id token authorized party (azp) claim missing (required with several audiences)" },
      { { aud = { CID, "b" }, azp = "b" }, "id token authorized party (azp) mismatch: expected client123, got b" },
      { { exp = REMOVE }, "id token expiration (exp) claim missing" },
      { { exp = "tomorrow" }, "id token expiration (exp) claim missing" },
      { { exp = NOW - 3600 }, "id token expired: exp 1699996400 is before now 1700000000 (leeway 60 s)" },
      { { iat = REMOVE }, "id token issued at (iat) claim missing" },
    }
    for _, c in ipairs(cases) do
      rejects(token(c[1]), c[2])
    end
  end)

  it("checks nonce and auth_time when asked to", function()
    rejects(token(), "id token nonce claim missing", opts({ nonce = "n-1" }))
    rejects(token({ nonce = "n-2" }), "id token nonce mismatch", opts({ nonce = "n-1" }))
    rejects(token(), "id token authentication time (auth_time) claim missing (required with max_age)",
      opts({ max_age = 600 }))
    rejects(token({ auth_time = NOW - 661 }),
      "id token auth_time 1699999339 is too old for max_age 600 (now 1700000000)",
      opts({ max_age = 600 }))
    assert.truthy(jwt.verify_id_token(token({ auth_time = NOW - 660 }), opts({ max_age = 600 })))
  end)

  it("returns an error object for an undecodable token", function()
    rejects("not-a-jwt", "id token could not be decoded: token is not a JWS compact serialization (expected 3 parts)")
  end)

  it("raises on misuse", function()
    assert.has_error(function() jwt.verify_id_token(nil, opts()) end,
      "bad argument #1 to 'verify_id_token' (string expected, got nil)")
    assert.has_error(function() jwt.verify_id_token(token(), nil) end,
      "bad argument #2 to 'verify_id_token' (table expected, got nil)")
    assert.has_error(function() jwt.verify_id_token(token(), opts({ issuer = REMOVE })) end,
      "bad argument #2 to 'verify_id_token' (field 'issuer': string expected, got nil)")
    assert.has_error(function() jwt.verify_id_token(token(), opts({ audience = CID })) end,
      "bad argument #2 to 'verify_id_token' (unknown option 'audience')")
    assert.has_error(function() jwt.verify_id_token(token(), opts({ jwks = REMOVE })) end,
      "bad argument #2 to 'verify_id_token' (field 'jwks': required for RS256 tokens)")
    local ok, err = pcall(function() local r = jwt.verify_id_token(token(), { issuer = ISS }); return r end)
    assert.is_false(ok)
    assert.truthy(err:find("jwt_spec.lua:%d+: bad argument #2 to 'verify_id_token' %(field 'client_id': string expected, got nil%)"))
  end)
end)

describe("auth0.jwt.verify_id_token_steps", function()
  -- Runs the steps as a game would, one `later` per poll: the claims (or nil, err) and the
  -- number of polls it took; done must run exactly once.
  local function staged(tok, o)
    local queue, got, calls = {}, nil, 0
    jwt.verify_id_token_steps(tok, o or opts(), function(fn) queue[#queue + 1] = fn end, function(c, e)
      calls = calls + 1
      got = { c, e }
    end)
    local polls = 0
    while not got do
      assert.is_true(#queue > 0, "a step is pending")
      assert.is_true(polls < 100000, "the signature thread never ended")
      local fn = table.remove(queue, 1)
      polls = polls + 1
      fn()
      if not got and #queue > 0 then core.sleep(0.0001) end
    end
    assert.equal(1, calls)
    assert.equal(0, #queue)
    return got[1], got[2], polls
  end

  local SECRET = "0123456789abcdef0123456789abcdef"
  local function hs_token(over)
    local input = encode({ alg = "HS256", typ = "JWT" }) .. "." .. encode(claims(over))
    return input .. "." .. core.b64url_encode(core.hmac("SHA256", SECRET, input))
  end

  it("gives verify_id_token's claims and errors, the decode and the signature in later polls than the call", function()
    local tok = token()
    local h, p, s = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local raw = core.b64url_decode(s)
    local cases = {
      { token() },
      { token({ nonce = "n-1" }), opts({ nonce = "n-1" }) },
      { h .. "." .. encode(claims({ sub = "email|attacker" })) .. "." .. s },   -- swapped payload
      { h .. "." .. p .. "." .. core.b64url_encode(string.char((raw:byte(1) + 1) % 256) .. raw:sub(2)) },
      { h .. "." .. p .. "." },
      { token(nil, nil, other_key) },
      { token({ exp = NOW - 60 }) },
      { token({ aud = "someone-else" }) },
      { token(nil, nil, other_key), opts({ jwks = { keys = { jwk_of(other_key, "k1") } } }) },
      { token(nil, { kid = "nope" }) },
      { "not-a-jwt" },
      { hs_token(), opts({ jwks = REMOVE, client_secret = SECRET }) },
      { hs_token({ exp = NOW - 600 }), opts({ jwks = REMOVE, client_secret = SECRET }) },
      { hs_token(), opts({ jwks = REMOVE, client_secret = SECRET .. "x" }) },
    }
    for i, case in ipairs(cases) do
      local want, werr = jwt.verify_id_token(case[1], case[2] or opts())
      local c, e, polls = staged(case[1], case[2] or opts())
      assert.same(want, c, "case " .. i)
      if werr then
        assert.equal(werr.code, e.code, "case " .. i)
        assert.equal(werr.message, e.message, "case " .. i)
        assert.equal(werr.reason, e.reason, "case " .. i)
      else
        assert.is_nil(e)
      end
      -- nothing is decoded nor checked in the call itself: the decode is a step, the signature
      -- (or its look) at least one more
      local decodes = not werr or not (werr.message:find("could not be decoded", 1, true) or werr.reason == "unknown_kid")
      if decodes then assert.is_true(polls >= 2, "case " .. i) else assert.equal(1, polls, "case " .. i) end
    end
  end)

  it("raises on misuse at once, as verify_id_token does", function()
    local function never() error("not reached") end
    assert.has_error(function() jwt.verify_id_token_steps(nil, opts(), never, never) end,
      "bad argument #1 to 'verify_id_token' (string expected, got nil)")
    assert.has_error(function() jwt.verify_id_token_steps(token(), opts({ audience = CID }), never, never) end,
      "bad argument #2 to 'verify_id_token' (unknown option 'audience')")
  end)
end)

describe("auth0.core.rs256_verify_start", function()
  local function wait(job)
    for _ = 1, 100000 do
      local v = job:result()
      if v ~= nil then return v end
      core.sleep(0.0001)
    end
    error("the verification thread never ended")
  end

  it("checks an RS256 signature on a thread: true, false for a wrong one or an unusable key", function()
    local j = key:jwk()
    local sig = key:sign_rs256("data")
    assert.is_true(wait(assert(core.rs256_verify_start(j.n, j.e, "data", sig))))
    assert.is_false(wait(assert(core.rs256_verify_start(j.n, j.e, "datA", sig))))
    assert.is_false(wait(assert(core.rs256_verify_start(j.n, j.e, "data", ""))))
    local o = other_key:jwk()
    assert.is_false(wait(assert(core.rs256_verify_start(o.n, o.e, "data", sig))))
    assert.is_false(wait(assert(core.rs256_verify_start("!!", j.e, "data", sig))))
    assert.is_false(wait(assert(core.rs256_verify_start(j.n, "", "data", sig))))
    -- agrees with the blocking check
    assert.is_true(core.rs256_verify(j.n, j.e, "data", sig))
  end)

  it("a job dropped while its thread runs is freed by the thread", function()
    local j = key:jwk()
    local sig = key:sign_rs256("data")
    for _ = 1, 20 do assert(core.rs256_verify_start(j.n, j.e, "data", sig)) end
    collectgarbage()
    collectgarbage()
    assert.is_true(wait(assert(core.rs256_verify_start(j.n, j.e, "data", sig))))
  end)

  it("a worker (core.rs256_worker) checks them on its one thread, in order, and outlives its jobs' owner", function()
    local j, o = key:jwk(), other_key:jwk()
    local sig = key:sign_rs256("data")
    local w = assert(core.rs256_worker())
    local jobs = {}
    for i = 1, 6 do jobs[i] = assert(w:verify(i % 2 == 0 and o.n or j.n, j.e, "data", sig)) end
    for i = 1, 6 do assert.equal(i % 2 == 1, wait(jobs[i])) end
    -- the steps on a worker: the same result
    local queue, got = {}, nil
    jwt.verify_id_token_steps(token(), opts(), function(fn) queue[#queue + 1] = fn end, function(c, e) got = { c, e } end, w)
    while not got do table.remove(queue, 1)(); core.sleep(0.0001) end
    assert.same(claims(), got[1])
    -- the worker collected with a job queued: the job still ends
    local last = assert(w:verify(j.n, j.e, "data", sig))
    w = nil   -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.is_true(wait(last))
  end)

  -- fork() through LuaJIT's FFI (Lua 5.4 has no fork to call)
  local it_jit = rawget(_G, "jit") and it or pending
  it_jit("a forked child: a job from before the fork says so, the steps check it there, the worker starts a thread", function()
    local ffi = require "ffi"
    pcall(ffi.cdef, "int fork(void); int waitpid(int pid, int *status, int options); void _exit(int);")
    local j = key:jwk()
    local sig = key:sign_rs256("data")
    local w = assert(core.rs256_worker())
    local job = assert(w:verify(j.n, j.e, "data", sig))
    local queue, got = {}, nil
    jwt.verify_id_token_steps(token(), opts(), function(fn) queue[#queue + 1] = fn end, function(c, e) got = { c, e } end, w)
    table.remove(queue, 1)()   -- the decode and the signature's job started, in the parent
    local pid = ffi.C.fork()
    if pid == 0 then
      local code = 0
      local v, lost = job:result()
      if not (v == nil and lost == "the verification was started before a fork") then code = 1 end
      local j2 = w:verify(j.n, j.e, "data", sig)   -- a thread of the child's own
      local t0 = core.now()
      local r
      repeat r = j2:result() until r ~= nil or core.now() - t0 > 5
      if r ~= true then code = code + 2 end
      while not got and #queue > 0 do table.remove(queue, 1)() end
      if not (got and got[1] and got[1].sub == claims().sub) then code = code + 4 end
      ffi.C._exit(code)
    end
    local st = ffi.new("int[1]")
    ffi.C.waitpid(pid, st, 0)
    assert.equal(0, st[0])   -- the child's exit status, shifted: 0 when every check held
    assert.is_true(wait(job))
    while not got do table.remove(queue, 1)(); core.sleep(0.0001) end
    assert.same(claims(), got[1])
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.rs256_verify_start(nil, "AQAB", "d", "s") end)
    assert.has_error(function() core.rs256_verify_start("n", "AQAB", {}, "s") end)
  end)
end)
