--- HTTP/1.1 over `ngx.socket.tcp` (lua-nginx-module cosockets) for lua-auth0 inside nginx.
-- Only bytes move here: the C core builds every request and init.lua classifies every
-- answer, so this transport and libcurl behave the same. Selected by `auth0.new{ transport =
-- "ngx" }` (the default when `ngx` exists).
--
--   local send = require("auth0.transport.ngx").new(cfg, opts)
--   local resp, code, msg = send{ method =, url =, headers = { name = value }, body =, timeout = }
--   -- resp = { status = 200, headers = { ["content-type"] = "..." }, body = "..." }
--
-- nginx setup (http block): `lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;`
-- (the system CA bundle; the certificate store is nginx's, `ca_file` is not used here),
-- `lua_ssl_verify_depth 5;`, and a `resolver` for the tenant's host name (nginx does not
-- read /etc/hosts; "localhost" is mapped to 127.0.0.1 here).
local type, tonumber, tostring, pairs, ipairs, lower, find, match, setmetatable =
  type, tonumber, tostring, pairs, ipairs, string.lower, string.find, string.match, setmetatable
local tcp, get_phase, now, update_time = ngx.socket.tcp, ngx.get_phase, ngx.now, ngx.update_time

local read_response = require("auth0.transport.http1").read_response

local _M = { _VERSION = "0.1.0" }

local DEFAULT_POOL_SIZE = 64       -- idle connections kept per pool (lua_socket_pool_size is 30): a
                                   -- smaller pool than the concurrency means TLS handshakes
local DEFAULT_IDLE = 60            -- seconds a pooled connection may stay idle

-- Phases in which cosockets work (lua-nginx-module docs, "Cosockets Not Available Everywhere").
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- Fields of a request that this module writes itself.
local OWN_HEADERS = { host = true, ["content-length"] = true, connection = true, ["transfer-encoding"] = true }

local function fail(code, message, extra) return nil, code, message, extra end

