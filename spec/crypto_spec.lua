-- auth0.core crypto functions: encoders, digests, HMAC, OTP primitives and auth0.Key.
local core = require "auth0.core"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

describe("auth0.core random_bytes", function()
  it("returns n random bytes", function()
    assert.equal(1, #core.random_bytes(1))
    assert.equal(4096, #core.random_bytes(4096))
    assert.not_equal(core.random_bytes(32), core.random_bytes(32))
  end)

  it("raises outside 1..4096", function()
    assert.has_error(function() core.random_bytes(0) end)
    assert.has_error(function() core.random_bytes(4097) end)
    assert.has_error(function() core.random_bytes("x") end)
  end)
end)

describe("auth0.core base64", function()
  local plain = { "", "f", "fo", "foo", "foob", "fooba", "foobar" }
  local std = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" }
  local url = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" }

  it("encodes the RFC 4648 vectors", function()
    for i, p in ipairs(plain) do
      assert.equal(std[i], core.b64_encode(p))
      assert.equal(url[i], core.b64url_encode(p))
    end
    assert.equal("+/+/", core.b64_encode("\251\255\191"))
    assert.equal("-_-_", core.b64url_encode("\251\255\191"))
  end)

  it("decodes with and without padding", function()
    for i, p in ipairs(plain) do
      assert.equal(p, core.b64_decode(std[i]))
      assert.equal(p, core.b64_decode(url[i]))
      assert.equal(p, core.b64url_decode(url[i]))
      assert.equal(p, core.b64url_decode(std[i]))
    end
  end)

  it("round-trips every byte", function()
    local s = all_bytes()
    assert.equal(s, core.b64_decode(core.b64_encode(s)))
    assert.equal(s, core.b64url_decode(core.b64url_encode(s)))
  end)

  it("returns nil, err for bad input", function()
    assert.same({ nil, "invalid base64url character at position 1" }, { core.b64url_decode("+/+/") })
    assert.same({ nil, "invalid base64 character at position 1" }, { core.b64_decode("-_-_") })
    assert.same({ nil, "invalid base64url character at position 3" }, { core.b64url_decode("Zm 9") })
    assert.same({ nil, "invalid base64url length" }, { core.b64url_decode("Zm9vY") })
    assert.same({ nil, "invalid base64 padding" }, { core.b64_decode("Zg=") })
  end)

  it("raises on a non-string", function()
    assert.has_error(function() core.b64_encode({}) end)
    assert.has_error(function() core.b64url_decode(nil) end)
  end)
end)

describe("auth0.core base32", function()
  local plain = { "", "f", "fo", "foo", "foob", "fooba", "foobar" }
  local enc = { "", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI" }

  it("encodes and decodes the RFC 4648 vectors", function()
    for i, p in ipairs(plain) do
      assert.equal(enc[i], core.base32_encode(p))
      assert.equal(p, core.base32_decode(enc[i]))
    end
    assert.equal(all_bytes(), core.base32_decode(core.base32_encode(all_bytes())))
  end)

  it("is case-insensitive and ignores spaces and padding", function()
    assert.equal("foobar", core.base32_decode("mzxw 6ytb oi======"))
    assert.equal("12345678901234567890", core.base32_decode("GEZDGNBV GY3TQOJQ GEZDGNBV GY3TQOJQ"))
  end)

  it("names the position of a bad character without echoing the secret", function()
    local secret = "JBSWY3DPEHPK3PX1"
    local ok, err = core.base32_decode(secret)
    assert.is_nil(ok)
    assert.equal("invalid base32 character at position 16", err)
    assert.is_nil(err:find(secret, 1, true))
    assert.same({ nil, "invalid base32 length" }, { core.base32_decode("MZX") })
  end)
end)

describe("auth0.core digests", function()
  it("sha256", function()
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(core.sha256("abc")))
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(core.sha256("")))
  end)

  it("hmac (RFC 2202 / RFC 4231 test case 2), case-insensitive names", function()
    local key, data = "Jefe", "what do ya want for nothing?"
    assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", hex(core.hmac("SHA1", key, data)))
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      hex(core.hmac("sha256", key, data)))
    assert.equal("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
      .. "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
      hex(core.hmac("Sha512", key, data)))
    assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      hex(core.hmac("SHA256", "", "")))
  end)

  it("raises on an unknown algorithm", function()
    assert.has_error(function() core.hmac("MD5", "k", "d") end)
    assert.has_error(function() core.hmac(nil, "k", "d") end)
  end)
end)

