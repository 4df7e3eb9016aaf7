--- Benchmark of issue 12: the cost of `cm:credentials()` when the stored access token is
-- still valid (the path every request or frame takes), against a plain table lookup of a
-- cached token in the same run. No network: the token is saved without an ID token and is
-- valid for a day. Store kinds: memory and file (the file is read once, then cached).
-- Usage: lua5.4 bench/credentials.lua [N]   or   luajit bench/credentials.lua [N]
-- (N = 1000000 calls per row; needs `make` / `make luajit`). The figure is process CPU time
-- (os.clock) per call; the target is under 2 microseconds.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
local jit = rawget(_G, "jit")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/build/lua5.4/?.so;") .. package.cpath

local auth0 = require "auth0"
local credentials = require "auth0.credentials"

local N = math.floor(tonumber(arg[1] or 1000000))
assert(N >= 1, "usage: bench/credentials.lua [N]")
local clock, format = os.clock, string.format

local tokens = { access_token = ("a"):rep(800), refresh_token = ("r"):rep(64), expires_in = 86400,
                 token_type = "Bearer", scope = "openid offline_access" }
local client = auth0.new { base_url = "https://127.0.0.1:1", client_id = "bench" }

local function row(name, fn)
  fn()   -- warm up
  local t0 = clock()
  for _ = 1, N do fn() end
  local per = (clock() - t0) / N * 1e9
  print(format("%-36s %8.0f ns/call", name, per))
  return per
end

print(format("%s, N = %d", jit and jit.version or _VERSION, N))
local cache = { access_token = tokens.access_token, expires_at = os.time() + 86400 }
local sink
local base = row("plain table lookup", function()
  if cache.expires_at - os.time() >= 60 then sink = cache.access_token end
end)

local mem = credentials.new(client, { store = credentials.memory_store() })
assert(mem:save(tokens))
local m = row("credentials() memory store", function() sink = mem:credentials().access_token end)

local dir = os.tmpname()
os.remove(dir)
local path = dir .. "/credentials"
local file = credentials.new(client, { store = credentials.file_store { path = path, key = ("k"):rep(32) } })
assert(file:save(tokens))
file = credentials.new(client, { store = credentials.file_store { path = path, key = ("k"):rep(32) } })
local f = row("credentials() encrypted file store", function() sink = file:credentials().access_token end)
os.remove(path); os.remove(path .. ".lock"); os.remove(dir)
assert(sink == tokens.access_token)
print(format("over the lookup: memory %+.0f ns, file %+.0f ns; target < 2000 ns per call: %s",
  m - base, f - base, (m < 2000 and f < 2000) and "met" or "NOT met"))
client:close()