-- Splits "https://host[:port]/path?query" into scheme, host, port, path (host unbracketed).
local function parse_url(url)
  local scheme, hostport, path = match(url, "^(https?)://([^/?#]+)([^#]*)$")
  if not scheme then return nil end
  local host, port = match(hostport, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(hostport, "^([^:]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  return scheme, host, port, path, hostport
end

local function is_ip(host)
  return find(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or find(host, ":", 1, true) ~= nil
end

-- Milliseconds left before `deadline`, at least 1 (0 would mean "no timeout" to nginx). nginx's
-- cached clock is enough: its event loop refreshes it after every wait, and the transport call
-- refreshes it once on entry (ngx.update_time reformats nginx's time strings: not per read).
local function left_ms(deadline)
  local ms = (deadline - now()) * 1000
  if ms < 1 then return 1 end
  return ms - ms % 1
end

-- The reader's `left()` as a callable table rather than a closure per call: LuaJIT compiles
-- neither a closure's creation (FNEW) nor what follows it in a trace.
local Left = { __call = function(self) return left_ms(self.deadline) end }

-- cosocket error strings -> our codes
local function connect_code(err)
  if err == "timeout" then return "timeout" end
  if find(err, "resolve", 1, true) or find(err, "resolver", 1, true) then return "couldnt_resolve" end
  return "couldnt_connect"
end

--- Creates the transport function for one client.
-- @tparam table cfg `base_url`, `host`, `timeout`, `connect_timeout` (seconds) from auth0.new
-- @tparam[opt] table opts the user's options: `insecure_skip_verify`, `pool_size` (64),
--   `keepalive_timeout` (seconds idle in the pool, 60), `server_name` (the name sent as SNI
--   and checked against the certificate instead of the URL's host, e.g. when base_url
--   names an address), `pool` (the keep-alive pool's name; default derived from scheme, address,
--   port, server name and verification. Give locations with different lua_ssl_* settings
--   different pools: a pooled connection is not verified again)
-- @return function(request) -> response | nil, code, message
function _M.new(cfg, opts)
  -- misuse in luaL_argerror's form: these are argument #1 of auth0.new when it calls here
  -- (transport = "ngx"), else argument #2 of this function
  local caller = debug.getinfo(2, "S")
  local narg = caller and find(caller.source, "auth0[/\\]client%.lua$") and 1 or 2
  local function bad(msg) require("auth0.check").argerror("new", narg, msg) end
  if opts ~= nil and type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  opts = opts or {}
  require("auth0.check").pool_options(opts, bad)
  for _, k in ipairs { "server_name", "pool" } do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "" or find(opts[k], "[%c%s]")) then
      bad(k .. " must be a non-empty string without spaces")
    end
  end
  local verify = opts.insecure_skip_verify ~= true
  local pool_size = tonumber(opts.pool_size) or DEFAULT_POOL_SIZE
  local idle_ms = (tonumber(opts.keepalive_timeout) or DEFAULT_IDLE) * 1000
  local connect_ms = (tonumber(cfg.connect_timeout) or 5) * 1000
  local default_timeout = tonumber(cfg.timeout) or 10
  local sni = opts.server_name
  local pool_name = opts.pool
  local session -- last TLS session, offered on the next handshake

  -- url -> { scheme, host (resolved name), port, path, hostport, server_name, pool }: the same few
  -- endpoint URLs come back on every call; the cache is dropped whenever it reaches 256 entries.
  local parsed, nparsed = {}, 0
  local function target(url)
    local t = parsed[url]
    if t then return t end
    local scheme, host, port, path, hostport = parse_url(url)
    if not scheme then return nil end
    local server_name = sni or host
    if lower(host) == "localhost" then host = "127.0.0.1" end -- no /etc/hosts in nginx's resolver
    t = { scheme = scheme, host = host, port = port, path = path, hostport = hostport, server_name = server_name,
      ip_name = is_ip(server_name),
      pool = pool_name or "auth0:" .. scheme .. ":" .. host .. ":" .. port .. ":" .. server_name
        .. (verify and "" or ":insecure") }
    if find(url, "?", 1, true) then return t end   -- a query string is never kept
    if nparsed >= 256 then parsed, nparsed = {}, 0 end
    parsed[url], nparsed = t, nparsed + 1
    return t
  end

  local function attempt(req, t, deadline)
    local sock = tcp()
    local scheme, host, port, path, hostport, server_name, pool = t.scheme, t.host, t.port, t.path, t.hostport,
      t.server_name, t.pool
    local c = left_ms(deadline)
    if c > connect_ms then c = connect_ms end
    sock:settimeouts(c, left_ms(deadline), left_ms(deadline))
    local ok, err = sock:connect(host, port, { pool = pool, pool_size = pool_size })
    if not ok then
      return fail(connect_code(err), "could not connect to " .. hostport .. ": " .. tostring(err))
    end
    local reused = (sock:getreusedtimes() or 0) > 0
    if scheme == "https" and not reused then
      -- resty.core 0.1.25 raises "assertion failed!" when a handshake that completed at once
      -- fails verification (lua-resty-core#499): treat that raise as a TLS failure. Never
      -- pass `false` as the session: that path skips the verify result (lua-resty-core#532).
      local done, sess, herr = pcall(sock.sslhandshake, sock, session,
        (not t.ip_name) and server_name or nil, verify)
      if not done then sess, herr = nil, "certificate verification failed (details in the nginx error log)" end
      if not sess then
        sock:close()
        if herr == "timeout" then return fail("timeout", "TLS handshake with " .. hostport .. " timed out") end
        local msg = "TLS handshake with " .. hostport .. " failed: " .. tostring(herr)
        if verify and (find(tostring(herr), "verif", 1, true) or find(tostring(herr), "host mismatch", 1, true)) then
          msg = msg .. " (check lua_ssl_trusted_certificate, lua_ssl_verify_depth and the host name)"
        end
        return fail("tls", msg)
      end
      if type(sess) == "cdata" then session = sess end
    end

    local hdrs = { req.method or "GET", " ", path, " HTTP/1.1\r\nHost: ", hostport, "\r\n" }
    for name, value in pairs(req.headers or {}) do
      name, value = tostring(name), tostring(value)
      if value ~= "" and not OWN_HEADERS[lower(name)] then -- "" removes a header, as in libcurl
        if find(name, "[%c: ]") or find(value, "[\r\n%z]") then
          sock:close()
          return fail("transport", "invalid request header " .. name)
        end
        hdrs[#hdrs + 1] = name
        hdrs[#hdrs + 1] = ": "
        hdrs[#hdrs + 1] = value
        hdrs[#hdrs + 1] = "\r\n"
      end
    end
    local body = req.body
    if body or req.method == "POST" or req.method == "PUT" or req.method == "PATCH" then
      hdrs[#hdrs + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
    end
    hdrs[#hdrs + 1] = "\r\n"
    hdrs[#hdrs + 1] = body or ""
    sock:settimeouts(c, left_ms(deadline), left_ms(deadline))
    local sent
    sent, err = sock:send(hdrs)
    if not sent then
      sock:close()
      if err == "timeout" then return fail("timeout", "timed out sending the request to " .. hostport) end
      return nil, "network", "could not send the request to " .. hostport .. ": " .. tostring(err), reused
    end

    local resp, reusable_or_code, msg, nothing = read_response(sock, req.method,
      setmetatable({ deadline = deadline }, Left), true)
    if not resp then
      sock:close()
      return nil, reusable_or_code, msg, reused and nothing
    end
    if reusable_or_code then
      sock:setkeepalive(idle_ms, pool_size)
    else
      sock:close()
    end
    return resp
  end

  return function(req)
    local phase = get_phase()
    if not COSOCKET_PHASES[phase] then
      return fail("unavailable_phase", "cosockets are not available in the " .. tostring(phase) .. " phase")
    end
    local t = target(tostring(req.url))
    if not t then return fail("transport", "unsupported URL") end
    if t.scheme == "https" and verify and t.ip_name then
      -- SNI and nginx's host check (X509_check_host) take DNS names only: an IP address
      -- could not be checked against the certificate, so refuse rather than skip the check.
      return fail("tls", "cannot verify a certificate for the IP address " .. t.server_name
        .. " with cosockets; use a host name (e.g. localhost)")
    end
    update_time()
    local deadline = now() + (tonumber(req.timeout) or default_timeout)
    -- A pooled connection the server closed while idle fails before any answer: try the
    -- next one (or a fresh connection), as libcurl does.
    for _ = 1, 3 do
      local resp, code, msg, stale = attempt(req, t, deadline)
      if resp or not stale then return resp, code, msg end
    end
    return attempt(req, t, deadline)
  end
end

return _M