describe("auth0.core hotp/totp", function()
  local key = "12345678901234567890"

  it("matches RFC 4226", function()
    local expect = { "755224", "287082", "359152", "969429", "338314",
                     "254676", "287922", "162583", "399871", "520489" }
    for i, code in ipairs(expect) do
      assert.equal(code, core.hotp(key, i - 1, 6, "SHA1"))
    end
  end)

  it("matches RFC 6238", function()
    assert.equal("94287082", core.totp(key, 59, 30, 8, "SHA1"))
    assert.equal("94287082", core.totp(key, 59.9, 30, 8, "SHA1"))
    assert.equal("65353130", core.totp(key, 20000000000, 30, 8, "SHA1"))
    assert.equal("91819424", core.totp("12345678901234567890123456789012", 1234567890, 30, 8, "SHA256"))
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() core.hotp(key, -1, 6, "SHA1") end)
    assert.has_error(function() core.hotp(key, 1.5, 6, "SHA1") end)
    assert.has_error(function() core.hotp(key, 0, 5, "SHA1") end)
    assert.has_error(function() core.hotp(key, 0, 11, "SHA1") end)
    assert.has_error(function() core.hotp(key, 0, 6, "MD5") end)
    assert.has_error(function() core.totp(key, 59, 0, 6, "SHA1") end)
    assert.has_error(function() core.totp(key, -1, 30, 6, "SHA1") end)
  end)
end)

describe("auth0.core rsa_key", function()
  local key = core.rsa_key()

  it("signs RS256 and verifies with its JWK", function()
    local jwk = key:jwk()
    assert.equal("RSA", jwk.kty)
    assert.equal("AQAB", jwk.e)
    assert.equal(342, #jwk.n) -- 256 bytes, unpadded base64url
    local sig = key:sign_rs256("payload")
    assert.equal(256, #sig)
    assert.is_true(core.rs256_verify(jwk.n, jwk.e, "payload", sig))
    assert.is_false(core.rs256_verify(jwk.n, jwk.e, "payloaD", sig))
    assert.is_false(core.rs256_verify(jwk.n, jwk.e, "payload", sig:sub(1, -2)))
    assert.is_false(core.rs256_verify(jwk.n, "AQ", "payload", sig))  -- e = 1
    assert.is_false(core.rs256_verify("!!", jwk.e, "payload", sig))
    assert.is_false(core.rs256_verify(core.rsa_key():jwk().n, jwk.e, "payload", sig))
  end)

  it("imports a JWK's public key once and verifies with it (core.rsa_public)", function()
    local jwk = key:jwk()
    local sig = key:sign_rs256("payload")
    local pk = assert(core.rsa_public(jwk.n, jwk.e))
    assert.equal("auth0.Key (RSA 2048)", tostring(pk))
    assert.is_true(pk:verify_rs256("payload", sig))
    assert.is_false(pk:verify_rs256("payloaD", sig))
    assert.is_false(pk:verify_rs256("payload", sig:sub(1, -2)))
    assert.is_false(pk:verify_rs256("payload", ""))
    local none, msg = core.rsa_public(jwk.n, "AQ")   -- e = 1
    assert.is_nil(none)
    assert.equal("not a usable RSA public key", msg)
    assert.is_nil((core.rsa_public("!!", jwk.e)))
    assert.is_nil((core.rsa_public(jwk.n:sub(1, 40), jwk.e)))   -- too small a modulus
    -- a public key cannot sign or give a private PEM
    assert.has_error(function() pk:sign_rs256("x") end, "RS256 signing failed")
    assert.has_error(function() pk:pem() end, "could not encode RSA key")
    assert.has_error(function() core.rsa_public(1, jwk.e) end)
  end)

  it("round-trips through PEM", function()
    local pem = key:pem()
    assert.truthy(pem:find("^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-\n"))
    local again = assert(core.rsa_key(pem))
    assert.same(key:jwk(), again:jwk())
    assert.is_true(core.rs256_verify(key:jwk().n, key:jwk().e, "x", again:sign_rs256("x")))
  end)

  it("returns nil, err for a bad PEM and raises on a non-string", function()
    assert.same({ nil, "invalid PEM private key" }, { core.rsa_key("not a key") })
    assert.has_error(function() core.rsa_key(42) end)
  end)

  it("never prints the key", function()
    assert.equal("auth0.Key (RSA 2048)", tostring(key))
    local mt = getmetatable(key)
    local k2 = core.rsa_key()
    mt.__gc(k2)
    assert.equal("auth0.Key (closed)", tostring(k2))
    local ok, msg = pcall(k2.pem, k2)
    assert.is_false(ok)
    assert.is_nil(tostring(msg):find("BEGIN", 1, true))
    mt.__gc(k2) -- idempotent
    assert.equal("auth0.Key (closed)", tostring(k2))
    -- nothing that shows the live key carries its PEM
    local pem = key:pem()
    assert.matches("^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-", pem)
    assert.is_nil(tostring(key):find(pem:sub(40, 80), 1, true))
  end)

  it("raises when a method gets a wrong self", function()
    assert.has_error(function() key.sign_rs256({}, "x") end)
  end)
end)
