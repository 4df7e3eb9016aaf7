-- auth0.otp: TOTP/HOTP over base32 secrets and otpauth:// parsing.
local otp = require "auth0.otp"

-- RFC 6238 appendix B secrets, base32-encoded.
local SHA1_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
local SHA256_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"
local SHA512_SECRET = string.rep("GEZDGNBVGY3TQOJQ", 6) .. "GEZDGNA"
local REAL_SECRET = "HJ6XM2DNERXDAVCUONGWKRTCMNTU6VDF"

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

describe("auth0.otp.totp", function()
  it("matches the RFC 6238 table (8 digits)", function()
    local rows = {
      { 59, "94287082", "46119246", "90693936" },
      { 1111111109, "07081804", "68084774", "25091201" },
      { 1111111111, "14050471", "67062674", "99943326" },
      { 1234567890, "89005924", "91819424", "93441116" },
      { 2000000000, "69279037", "90698825", "38618901" },
      { 20000000000, "65353130", "77737706", "47863826" },
    }
    for _, r in ipairs(rows) do
      assert.equal(r[2], otp.totp(SHA1_SECRET, { time = r[1], digits = 8 }))
      assert.equal(r[3], otp.totp(SHA256_SECRET, { time = r[1], digits = 8, algorithm = "SHA256" }))
      assert.equal(r[4], otp.totp(SHA512_SECRET, { time = r[1], digits = 8, algorithm = "sha512" }))
    end
  end)

  it("uses 6 digits, 30 s and SHA1 by default", function()
    assert.equal("287082", otp.totp(SHA1_SECRET, { time = 59 }))
    assert.equal("287082", otp.totp(SHA1_SECRET:lower(), { time = 30 }))
    assert.equal("755224", otp.totp(SHA1_SECRET, { time = 29 }))
    assert.equal("755224", otp.totp(SHA1_SECRET, { time = 119, period = 120 }))
    local now = otp.totp(REAL_SECRET)
    assert.truthy(now:match("^%d%d%d%d%d%d$"))
  end)

  describe("agrees with oathtool", function()
    local has_oathtool = io.open("/usr/bin/oathtool", "r")
    if has_oathtool then has_oathtool:close() end

    -- env -u LD_PRELOAD: under the ASan pass the sanitizer runtime must not leak into oathtool.
    local function oathtool(args)
      local p = assert(io.popen("env -u LD_PRELOAD /usr/bin/oathtool " .. args))
      local out = p:read("*l")
      p:close()
      assert(out and out:match("^%d+$"), "oathtool produced no code")
      return out
    end

    local times = { 0, 59, 1111111111, 1700000000, 1726721698, 2000000000 }
    for _, t in ipairs(times) do
      local name = "at @" .. t
      if not has_oathtool then
        pending("oathtool not installed: " .. name)
      else
        it(name, function()
          assert.equal(oathtool("--totp -b " .. REAL_SECRET .. " -N @" .. t),
            otp.totp(REAL_SECRET, { time = t }))
          assert.equal(oathtool("--totp=sha256 -d 8 -b " .. REAL_SECRET .. " -N @" .. t),
            otp.totp(REAL_SECRET, { time = t, algorithm = "SHA256", digits = 8 }))
          assert.equal(oathtool("--totp=sha512 -d 8 -s 60 -b " .. REAL_SECRET .. " -N @" .. t),
            otp.totp(REAL_SECRET, { time = t, algorithm = "SHA512", digits = 8, period = 60 }))
        end)
      end
    end
  end)

  it("raises on a bad secret without echoing it", function()
    local secret = "HJ6XM2DNERXDAVCUONGWKRTCMNTU6VD1"
    local err = error_of(otp.totp, secret, { time = 59 })
    assert.truthy(err:find("bad argument #1 to 'totp' (invalid secret: invalid base32 character at position 32", 1, true))
    assert.is_nil(err:find(secret, 1, true))
    err = error_of(otp.totp, "ABC", { time = 59 })
    assert.truthy(err:find("invalid secret: invalid base32 length", 1, true))
    err = error_of(otp.totp, "  ", { time = 59 })
    assert.truthy(err:find("invalid secret: empty", 1, true))
    err = error_of(otp.totp, nil)
    assert.truthy(err:find("secret must be a base32 string", 1, true))
  end)

  it("raises at the caller's line", function()
    -- (no tail calls here: they would hide the caller's frame)
    local err = error_of(function() local c = otp.totp("1", { time = 1 }); return c end)
    assert.truthy(err:find("otp_spec.lua:%d+: bad argument #1 to 'totp'"))
    err = error_of(function() local c = otp.totp(REAL_SECRET, { period = 0 }); return c end)
    assert.truthy(err:find("otp_spec.lua:%d+: bad argument #2 to 'totp' %(period"))
  end)

  it("raises on bad options", function()
    local cases = {
      { { digits = 5 }, "digits must be an integer in 6..10" },
      { { digits = 11 }, "digits must be an integer in 6..10" },
      { { digits = 6.5 }, "digits must be an integer in 6..10" },
      { { period = 0 }, "period must be a positive integer" },
      { { period = "30" }, "period must be a positive integer" },
      { { algorithm = "MD5" }, "algorithm must be SHA1, SHA256 or SHA512" },
      { { time = -1 }, "time must be a number >= 0" },
      { { tiem = 1 }, "unknown option 'tiem'" },
    }
    for _, c in ipairs(cases) do
      local err = error_of(otp.totp, REAL_SECRET, c[1])
      assert.truthy(err:find("bad argument #2 to 'totp' (" .. c[2], 1, true), err)
      assert.is_nil(err:find(REAL_SECRET, 1, true))
    end
    assert.truthy(error_of(otp.totp, REAL_SECRET, "x"):find("bad argument #2 to 'totp' (table expected, got string)", 1, true))
  end)
end)

describe("auth0.otp.hotp", function()
  it("matches RFC 4226", function()
    local expect = { "755224", "287082", "359152", "969429", "338314",
                     "254676", "287922", "162583", "399871", "520489" }
    for i, code in ipairs(expect) do
      assert.equal(code, otp.hotp(SHA1_SECRET, i - 1))
    end
    assert.equal("84755224", otp.hotp(SHA1_SECRET, 0, { digits = 8 }))
  end)

  it("raises on a bad counter or option", function()
    assert.truthy(error_of(otp.hotp, SHA1_SECRET, -1):find("counter must be an integer >= 0", 1, true))
    assert.truthy(error_of(otp.hotp, SHA1_SECRET, 1.5):find("counter must be an integer >= 0", 1, true))
    assert.truthy(error_of(otp.hotp, SHA1_SECRET, 0, { period = 30 }):find("unknown option 'period'", 1, true))
  end)
end)

describe("auth0.otp.parse_otpauth", function()
  it("parses the URI from the real server", function()
    local uri = "otpauth://totp/My%20Test%20Tenant:user%40example.com?secret=HJ6XM2DNERXDAVCUONGWKRTCMNTU6VDF"
      .. "&issuer=My%20Test%20Tenant&algorithm=SHA1&digits=6&period=30"
    assert.same({
      type = "totp", label = "My Test Tenant:user@example.com", issuer = "My Test Tenant",
      account = "user@example.com", secret = REAL_SECRET, digits = 6, period = 30,
      algorithm = "SHA1",
      params = { secret = REAL_SECRET, issuer = "My Test Tenant", algorithm = "SHA1", digits = "6",
                 period = "30" },
    }, otp.parse_otpauth(uri))
  end)

  it("accepts a push enrollment URI without a secret", function()
    local uri = "otpauth://totp/My%20Test%20Tenant:user%40example.com?enrollment_tx_id=t5FmaYNt8APzKlh3WCRNLi2dG3uZYnAC"
      .. "&base_url=https%3A%2F%2Fgo-auth0-dev.eu.auth0.com.guardian.us.auth0.com"
    local r = assert(otp.parse_otpauth(uri))
    assert.is_nil(r.secret)
    assert.equal("My Test Tenant", r.issuer)
    assert.equal("user@example.com", r.account)
    assert.equal("t5FmaYNt8APzKlh3WCRNLi2dG3uZYnAC", r.params.enrollment_tx_id)
    assert.equal("https://go-auth0-dev.eu.auth0.com.guardian.us.auth0.com", r.params.base_url)
    assert.equal(6, r.digits)
    assert.equal(30, r.period)
    assert.equal("SHA1", r.algorithm)
  end)

  it("applies defaults, the label issuer and hotp counters", function()
    local r = assert(otp.parse_otpauth("otpauth://hotp/ACME%20Co:%20john.doe?secret=" .. REAL_SECRET
      .. "&counter=42&digits=8&algorithm=sha256"))
    assert.equal("hotp", r.type)
    assert.equal("ACME Co", r.issuer)
    assert.equal("john.doe", r.account)
    assert.equal(42, r.counter)
    assert.equal(8, r.digits)
    assert.equal("SHA256", r.algorithm)
    assert.equal(30, r.period)

    r = assert(otp.parse_otpauth("OTPAUTH://TOTP/alice?secret=" .. REAL_SECRET .. "&issuer=Big+Corp#frag"))
    assert.equal("totp", r.type)
    assert.equal("alice", r.label)
    assert.equal("alice", r.account)
    assert.equal("Big Corp", r.issuer)
    assert.is_nil(r.counter)
  end)

  it("returns nil, err for malformed URIs without echoing the secret", function()
    local s = REAL_SECRET
    local cases = {
      { "https://totp/x?secret=" .. s, "not an otpauth:// URI" },
      { "otpauth:/totp/x?secret=" .. s, "not an otpauth:// URI" },
      { "otpauth://motp/x?secret=" .. s, "unsupported otpauth type (expected totp or hotp)" },
      { "otpauth://totp?secret=" .. s, "otpauth URI has no label" },
      { "otpauth://totp/a%2?secret=" .. s, "malformed percent-encoding in otpauth label" },
      { "otpauth://totp/a?secret=" .. s .. "&issuer=%zz", "malformed percent-encoding in otpauth parameters" },
      { "otpauth://totp/a?issuer=x", "otpauth URI has no secret parameter" },
      { "otpauth://totp/a?secret=" .. s .. "1",
        "invalid otpauth secret parameter: invalid base32 character at position 33" },
      { "otpauth://totp/a?secret=", "invalid otpauth secret parameter: empty" },
      { "otpauth://totp/a?secret=" .. s .. "&digits=5", "invalid otpauth digits parameter (expected 6..10)" },
      { "otpauth://totp/a?secret=" .. s .. "&digits=six", "invalid otpauth digits parameter (expected 6..10)" },
      { "otpauth://totp/a?secret=" .. s .. "&period=0", "invalid otpauth period parameter" },
      { "otpauth://totp/a?secret=" .. s .. "&algorithm=MD5",
        "unsupported otpauth algorithm (expected SHA1, SHA256 or SHA512)" },
      { "otpauth://hotp/a?secret=" .. s, "missing or invalid otpauth counter parameter" },
    }
    for _, c in ipairs(cases) do
      local r, err = otp.parse_otpauth(c[1])
      assert.is_nil(r)
      assert.is_true(require("auth0.error").is(err))
      assert.equal("invalid_otpauth", err.code)
      assert.equal(c[2], err.message)
      assert.is_nil(tostring(err):find(s, 1, true))
    end
  end)

  it("raises on a non-string", function()
    assert.truthy(error_of(otp.parse_otpauth, nil):find("bad argument #1 to 'parse_otpauth' (string expected, got nil)", 1, true))
  end)
end)
