--- A fake cosocket for the HTTP/1.1 reader (auth0.transport.http1): the reading half of
-- `ngx.socket.tcp` over a string or an endless source, with the semantics lua-nginx-module
-- documents (receive(n), receiveuntil iterators called with a size, receiveany). Used by
-- spec/http1_spec.lua and the fuzz run csrc/fuzz/fuzz_http1.lua.
--
--   local fake = require "spec.support.fake_socket"
--   local sock = fake.new("HTTP/1.1 200 OK\r\n...", { seed = 7 })
--   local sock = fake.new(function() return ("x"):rep(4096) end)   -- endless
--   sock.consumed   -- bytes the reader pulled from the source
local _M = {}

local Fake = {}
Fake.__index = Fake

--- A socket reading `src`: a string, or a function returning the next piece (nil: end).
-- `opts.seed` varies how much receiveany returns and whether an iterator reports an empty
-- chunk before a pattern found at once (both are legal cosocket behaviours).
function _M.new(src, opts)
  opts = opts or {}
  local self = setmetatable({ buf = "", pos = 1, consumed = 0, eof = false, timeouts = 0 }, Fake)
  if type(src) == "string" then self.buf, self.consumed, self.eof = src, #src, true
  else self.src = src end
  self.rand = opts.seed and (function()
    local x = opts.seed % 2147483647
    if x <= 0 then x = x + 2147483646 end
    return function(n) x = x * 16807 % 2147483647; return x % n + 1 end
  end)() or function() return 1 end
  return self
end

-- Pulls from the source until at least `n` bytes are buffered past pos, or the end.
function Fake:_fill(n)
  while #self.buf - self.pos + 1 < n and not self.eof do
    local piece = self.src()
    if piece == nil then self.eof = true
    else
      self.buf = self.buf:sub(self.pos) .. piece
      self.pos = 1
      self.consumed = self.consumed + #piece
    end
  end
  return #self.buf - self.pos + 1
end

function Fake:_take(n)
  local s = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

function Fake:settimeout(ms)
  assert(type(ms) == "number" and ms >= 1 and ms == ms, "settimeout needs a positive number of ms")
  self.timeouts = self.timeouts + 1
end

function Fake:receive(n)
  assert(type(n) == "number" and n >= 0 and n % 1 == 0, "receive(n) only: the reader must bound every read")
  if self:_fill(n) >= n then return self:_take(n) end
  return nil, "closed", self:_take(#self.buf - self.pos + 1)
end

function Fake:receiveany(max)
  assert(type(max) == "number" and max >= 1, "receiveany needs a positive size")
  local avail = self:_fill(1)
  if avail == 0 then return nil, "closed" end
  local n = math.min(max, avail, self.rand(4096))
  return self:_take(n)
end

function Fake:receiveuntil(pattern)
  assert(type(pattern) == "string" and #pattern > 0)
  local found_at   -- set once the pattern has been seen: the data before it is being returned
  return function(size)
    assert(type(size) == "number" and size >= 1 and size % 1 == 0, "iterator needs a size")
    while true do
      if found_at == true then return nil end
      local at = self.buf:find(pattern, self.pos, true)
      if at then
        local before = at - self.pos
        if before == 0 then
          self.pos = self.pos + #pattern
          found_at = true
          if self.rand(2) == 1 then return nil end
          return ""
        end
        return self:_take(math.min(before, size))
      end
      -- hold back what could be the start of the pattern
      local safe = #self.buf - self.pos + 1 - (#pattern - 1)
      if safe >= size then return self:_take(size) end
      if self.eof then
        local rest = self:_take(#self.buf - self.pos + 1)
        return nil, "closed", rest
      end
      self:_fill(#self.buf - self.pos + 1 + 4096)
    end
  end
end

return _M
