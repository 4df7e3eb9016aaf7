--- Terminal helpers of the `auth0` command: is this a terminal, colour, prompts without
-- echo, a spinner. Plain Lua 5.4 over the POSIX shell tools (`test -t`, `stty`), since the
-- command runs on the stock interpreter with no terminal library.
local _M = {}

local function sh_ok(cmd)
  local ok, _, code = os.execute(cmd)
  return ok == true or ok == 0 or code == 0
end

--- True when file descriptor `fd` (0, 1 or 2) is a terminal.
function _M.isatty(fd) return sh_ok("test -t " .. fd) end

--- An output context: `tty` (stdout is a terminal), `color` (and NO_COLOR is unset),
-- `interactive` (stdin is a terminal).
function _M.new(env)
  env = env or os.getenv
  local t = { interactive = _M.isatty(0), tty = _M.isatty(1), err_tty = _M.isatty(2) }
  local no_color = env("NO_COLOR")
  t.color = t.tty and (no_color == nil or no_color == "") and env("TERM") ~= "dumb"
  return setmetatable(t, { __index = _M })
end

local CODES = { bold = "1", dim = "2", red = "31", green = "32", yellow = "33", cyan = "36" }

--- `s` in a colour when colour is on.
function _M:paint(style, s)
  if not self.color then return s end
  return "\27[" .. CODES[style] .. "m" .. s .. "\27[0m"
end

--- Writes `...` to stderr: prompts, progress and errors never mix with stdout's data.
function _M.say(...)
  io.stderr:write(...)
  io.stderr:flush()
end

--- Reads one line from stdin (nil at the end of input), after printing `prompt` to stderr.
-- With `secret` on a terminal the answer is not echoed.
function _M:ask(prompt, secret)
  local hide = secret and self.interactive
  -- echo off before the prompt shows: what is typed as soon as it appears is never echoed
  if hide then os.execute("stty -echo 2>/dev/null") end
  if self.interactive then _M.say(prompt) end
  local ok, line = pcall(io.read, "l")
  if hide then
    os.execute("stty echo 2>/dev/null")
    _M.say("\n")
  end
  if not ok then error(line, 0) end   -- Ctrl-C while reading: the caller's interrupt path
  if line then line = line:gsub("^%s+", ""):gsub("%s+$", "") end
  return line
end

-- U+XXXX of a 3-byte UTF-8 sequence.
local function u3(a, b, c) return ("\\u%04x"):format((a:byte() - 224) * 4096 + (b:byte() - 128) * 64 + c:byte() - 128) end

--- `s` with every control character (C0, DEL, and C1 as UTF-8) shown as `\ddd`, and the
-- line separators, bidi controls and invisible characters (U+2028/U+2029, U+202A..U+202E,
-- U+2066..U+2069, U+200B..U+200F, U+2060..U+2064, U+061C, U+FEFF) as `\uXXXX`, the tag
-- characters U+E0000..U+E007F as `\UXXXXXXXX`: text from the server or the IdP (a user's
-- chosen name, an error description) must not drive the terminal nor reorder or hide what it
-- shows.
function _M.clean(s)
  s = tostring(s):gsub("[%c\127]", function(c) return ("\\%03d"):format(c:byte()) end)
  s = s:gsub("(\226)(\128)([\139-\143\168-\174])", u3):gsub("(\226)(\129)([\160-\164\166-\169])", u3)
  s = s:gsub("\216\156", "\\u061c"):gsub("\239\187\191", "\\ufeff")
  s = s:gsub("\243\160([\128\129])([\128-\191])", function(b, c)
    return ("\\U%08x"):format(0xE0000 + (b:byte() - 128) * 64 + c:byte() - 128)
  end)
  return (s:gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end))
end

local SPIN = { "|", "/", "-", "\\" }

--- One frame of a spinner line on stderr ("| waiting for approval 12 s"), terminals only.
function _M:spin(n, text)
  if not self.err_tty then return end
  _M.say("\r", SPIN[n % #SPIN + 1], " ", text, "\27[K")
end

--- Ends a spinner line.
function _M:spin_done()
  if self.err_tty then _M.say("\r\27[K") end
end

return _M
