-- sched.plain renders a table for on_log and on_callback_error: its comment promises "a
-- bounded, one-line rendering" with secret fields hidden.
local sched = require "auth0.sched"

describe("sched.plain on a table", function()
  it("keeps a string field on one line (a forged log line cannot start inside it)", function()
    local s = sched.plain { msg = "line1\nauth0 info: logged in as admin\r" }
    assert.is_nil(s:find("[\r\n]"))
    assert.truthy(s:find("line1", 1, true))
  end)

  it("bounds a long string field", function()
    assert.is_true(#sched.plain { a = ("x"):rep(1e6) } < 1000)
  end)

  it("hides an Authorization header, whatever its case, and secret keys in any case", function()
    local s = sched.plain { headers = { Authorization = "Bearer eyJhbGciOi.SECRET.sig", authorization = "Basic c2VjcmV0" },
      Refresh_Token = "rt-SECRET" }
    assert.is_nil(s:find("SECRET", 1, true))
    assert.is_nil(s:find("c2VjcmV0", 1, true))
    assert.truthy(s:find("(secret)", 1, true))
  end)

  it("still shows the plain scalars", function()
    assert.equal("{status=429}", sched.plain { status = 429 })
  end)
end)
