-- attack12: client:fetch's fields as key, value pairs after the checker (csrc/l_call.c
-- check_fields). Pairs carry strings only; a table-valued field (authParams: an object)
-- given as a pair was taken as a string and then read from the fields table by
-- encode_fields: lua_next on nil (no table, or a table without it), a segfault.
local auth0 = require "auth0"

describe("attack12: fields as key, value pairs", function()
  local c
  before_each(function()
    c = auth0.new { base_url = "http://127.0.0.1:9", client_id = "emu-native", retries = 0, timeout = 1 }
  end)
  after_each(function() c:close() end)

  it("refuses an object field given as a pair, with or without a fields table", function()
    local core = c._core
    for _, t in ipairs({ false, {}, { phone_number = "+15550100" } }) do
      local ok, err = pcall(core.fetch, core, "passwordless_start", t or nil, nil, nil, "client_id", "x",
        "connection", "email", "send", "link", "email", "a@b.co", "authParams", "zz")
      assert.is_false(ok)
      assert.matches("field 'authParams' must be in the fields table", err, 1, true)
    end
    -- a table value as a pair too (the pairs are strings only)
    local ok, err = pcall(core.fetch, core, "passwordless_start", nil, nil, nil, "authParams", { scope = "openid" })
    assert.is_false(ok)
    assert.matches("field 'authParams' must be in the fields table", err, 1, true)
  end)
end)
