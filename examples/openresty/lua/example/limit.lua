--- Sliding-window rate limits kept in an ngx.shared dict: shared by the workers of one nginx,
-- so every limit here is per node (Auth0's own limits stay tenant-wide and per forwarded IP).
--
-- The window slides the usual approximate way: the previous fixed window's count, weighted by
-- the part of it still inside the sliding window, plus the current window's count.
local floor, ceil, max = math.floor, math.ceil, math.max

local _M = {}

-- Seconds until one more hit fits: first while the previous window fades out, else after the
-- current window has become the previous one.
local function wait(limit, window, prev, cur, elapsed)
  local rest = window - elapsed
  if cur + 1 <= limit and prev > 0 then
    local t = window * (1 - (limit - cur - 1) / prev) - elapsed
    if t <= rest then return max(1, ceil(t)) end
  end
  local t = cur > 0 and window * (1 - (limit - 1) / cur) or 0
  return max(1, ceil(rest + max(0, t)))
end
_M.wait = wait

--- Counts one hit on `key` if it fits in `limit` hits per `window` seconds.
-- @tparam table dict an ngx.shared dict
-- @tparam string key what is limited ("ip:192.0.2.1", "id:alice@example.com", ...)
-- @tparam number limit hits allowed per window (at least 1)
-- @tparam number window seconds
-- @tparam[opt] number now seconds (ngx.now())
-- @treturn boolean true when the hit is counted and allowed
-- @treturn number|nil when refused, seconds until a hit would fit (for Retry-After)
function _M.hit(dict, key, limit, window, now)
  now = now or ngx.now()
  local slot = floor(now / window)
  local elapsed = now - slot * window
  local cur_key = key .. "|" .. slot
  -- count first, then compare, so that concurrent workers never both take the last place
  local cur = dict:incr(cur_key, 1, 0, 2 * window + 1)
  if not cur then return false, 1 end    -- the dict is full and nothing could be evicted
  local prev = dict:get(key .. "|" .. (slot - 1)) or 0
  if prev * (1 - elapsed / window) + cur <= limit then return true end
  dict:incr(cur_key, -1)
  return false, wait(limit, window, prev, cur - 1, elapsed)
end

--- The key an address is limited by: an IPv6 address by its /64 (one subscriber's network,
-- 2^64 addresses an attacker gets for free), an IPv4-mapped one as IPv4, IPv4 as itself.
-- @tparam string addr as nginx prints it (ngx.var.remote_addr)
-- @treturn string
function _M.addr_key(addr)
  if not addr:find(":", 1, true) then return addr end
  local v4 = addr:lower():match("^::ffff:(%d+%.%d+%.%d+%.%d+)$")
  if v4 then return v4 end
  local function groups(part)
    local t = {}
    for g in part:gmatch("[^:]+") do
      if g:find(".", 1, true) then t[#t + 1] = "0"; t[#t + 1] = "0"   -- a dotted tail is two groups
      else t[#t + 1] = g end
    end
    return t
  end
  local head, tail = addr:match("^(.-)::(.*)$")
  local g
  if head then
    local h, t = groups(head), groups(tail)
    g = h
    for _ = 1, 8 - #h - #t do g[#g + 1] = "0" end
    for _, v in ipairs(t) do g[#g + 1] = v end
  else
    g = groups(addr)
  end
  local out = {}
  for i = 1, 4 do out[i] = ("%x"):format(tonumber(g[i] or "0", 16) or 0) end
  return table.concat(out, ":") .. "::/64"
end

--- The key an e-mail address is limited by: one mailbox whatever the case or the +tag
-- ("Victim+1@Example.com" is victim@example.com), so tags cannot multiply the codes sent to it.
-- @tparam string email
-- @treturn string
function _M.email_key(email)
  local e = email:lower()
  local l, d = e:match("^(.*)@([^@]*)$")
  if not l then return e end
  return (l:gsub("%+.*$", "")) .. "@" .. d
end

return _M
