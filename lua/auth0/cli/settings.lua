--- Settings of the `auth0` command, in this order: command-line flags, then the environment
-- (`AUTH0_DOMAIN`, `AUTH0_BASE_URL`, `AUTH0_CLIENT_ID`, `AUTH0_CLIENT_SECRET`,
-- `AUTH0_CA_FILE`, `AUTH0_AUDIENCE`, `AUTH0_SCOPE`, `AUTH0_CONNECTION`), then the profile file
-- `$XDG_CONFIG_HOME/lua-auth0/<profile>.conf` (`key = value` lines, `#` comments; the keys
-- are the flag names: domain, base_url, client_id, client_secret_file, ca_file, audience,
-- scope, connection). A client secret is read from a file or the environment only: on the
-- command line it would show in `ps`. The credentials file is `--store-path`, else
-- `AUTH0_STORE_PATH` (absolute: a relative one is a usage error), else
-- `$XDG_STATE_HOME/lua-auth0/<profile>/credentials` (HOME's `.local/state` without it;
-- without either the command refuses rather than guess a folder).
local _M = {}

local KEYS = { "domain", "base_url", "client_id", "client_secret_file", "ca_file", "audience", "scope", "connection" }
_M.KEYS = KEYS

-- An absolute folder from the variable `name`: relative ones are invalid per the XDG spec, so
-- ignored (else the tokens land wherever the command runs).
local function absolute(env, name)
  local base = env(name)
  if base and base:sub(1, 1) == "/" then return base end
end

-- $name, else $HOME/<rel>; nil without either (never another user's home such as /root).
local function base_dir(env, name, rel)
  local base = absolute(env, name)
  if base then return base end
  local home = absolute(env, "HOME")
  return home and home .. rel
end

--- `$XDG_CONFIG_HOME/lua-auth0` (default ~/.config/lua-auth0); nil when HOME and
-- XDG_CONFIG_HOME are both unset (or relative).
function _M.config_dir(env)
  local base = base_dir(env, "XDG_CONFIG_HOME", "/.config")
  return base and base .. "/lua-auth0"
end

--- `$XDG_STATE_HOME/lua-auth0/<profile>` (default ~/.local/state/lua-auth0/<profile>); nil
-- when HOME and XDG_STATE_HOME are both unset (or relative).
function _M.state_dir(env, profile)
  local base = base_dir(env, "XDG_STATE_HOME", "/.local/state")
  return base and base .. "/lua-auth0/" .. profile
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
_M.read_file = read_file

-- A profile or secret file: whoever can change it can send our refresh token to their server
-- (base_url, ca_file), so one that another user owns or can write is refused.
-- Returns text | nil (no such file) | nil, message.
local function read_setting_file(path)
  local text, code, msg = require("auth0.core").store_read(path, "config")
  if text then return text end
  if code == "not_found" then return nil end
  return nil, msg
end
_M.read_setting_file = read_setting_file

--- Parses a profile file. Returns table | nil, message.
function _M.parse_profile(text, path)
  local t, n = {}, 0
  local known = {}
  for _, k in ipairs(KEYS) do known[k] = true end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
      if not k then return nil, ("%s:%d: expected key = value"):format(path, n) end
      if not known[k] then return nil, ("%s:%d: unknown key %q"):format(path, n, k) end
      t[k] = v
    end
  end
  return t
end

local ENV = {
  domain = "AUTH0_DOMAIN", base_url = "AUTH0_BASE_URL", client_id = "AUTH0_CLIENT_ID", ca_file = "AUTH0_CA_FILE",
  audience = "AUTH0_AUDIENCE", scope = "AUTH0_SCOPE", connection = "AUTH0_CONNECTION",
}

--- Resolves the settings. `args` are the parsed flags (underscored names), `env` a getenv.
-- Returns settings | nil, message (a usage error).
function _M.resolve(args, env)
  local profile = args.profile or env("AUTH0_PROFILE") or "default"
  if not profile:match("^[%w_.-]+$") or profile:match("^%.") then
    return nil, "profile names are letters, digits, '.', '_' and '-'"
  end
  local dir = _M.config_dir(env)
  if not dir and args.profile then
    return nil, "no profile " .. profile .. ": HOME and XDG_CONFIG_HOME are unset (set one of them)"
  end
  local path = dir and dir .. "/" .. profile .. ".conf"
  local file = {}
  local text, ferr
  if path then text, ferr = read_setting_file(path) end
  if ferr then return nil, "refusing the profile: " .. ferr end
  if text then
    local t, err = _M.parse_profile(text, path)
    if not t then return nil, err end
    file = t
  elseif args.profile then
    return nil, "no profile " .. profile .. " (" .. path .. ")"
  end
  local s = { profile = profile, profile_path = path }
  for _, k in ipairs(KEYS) do
    local v = args[k]
    if v == nil and ENV[k] then v = env(ENV[k]) end
    if v == nil or v == "" then v = file[k] end
    if v == "" then v = nil end
    s[k] = v
  end
  if s.client_secret_file then
    local secret, serr = read_setting_file(s.client_secret_file)
    if serr then return nil, "refusing the client secret file: " .. serr end
    if not secret then return nil, "cannot read the client secret file " .. s.client_secret_file end
    s.client_secret = secret:gsub("%s+$", "")
  else
    local secret = env("AUTH0_CLIENT_SECRET")
    if secret and secret ~= "" then s.client_secret = secret end
  end
  if s.ca_file then   -- whoever can add a CA to it can read our tokens on the wire
    local ca, cerr = read_setting_file(s.ca_file)
    if cerr then return nil, "refusing the CA file: " .. cerr end
    if not ca then return nil, "cannot read the CA file " .. s.ca_file end
  end
  s.state_dir = _M.state_dir(env, profile)
  if args.store_path == "" then   -- an empty flag is a mistake, not "the default" (an empty variable is unset)
    return nil, "--store-path must not be empty"
  end
  s.store_path = args.store_path or env("AUTH0_STORE_PATH")
  if s.store_path == "" then s.store_path = nil end
  if s.store_path and s.store_path:sub(1, 1) ~= "/" then   -- cron's working directory is not the user's
    return nil, (args.store_path and "--store-path" or "AUTH0_STORE_PATH") .. " must be an absolute path (got "
      .. s.store_path .. "): a relative one depends on the folder the command runs in"
  end
  if not s.store_path then
    if not s.state_dir then
      return nil, "no folder for the credentials: HOME and XDG_STATE_HOME are unset "
        .. "(set one of them, or give the file with --store-path or AUTH0_STORE_PATH)"
    end
    s.store_path = s.state_dir .. "/credentials"
  end
  return s
end

-- `s` quoted for the shell: a HOME (or XDG_CONFIG_HOME) may hold a quote.
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Writes a profile file (0600) with the given settings; used by `auth0 emulator`.
function _M.write_profile(env, profile, t)
  local dir = _M.config_dir(env)
  if not dir then return nil, "HOME and XDG_CONFIG_HOME are unset" end
  os.execute("mkdir -p " .. q(dir) .. " && chmod 0700 " .. q(dir))
  local lines = { "# written by `auth0 emulator`; removed when it stops" }
  for _, k in ipairs(KEYS) do
    if t[k] then lines[#lines + 1] = k .. " = " .. t[k] end
  end
  local path = dir .. "/" .. profile .. ".conf"
  local old = io.open(path, "rb")
  if old then old:close() end
  local f = io.open(path, "wb")
  if not f then return nil, "cannot write " .. path end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  os.execute("chmod 0600 " .. q(path))
  return path
end

return _M
