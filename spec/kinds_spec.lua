-- core.kinds (csrc/l_json.c): the C check of a shape's JSON-scalar fields (lua/auth0/shape.lua
-- uses it for the token and start answers). It must answer exactly as the Lua check it
-- replaces: the first field in the given order whose value is present and not of its kind.
local core = require "auth0.core"

describe("core.kinds", function()
  local check = core.kinds({ "a", "b", "n" }, { "string", "boolean", "number" })

  it("accepts fields of their kind, and absent ones", function()
    assert.are.same({}, { check({ a = "x", b = false, n = 3 }) })
    assert.are.same({}, { check({ n = 0.5 }) })
    assert.are.same({}, { check({}) })
    assert.are.same({}, { check({ other = 1, [1] = "x" }) })   -- fields not listed are not looked at
  end)

  it("names the first field, in the given order, that is not of its kind", function()
    assert.are.same({ "a", "string" }, { check({ a = 1, b = "x" }) })
    assert.are.same({ "b", "boolean" }, { check({ a = "x", b = "false" }) })
    assert.are.same({ "n", "number" }, { check({ n = "3" }) })
    assert.are.same({ "n", "number" }, { check({ n = {} }) })
    assert.are.same({ "a", "string" }, { check({ a = false }) })
  end)

  it("takes NaN and infinities for non-numbers, as JSON does", function()
    assert.are.same({ "n", "number" }, { check({ n = 0 / 0 }) })
    assert.are.same({ "n", "number" }, { check({ n = math.huge }) })
    assert.are.same({ "n", "number" }, { check({ n = -math.huge }) })
    assert.are.same({}, { check({ n = -1e308 }) })
  end)

  it("raises on misuse", function()
    assert.has_error(function() check("x") end)
    assert.has_error(function() core.kinds({ "a" }, { "object" }) end)
    assert.has_error(function() core.kinds({ "a", "b" }, { "string" }) end)
    assert.has_error(function() core.kinds({ 1 }, { "string" }) end)
  end)

  it("is what the token shape checks with", function()
    local shape = require "auth0.shape"
    local v, msg = shape.tokens({ access_token = "t", token_type = 1 }, nil, true)
    assert.is_nil(v)
    assert.are.equal("token response: token_type is not a string", msg)
    v, msg = shape.start({ _id = "x", email_verified = "no" }, nil, true)
    assert.is_nil(v)
    assert.are.equal("passwordless start answer: email_verified is not a boolean", msg)
    assert.are.same({ _id = "x", email_verified = true }, (shape.start({ _id = "x", email_verified = true }, nil, true)))
  end)
end)
