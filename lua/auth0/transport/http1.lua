--- HTTP/1.1 response reader for the cosocket transport (auth0.transport.ngx).
-- It reads through any object with the cosocket reading API (`settimeout`, `receive(n)`,
-- `receiveuntil(pattern)` iterators called with a size, `receiveany(max)`), so the same code
-- runs inside nginx and, in the specs and the fuzz run, over a fake socket.
--
-- Every byte read is counted: the status line, headers, interim (1xx) answers, chunk-size
-- lines and trailers against `MAX_HEADER` (64 KiB), the body against `MAX_BODY` (1 MiB), so
-- a hostile server can make the reader hold at most about 1.1 MiB, whatever it sends.
local tonumber, concat, lower, find, sub, match = tonumber, table.concat, string.lower, string.find,
  string.sub, string.match

local _M = {
  MAX_BODY = 1024 * 1024,   -- same cap as the libcurl engine
  MAX_HEADER = 64 * 1024,   -- status lines, headers, chunk-size lines and trailers together
  MAX_CHUNK_LINE = 256,     -- one chunk-size line: 8 hex digits and a short extension
}
local MAX_BODY, MAX_HEADER, MAX_CHUNK_LINE = _M.MAX_BODY, _M.MAX_HEADER, _M.MAX_CHUNK_LINE
local READ = 4096

local function fail(code, message, extra) return nil, code, message, extra end

local function timed_out(what) return fail("timeout", "timed out reading the response " .. what) end

