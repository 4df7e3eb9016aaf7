-- Fault injection (issue #5): every fault kind of auth0.emulator.faults once, over real HTTPS
-- (libcurl -> nginx -> emulator), with the exact error code our client returns and how many
-- requests the emulator saw; then the same faults through the in-process transport.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local socket = require "socket"

local now = auth0.core.now
local server

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

local function ctl(method, path, body)
  local r, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status) .. ": "
    .. tostring(type(r) == "table" and r.error_description or r))
  return r
end

local function faults(rules, seed) return ctl("POST", "/faults", { rules = rules, seed = seed }) end
local function report() return ctl("GET", "/faults") end
-- Requests the emulator saw on `path` since the rules were set.
local function seen(path) return report().requests[path] or 0 end

local function outbox_code(to)
  local msgs = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
  return msgs[#msgs].code
end

local function fails(code, status, ...)
  local v, err = ...
  assert.is_nil(v)
  assert.is_table(err, "expected an error object")
  assert.is_true(auth0.error.is(err))
  assert.equal(code, err.code)
  assert.equal(status, err.status)
  return err
end

local function timed(fn, ...)
  local t0 = now()
  local a, b = fn(...)
  return now() - t0, a, b
end

local START = { connection = "email", email = "f@example.com" }

-- A fresh code for f@example.com, sent without faults.
local function code_for(c, email)
  email = email or "f@example.com"
  assert(c:passwordless_start { connection = "email", email = email })
  return { realm = "email", username = email, otp = outbox_code(email) }
end

describe("fault injection over HTTPS", function()
  local c
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    c = client()
  end)
  after_each(function()
    assert.equal(0, c:pending())
    c:close()
  end)

  describe("control API", function()
    it("sets, reports and clears rules with their counters", function()
      local r = faults({ { kind = "http_500", path = "/.well-known/jwks.json", every = 2, times = 1 } }, 42)
      assert.equal(42, r.seed)
      assert.same({ { kind = "http_500", path = "/.well-known/jwks.json", every = 2, times = 1, seen = 0,
                      injected = 0 } }, r.rules)
      assert(c:jwks(true))
      fails("server_error", 500, c:jwks(true))
      assert(c:jwks(true))
      assert(c:jwks(true))   -- times = 1: the 4th request is not faulted
      r = report()
      assert.equal(4, r.rules[1].seen)
      assert.equal(1, r.rules[1].injected)
      assert.same({ http_500 = 1 }, r.injected)
      assert.same({ ["/.well-known/jwks.json"] = 4 }, r.requests)
      assert.equal(4, r.total)
      assert.same({ deleted = 1, injected = { http_500 = 1 } }, ctl("DELETE", "/faults"))
      assert.same({ rules = {}, injected = {}, requests = {}, total = 0 }, report())
    end)

    it("rejects bad rules with 400 and keeps the old ones", function()
      faults({ { kind = "delay", ms = 1 } })
      for _, case in ipairs {
        { { kind = "explode" }, "rules[1]: unknown kind explode" },
        { { kind = "delay", every = 2, probability = 0.5 }, "rules[1]: give every or probability, not both" },
        { { kind = "delay", probability = 1.5 }, "rules[1]: probability must be in [0, 1]" },
        { { kind = "rate_limit", variant = "sometimes" }, "rules[1]: unknown variant sometimes for rate_limit" },
        { { kind = "delay", path = "oauth/token" }, "rules[1]: path must start with /" },
        { { kind = "http_500", times = 0 }, "rules[1]: times must be an integer >= 1" },
      } do
        local body, status = emu.control("POST", "/faults", { rules = { case[1] } })
        assert.equal(400, status)
        assert.same({ error = "bad_request", error_description = case[2] }, body)
      end
      assert.equal("delay", report().rules[1].kind)
    end)

    it("never faults nor counts the control routes", function()
      faults({ { kind = "close_before_headers" } })
      for _ = 1, 3 do assert.equal(0, report().total) end
      assert.same({ messages = {} }, ctl("GET", "/outbox"))
      fails("bad_response", nil, c:jwks(true))
      assert.same({ close_before_headers = 1 }, report().injected)
    end)

    it("draws probabilities from the seed: the same seed, the same faults", function()
      local function run(seed)
        faults({ { kind = "http_503", path = "/.well-known/openid-configuration", probability = 0.5 } }, seed)
        local c0 = client { retries = 0 }
        local out = {}
        for i = 1, 24 do out[i] = c0:openid_configuration() and "." or "x" end
        c0:close()
        return table.concat(out)
      end
      local a, b, other = run(7), run(7), run(8)
      assert.equal(a, b)
      assert.not_equal(a, other)
      assert.matches("x", a)
      assert.matches("%.", a)
      assert.equal(select(2, other:gsub("x", "")), report().injected.http_503)
    end)

    it("matches a path prefix with a trailing * and a method", function()
      faults({ { kind = "http_502", path = "/.well-known/*", method = "GET" } })
      fails("server_error", 502, c:jwks(true))
      fails("server_error", 502, c:openid_configuration())
      assert(c:passwordless_start(START))
      assert.same({ http_502 = 2 }, report().injected)
    end)
  end)

  describe("each kind", function()
    it("delay: answers late, or times out", function()
      faults({ { kind = "delay", path = "/passwordless/start", ms = 300 } })
      local dt, sent = timed(c.passwordless_start, c, START)
      assert.equal("f@example.com", sent.email)
      -- nginx arms its timers from a cached clock, a few ms behind under load
      assert.is_true(dt >= 0.28 and dt < 1.5, "took " .. dt)
      faults({ { kind = "delay", path = "/passwordless/start", ms = 3000 } })
      local quick = client { timeout = 0.5 }
      local dt2, v, err = timed(quick.passwordless_start, quick, START)
      fails("timeout", nil, v, err)
      -- libcurl compares whole milliseconds: its 500 ms can end at 499.x ms on our clock
      assert.is_true(dt2 >= 0.499 and dt2 < 0.8, "took " .. dt2)
      quick:close()
    end)

    it("close_before_headers: bad_response, never retried (the request was sent)", function()
      faults({ { kind = "close_before_headers", path = "/.well-known/jwks.json" } })
      fails("bad_response", nil, c:jwks(true))
      assert.equal(1, seen("/.well-known/jwks.json"))
    end)

    it("close_after_headers: bad_response", function()
      local p = code_for(c)
      faults({ { kind = "close_after_headers", path = "/oauth/token" } })
      fails("bad_response", nil, c:passwordless_login(p))
      assert.equal(1, seen("/oauth/token"))
    end)

    it("truncate: bad_response", function()
      local p = code_for(c)
      faults({ { kind = "truncate", path = "/oauth/token" } })
      fails("bad_response", nil, c:passwordless_login(p))
      assert.equal(1, seen("/oauth/token"))
    end)

    it("invalid_json: bad_response with the status", function()
      faults({ { kind = "invalid_json", path = "/passwordless/start" } })
      local err = fails("bad_response", 200, c:passwordless_start(START))
      assert.equal("the server sent invalid JSON", err.message)
      assert.equal("passwordless_start", err.context)
    end)

    it("wrong_shape array / nulls on the token grant: bad_response", function()
      local p = code_for(c)
      faults({ { kind = "wrong_shape", path = "/oauth/token", variant = "array" } })
      local err = fails("bad_response", 200, c:passwordless_login(p))
      assert.equal("token response without an access_token", err.message)
      p = code_for(c)
      faults({ { kind = "wrong_shape", path = "/oauth/token", variant = "nulls" } })
      err = fails("bad_response", 200, c:passwordless_login(p))
      assert.equal("token response without an access_token", err.message)
    end)

    it("wrong_shape strings on the token grant: numbers as strings are tolerated", function()
      local p = code_for(c)
      faults({ { kind = "wrong_shape", path = "/oauth/token", variant = "strings" } })
      local t0 = os.time()
      local tokens = assert(c:passwordless_login(p))
      assert.equal(86400, tokens.expires_in)
      assert.equal("number", type(tokens.expires_in))
      assert.is_true(tokens.expires_at >= t0 + 86400 and tokens.expires_at <= os.time() + 86400)
    end)

    it("wrong_shape array on the JWKS: bad_response", function()
      faults({ { kind = "wrong_shape", path = "/.well-known/jwks.json" } })
      local err = fails("bad_response", 200, c:jwks(true))
      assert.equal("JWKS without keys", err.message)
    end)

    -- Client bug (reported): object_shape accepts any table, so a JSON array is a success.
    it("wrong_shape array on /passwordless/start: bad_response", function()
      faults({ { kind = "wrong_shape", path = "/passwordless/start" } })
      local err = fails("bad_response", 200, c:passwordless_start(START))
      assert.equal("expected a JSON object", err.message)
    end)

    it("huge_body: too_large, not retried", function()
      faults({ { kind = "huge_body", path = "/.well-known/jwks.json" } })
      local err = fails("too_large", nil, c:jwks(true))
      assert.equal("response larger than 1048576 bytes", err.message)
      assert.equal(1, seen("/.well-known/jwks.json"))
    end)

    for _, status in ipairs { 500, 502, 503 } do
      it("http_" .. status .. " on /passwordless/start: server_error, never retried", function()
        faults({ { kind = "http_" .. status, path = "/passwordless/start" } })
        local err = fails("server_error", status, client({ retries = 2 }):passwordless_start(START))
        assert.matches("^<html> <head><title>" .. status, err.message)
        assert.equal(1, seen("/passwordless/start"))
        assert.equal(0, #ctl("GET", "/outbox").messages)
      end)
    end

    it("http_503 once on a read (jwks) is retried and succeeds", function()
      faults({ { kind = "http_503", path = "/.well-known/jwks.json", times = 1 } })
      local jwks = assert(c:jwks(true))
      assert.equal(1, #jwks.keys)
      assert.equal(2, seen("/.well-known/jwks.json"))
    end)

    it("http_503 once on a read (mfa_authenticators) is retried and succeeds", function()
      ctl("POST", "/users", { connection = "email", email = "m@example.com", mfa = "always" })
      local _, lerr = c:passwordless_login(code_for(c, "m@example.com"))
      assert.equal("mfa_required", lerr.code)
      faults({ { kind = "http_503", path = "/mfa/authenticators", times = 1 } })
      assert.same({}, assert(c:mfa_authenticators(lerr.mfa_token)))
      assert.equal(2, seen("/mfa/authenticators"))
    end)

    it("http_503 on a read with retries = 0 is not retried", function()
      faults({ { kind = "http_503", path = "/.well-known/jwks.json", times = 1 } })
      fails("server_error", 503, client({ retries = 0 }):jwks(true))
      assert.equal(1, seen("/.well-known/jwks.json"))
    end)

    it("rate_limit retry_after_seconds: err.retry_after and err.rate_limit", function()
      faults({ { kind = "rate_limit", path = "/passwordless/start", retry_after = 30 } })
      local t0 = os.time()
      local err = fails("too_many_requests", 429, c:passwordless_start(START))
      assert.equal(30, err.retry_after)
      assert.equal(10, err.rate_limit.limit)
      assert.equal(0, err.rate_limit.remaining)
      assert.is_true(err.rate_limit.reset >= t0 + 30 and err.rate_limit.reset <= os.time() + 30)
      assert.equal(1, seen("/passwordless/start"))
    end)

    it("rate_limit retry_after_date: an HTTP date becomes seconds", function()
      faults({ { kind = "rate_limit", path = "/passwordless/start", variant = "retry_after_date", retry_after = 30 } })
      local err = fails("too_many_requests", 429, c:passwordless_start(START))
      assert.is_true(err.retry_after == 29 or err.retry_after == 30, "retry_after " .. tostring(err.retry_after))
      assert.equal(10, err.rate_limit.limit)
    end)

    it("rate_limit reset_only: retry_after from X-RateLimit-Reset", function()
      faults({ { kind = "rate_limit", path = "/passwordless/start", variant = "reset_only", retry_after = 30 } })
      local err = fails("too_many_requests", 429, c:passwordless_start(START))
      assert.is_true(err.retry_after == 29 or err.retry_after == 30, "retry_after " .. tostring(err.retry_after))
      assert.equal(0, err.rate_limit.remaining)
    end)

    it("rate_limit none: no retry_after, no rate_limit", function()
      faults({ { kind = "rate_limit", path = "/passwordless/start", variant = "none" } })
      local err = fails("too_many_requests", 429, c:passwordless_start(START))
      assert.is_nil(err.retry_after)
      assert.is_nil(err.rate_limit)
    end)

    it("rate_limit on a read with Retry-After: 1 is retried after ~1 s", function()
      faults({ { kind = "rate_limit", path = "/.well-known/jwks.json", retry_after = 1, times = 1 } })
      local patient = client { retries = 2 }
      local dt, jwks = timed(patient.jwks, patient, true)
      patient:close()
      assert.equal(1, #jwks.keys)
      assert.is_true(dt >= 1.0 and dt < 1.5, "took " .. dt)
      assert.equal(2, seen("/.well-known/jwks.json"))
    end)

    it("a Retry-After past the timeout is not slept: the 429 comes back at once", function()
      faults({ { kind = "rate_limit", path = "/.well-known/jwks.json", retry_after = 5 } })
      local quick = client { retries = 2, timeout = 2 }
      local dt, v, err = timed(quick.jwks, quick, true)
      fails("too_many_requests", 429, v, err)
      assert.equal(5, err.retry_after)
      assert.is_true(dt < 0.5, "took " .. dt)
      assert.equal(1, seen("/.well-known/jwks.json"))
      quick:close()
    end)

    it("a blocking call with retries never runs past its timeout in total", function()
      -- 429 (wait 1 s), then an answer 3 s late: the retry only has the ~1 s that is left
      faults({ { kind = "rate_limit", path = "/.well-known/jwks.json", retry_after = 1, times = 1 },
               { kind = "delay", path = "/.well-known/jwks.json", ms = 3000 } })
      local quick = client { retries = 2, timeout = 2 }
      local dt, v, err = timed(quick.jwks, quick, true)
      fails("timeout", nil, v, err)
      assert.is_true(dt >= 1.9 and dt < 2.2, "took " .. dt)
      assert.equal(2, seen("/.well-known/jwks.json"))
      quick:close()
    end)

    -- Client bug (reported): Client:_start retries with the full per-request timeout again.
    it("a callback call with retries never runs past its timeout in total", function()
      faults({ { kind = "rate_limit", path = "/.well-known/jwks.json", retry_after = 1, times = 1 },
               { kind = "delay", path = "/.well-known/jwks.json", ms = 3000 } })
      local quick = client { retries = 2, timeout = 2 }
      local calls, got, t0 = 0, nil, now()
      quick:jwks(true, function(v, err) calls = calls + 1; got = { v, err, now() - t0 } end)
      while quick:pending() > 0 and now() - t0 < 10 do quick:poll(50) end
      assert.equal(1, calls)
      fails("timeout", nil, got[1], got[2])
      assert.is_true(got[3] < 2.2, "took " .. got[3])
      quick:close()
    end)

    -- The chaos flake of issue 10: a retry timer that fires late (a busy machine, a caller that
    -- polls rarely) retried with the ~1 ms left and ended in `timeout`, hiding the 429.
    it("a retry timer that fires after the deadline returns the answer that made it retry", function()
      faults({ { kind = "rate_limit", path = "/.well-known/jwks.json", retry_after = 0 } })
      local quick = client { retries = 2, timeout = 1 }
      local calls, got = 0, nil
      quick:jwks(true, function(v, err) calls = calls + 1; got = { v, err } end)
      local t0 = now()
      while seen("/.well-known/jwks.json") == 0 and now() - t0 < 5 do quick:poll(10) end
      while quick:stats().inflight > 0 and now() - t0 < 5 do quick:poll(10) end   -- the 429 is in
      socket.sleep(1.1)   -- no poll: the retry timer (at most 0.1 s) fires after the deadline
      while quick:pending() > 0 and now() - t0 < 10 do quick:poll(10) end
      assert.equal(1, calls)
      local err = fails("too_many_requests", 429, got[1], got[2])
      assert.equal(0, err.retry_after)
      assert.equal(1, seen("/.well-known/jwks.json"))
      quick:close()
    end)

    it("slow_headers with timeout 0.5: timeout", function()
      faults({ { kind = "slow_headers", path = "/passwordless/start" } })
      local quick = client { timeout = 0.5 }
      local dt, v, err = timed(quick.passwordless_start, quick, START)
      fails("timeout", nil, v, err)
      assert.is_true(dt >= 0.499 and dt < 0.8, "took " .. dt)   -- whole-ms timeouts, as above
      assert.equal(1, seen("/passwordless/start"))
      quick:close()
    end)

    it("slow_headers over HTTP/1.1 dribbles the header block over the raw socket", function()
      local ssl = require "ssl"
      faults({ { kind = "slow_headers", path = "/.well-known/jwks.json", interval = 100 } })
      local port = tonumber(server.base_url:match(":(%d+)$"))
      local tcp = assert(socket.connect("127.0.0.1", port))
      local s = assert(ssl.wrap(tcp, { mode = "client", protocol = "any", cafile = server.ca_file,
        verify = "peer", options = "all" }))
      s:settimeout(5)
      assert(s:dohandshake())
      assert(s:send("GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
      local t0 = now()
      local first = assert(s:receive(1))
      local t1 = now()
      local rest = assert(s:receive(7))
      local t2 = now()
      s:close()
      assert.equal("HTTP/1.1", first .. rest)
      assert.is_true(t1 - t0 < 0.3, "first byte after " .. (t1 - t0))
      assert.is_true(t2 - t1 >= 0.6 and t2 - t1 < 1.5, "7 bytes took " .. (t2 - t1))
    end)

    it("redirect_http: the 302 is an error, the redirect is not followed", function()
      faults({ { kind = "redirect_http", path = "/passwordless/start" } })
      local err = fails("http_error", 302, c:passwordless_start(START))
      assert.matches("http://127%.0%.0%.1:%d+/passwordless/start", err.message)
      assert.equal(1, report().total)
      faults({ { kind = "redirect_http", path = "/.well-known/jwks.json" } })
      fails("http_error", 302, c:jwks(true))
      assert.equal(1, report().total)
    end)
  end)
end)

describe("fault injection in-process (emu:transport())", function()
  local emulator = require "auth0.emulator"
  local e, c
  before_each(function()
    e = emulator.new { base_url = "https://tenant.example" }
    c = auth0.new { base_url = "https://tenant.example", client_id = "emu-native", transport = e:transport(),
      timeout = 0.3 }
  end)
  after_each(function() c:close() end)

  for _, case in ipairs {
    { "close_before_headers", "bad_response" }, { "close_after_headers", "bad_response" },
    { "truncate", "bad_response" }, { "huge_body", "too_large" }, { "slow_headers", "timeout" },
    { "invalid_json", "bad_response", 200 }, { "http_502", "server_error", 502 },
    { "redirect_http", "http_error", 302 }, { "rate_limit", "too_many_requests", 429 },
  } do
    it(case[1] .. " -> " .. case[2], function()
      assert(e:set_faults({ { kind = case[1], path = "/passwordless/start" } }))
      fails(case[2], case[3], c:passwordless_start(START))
      assert.same({ [case[1]] = 1 }, e:fault_report().injected)
    end)
  end

  it("delay: late or timeout", function()
    assert(e:set_faults({ { kind = "delay", ms = 100, times = 1 }, { kind = "delay", ms = 1000 } }))
    local dt, sent = timed(c.passwordless_start, c, START)
    assert.equal("f@example.com", sent.email)
    assert.is_true(dt >= 0.1 and dt < 0.3, "took " .. dt)
    fails("timeout", nil, c:passwordless_start(START))
  end)

  it("reset() clears the rules", function()
    assert(e:set_faults({ { kind = "http_500" } }))
    e:reset()
    assert(c:passwordless_start(START))
    assert.same({ rules = {}, injected = {}, requests = {}, total = 0 }, e:fault_report())
  end)
end)