-- Reads up to `pattern` (consumed, not returned), at most `room` bytes before it.
-- Returns data | nil, "over" | nil, err, partial_size.
local function read_until(sock, pattern, room)
  if room < 0 then return nil, "over" end
  local it = sock:receiveuntil(pattern)
  local parts, size = {}, 0
  while true do
    local want = room - size + 1
    local data, err, partial = it(want < READ and want or READ)
    if not data then
      if err then return nil, err, size + #(partial or "") end
      return concat(parts)
    end
    size = size + #data
    if size > room then return nil, "over" end
    parts[#parts + 1] = data
  end
end

-- Parses a header block (after the status line). Returns headers | nil.
local function parse_headers(head)
  local headers = {}
  local pos = find(head, "\r\n", 1, true)
  while pos do
    local nxt = find(head, "\r\n", pos + 2, true)
    local line = sub(head, pos + 2, (nxt or #head + 1) - 1)
    if line ~= "" then
      local name, value = match(line, "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
      if not name or find(value, "[%z\r\n]") then return nil end
      name = lower(name)
      local old = headers[name]
      headers[name] = old and (old .. ", " .. value) or value
    end
    pos = nxt
  end
  return headers
end

-- Reads the status line and headers, skipping interim (1xx) answers. Returns status,
-- headers (lowercase names; repeated fields joined with ", "), minor version, header room
-- left | nil, code, message, nothing_received.
local function read_head(sock, left, first)
  local room = MAX_HEADER
  while true do
    sock:settimeout(left())
    local head, err, got = read_until(sock, "\r\n\r\n", room)
    if not head then
      if err == "over" then return fail("bad_response", "response headers larger than " .. MAX_HEADER .. " bytes") end
      if err == "timeout" then return fail("timeout", "timed out waiting for the response") end
      if first and got == 0 then return fail("bad_response", "the server sent nothing", true) end
      return fail("bad_response", "the response ended inside its headers")
    end
    first = false
    room = room - #head - 4
    local minor, status, reason = match(head, "^HTTP/1%.([01]) ([1-5]%d%d)([^\r\n]*)")
    if not status or (reason ~= "" and sub(reason, 1, 1) ~= " ") then
      return fail("bad_response", "no HTTP status line")
    end
    status = tonumber(status)
    local headers = parse_headers(head)
    if not headers then return fail("bad_response", "malformed response header") end
    if status >= 200 or status < 100 then return status, headers, tonumber(minor), room end
    -- 1xx interim answer (100 Continue, 103 Early Hints): the real one follows
  end
end

local function read_exact(sock, n, left)
  sock:settimeout(left())
  local data, err = sock:receive(n)
  if data then return data end
  if err == "timeout" then return timed_out("body") end
  return fail("bad_response", "the response body was cut short")
end

-- Strict chunk-size line: hex digits only (no sign, no 0x, no spaces before them), at most 8,
-- then optionally an extension after ";" (RFC 9112 7.1.1).
local function chunk_size(line)
  local hex, rest = match(line, "^(%x+)(.*)$")
  if not hex or #hex > 8 then return nil end
  if rest ~= "" and not find(rest, "^[ \t]*;[^%z\r\n]*$") then return nil end
  return tonumber(hex, 16)
end

local function read_chunked(sock, left, room)
  local parts, size = {}, 0
  while true do
    sock:settimeout(left())
    local limit = room < MAX_CHUNK_LINE and room or MAX_CHUNK_LINE
    local line, err = read_until(sock, "\r\n", limit)
    if not line then
      if err == "over" then
        return fail("bad_response", limit < MAX_CHUNK_LINE and "chunk framing larger than the header cap"
          or "malformed chunk size")
      end
      if err == "timeout" then return timed_out("body") end
      return fail("bad_response", "the chunked response body was cut short")
    end
    room = room - #line - 2
    local n = chunk_size(line)
    if not n then return fail("bad_response", "malformed chunk size") end
    if n == 0 then
      -- trailers (ignored) up to the empty line, within what is left of the header cap
      repeat
        sock:settimeout(left())
        line, err = read_until(sock, "\r\n", room)
        if not line then
          if err == "over" then return fail("bad_response", "response trailers larger than the header cap") end
          if err == "timeout" then return timed_out("trailers") end
          return fail("bad_response", "the chunked response ended in its trailers")
        end
        room = room - #line - 2
      until line == ""
      return concat(parts)
    end
    size = size + n
    if size > MAX_BODY then return fail("too_large", "response larger than " .. MAX_BODY .. " bytes") end
    local data, code, msg = read_exact(sock, n + 2, left)
    if not data then return nil, code, msg end
    if sub(data, -2) ~= "\r\n" then return fail("bad_response", "malformed chunk") end
    parts[#parts + 1] = sub(data, 1, -3)
  end
end

-- Body delimited by the end of the connection (no Content-Length, not chunked).
local function read_to_close(sock, left)
  local parts, size = {}, 0
  while true do
    sock:settimeout(left())
    local data, err = sock:receiveany(MAX_BODY + 1 - size)
    if not data then
      if err == "closed" then return concat(parts) end
      if err == "timeout" then return timed_out("body") end
      return fail("bad_response", "could not read the response body")
    end
    size = size + #data
    if size > MAX_BODY then return fail("too_large", "response larger than " .. MAX_BODY .. " bytes") end
    parts[#parts + 1] = data
  end
end

--- Reads one response.
-- @param sock a cosocket, or any object with its reading methods
-- @string method the request's method (a HEAD answer has no body)
-- @tparam function left returns the milliseconds left for the call (at least 1)
-- @bool first true on a connection that has answered nothing yet (a pooled one the
--   server closed while idle then fails with `nothing_received`)
-- @return `{ status =, headers =, body = }, reusable`, or `nil, code, message,
--   nothing_received`. `reusable` is true only after a complete, well-formed answer that
--   keeps the connection open: only then may the caller pool the connection.
function _M.read_response(sock, method, left, first)
  local status, headers, minor, room = read_head(sock, left, first)
  if not status then return nil, headers, minor, room end
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te and cl then
    -- a classic request-smuggling shape: which length to believe is exactly the ambiguity
    return fail("bad_response", "response has both Transfer-Encoding and Content-Length")
  end
  local conn = lower(headers.connection or "")
  local reusable
  if minor == 1 then reusable = not find(conn, "close", 1, true)
  else reusable = find(conn, "keep-alive", 1, true) ~= nil end
  local body, code, msg = "", nil, nil
  if method == "HEAD" or status == 204 or status == 304 then
    body = ""
    -- a 204/304 announcing a body may have sent it (a HEAD answer's lengths are the GET's):
    -- those bytes would be read as the next request's answer on a pooled connection, so such
    -- a connection is not pooled (a lawful 304 with a length only costs a new connection)
    if method ~= "HEAD" and (te or (cl and cl ~= "0")) then reusable = false end
  elseif te then
    if lower(te) ~= "chunked" then return fail("bad_response", "unsupported Transfer-Encoding") end
    body, code, msg = read_chunked(sock, left, room)
  elseif cl then
    local n = match(cl, "^%d+$") and #cl <= 15 and tonumber(cl)
    if not n then return fail("bad_response", "malformed Content-Length") end
    if n > MAX_BODY then return fail("too_large", "response larger than " .. MAX_BODY .. " bytes") end
    if n > 0 then body, code, msg = read_exact(sock, n, left) end
  else
    body, code, msg = read_to_close(sock, left)
    reusable = false
  end
  if not body then return nil, code, msg end
  return { status = status, headers = headers, body = body }, reusable
end

return _M
