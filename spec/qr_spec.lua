-- auth0.qr: QR code matrices, checked by decoding what they render with a real reader
-- (zbarimg) from images drawn from the matrix and from the terminal rendering.
local qr = require "auth0.qr"

local concat, format = table.concat, string.format

local LEVELS = { "L", "M", "Q", "H" }
-- 8-bit bytes that version 40 holds at each level (ISO/IEC 18004 table 7)
local CAPACITY = { L = 2953, M = 2331, Q = 1663, H = 1273 }

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

-- Runs cmd, returning success and its output (stderr too unless quiet: zbarimg's libraries
-- print D-Bus warnings there).
local function sh(cmd, quiet)
  local p = io.popen("{ " .. cmd .. (quiet and "; } 2>/dev/null" or "; } 2>&1") .. "; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", out
end

local HAVE_ZBAR = sh("command -v zbarimg")

---------------------------------------------------------------------------------------------
-- 50 otpauth URIs, deterministic, from the shortest a real one can be up to a level's capacity

local seed = 12345
local function rand(n)   -- 1..n, the same sequence under Lua 5.4 and LuaJIT
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end

local B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
local LABEL = "abcdefghijklmnopqrstuvwxyz0123456789.-_ABCDEFGHIJKLMNOPQRSTUVWXYZ"

local function pick(alphabet, n)
  local t = {}
  for i = 1, n do local k = rand(#alphabet); t[i] = alphabet:sub(k, k) end
  return concat(t)
end

-- An otpauth URI of exactly `len` bytes (len >= 60): issuer, account label, secret, options;
-- the parts vary with i, short URIs falling back to the smallest ones.
local function otpauth(len, i)
  local issuer = ({ "Acme", "Example%20Games", "x", "Big%20Co%2C%20Inc." })[i % 4 + 1]
  local secret = pick(B32, ({ 16, 26, 32, 52 })[i % 4 + 1])
  local kind = i % 5 == 0 and "hotp" or "totp"
  local options = kind == "hotp" and "&counter=" .. i or (i % 3 == 0 and "&algorithm=SHA256&digits=8&period=60" or "")
  local function room()
    return len - #("otpauth://" .. kind .. "/" .. issuer .. ":") - #("?secret=" .. secret .. "&issuer=" .. issuer ..
      options) - 3   -- "%40" between user and domain
  end
  if room() < 2 then kind, issuer, secret, options = "totp", "x", secret:sub(1, 16), "" end
  local r = room()
  assert(r >= 2, "URI too short for its parts")
  local user = pick(LABEL, math.ceil(r / 2))
  local uri = "otpauth://" .. kind .. "/" .. issuer .. ":" .. user .. "%40" .. pick(LABEL, r - #user) ..
    "?secret=" .. secret .. "&issuer=" .. issuer .. options
  assert(#uri == len)
  return uri
end

-- 50 lengths from 60 bytes to `cap`, closer together at the small end where versions are
-- a few bytes apart.
local function lengths(cap)
  local t = {}
  for i = 0, 49 do t[#t + 1] = math.floor(60 * (cap / 60) ^ (i / 49) + 0.5) end
  t[50] = cap
  return t
end

---------------------------------------------------------------------------------------------
-- Images

local QUIET = 4

-- A PBM (P1: "1" is black) of a grid of rows of "1"/"0", as given.
local function pbm(rows)
  return format("P1\n%d %d\n%s\n", #rows[1], #rows, concat(rows, "\n"))
end

-- The matrix through get() (not rows(), which is checked against get() separately), with a
-- quiet zone of 4 light modules.
local function matrix_rows(m)
  local out, blank = {}, ("0"):rep(m.size + 2 * QUIET)
  for _ = 1, QUIET do out[#out + 1] = blank end
  for y = 1, m.size do
    local r = {}
    for x = 1, m.size do r[x] = m:get(x, y) and "1" or "0" end
    out[#out + 1] = ("0"):rep(QUIET) .. concat(r) .. ("0"):rep(QUIET)
  end
  for _ = 1, QUIET do out[#out + 1] = blank end
  return out
end

local UTF8_CHAR = "[%z\1-\127\194-\244][\128-\191]*"
local GLYPH = { [" "] = { 0, 0 }, ["\226\150\128"] = { 1, 0 }, ["\226\150\132"] = { 0, 1 },
  ["\226\150\136"] = { 1, 1 } }

-- Reads a terminal rendering back into rows of "1" (dark) / "0" (light), character by
-- character, as a camera would see it on a light (or, inverted, a dark) background.
local function parse_terminal(text, invert, ascii)
  local out = {}
  local ink, blank = invert and "0" or "1", invert and "1" or "0"
  for line in text:gmatch("([^\n]*)\n") do
    if ascii then
      local r = {}
      for pair in line:gmatch("..") do
        assert(pair == "##" or pair == "  ", "unexpected ASCII cell " .. ("%q"):format(pair))
        r[#r + 1] = pair == "##" and ink or blank
      end
      out[#out + 1] = concat(r)
    else
      local top, bottom = {}, {}
      for ch in line:gmatch(UTF8_CHAR) do
        local g = assert(GLYPH[ch], "unexpected character " .. ("%q"):format(ch))
        top[#top + 1] = g[1] == 1 and ink or blank
        bottom[#bottom + 1] = g[2] == 1 and ink or blank
      end
      out[#out + 1] = concat(top)
      out[#out + 1] = concat(bottom)
    end
  end
  return out
end

-- Decodes every grid with one `convert` (PBM -> PNG, 3 pixels a module) and `zbarimg --raw -q` over all
-- the images; when a reader line is missing, zbarimg runs again image by image to tell which.
-- Returns the decoded texts, nil for an image zbarimg found no code in.
local function decode_all(grids)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local inputs, pngs = {}, {}
  for i, rows in ipairs(grids) do
    local f = assert(io.open(format("%s/%03d.pbm", dir, i), "wb"))
    f:write(pbm(rows))
    f:close()
    inputs[i] = format("%s/%03d.pbm", dir, i)
    pngs[i] = format("%s/out-%03d.png", dir, i - 1)
  end
  local ok, out = sh(format("convert %s -scale 300%% +adjoin %s/out-%%03d.png", concat(inputs, " "), dir))
  assert(ok, out)
  local results = {}
  local _, text = sh(format("zbarimg --raw -q %s", concat(pngs, " ")), true)
  local lines = {}
  for l in text:gsub("rc=%d+%s*$", ""):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  if #lines == #grids then   -- one symbol per image, in order
    results = lines
  else
    for i, png in ipairs(pngs) do
      local one_ok, one = sh("zbarimg --raw -q " .. png, true)
      results[i] = one_ok and one:gsub("\nrc=0%s*$", "") or nil
    end
  end
  os.execute("rm -rf " .. dir)
  return results
end

---------------------------------------------------------------------------------------------

describe("auth0.qr", function()
  local URI = "otpauth://totp/Acme:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Acme"

  it("builds the smallest version at level M by default", function()
    local m = assert(qr.encode(URI))   -- 75 bytes
    assert.equal(37, m.size)           -- version 5: version 4 holds 62 bytes at M, 5 holds 84
    assert.equal(m.size, qr.encode(URI, { level = "M" }).size)
    assert.equal(33, qr.encode(URI, { level = "L" }).size)   -- version 4 holds 78 bytes at L
    -- 74 bytes at Q in 8-bit mode only: the upper-case secret goes in alphanumeric mode
    assert.equal(41, qr.encode(URI, { level = "Q" }).size)
    assert.equal(49, qr.encode(URI, { level = "H" }).size)   -- version 7 holds 64, 8 holds 84
    assert.equal("auth0.QR (37x37)", tostring(m))
    assert.equal(qr.QR, getmetatable(require("auth0.qr")(URI)))
  end)

  it("picks the smallest version: 8-bit capacities of versions 1 to 10 exactly", function()
    -- ISO/IEC 18004 table 7, byte mode
    local caps = {
      L = { 17, 32, 53, 78, 106, 134, 154, 192, 230, 271 },
      M = { 14, 26, 42, 62, 84, 106, 122, 152, 180, 213 },
      Q = { 11, 20, 32, 46, 60, 74, 86, 108, 130, 151 },
      H = { 7, 14, 24, 34, 44, 58, 64, 84, 98, 119 },
    }
    for level, t in pairs(caps) do
      for v, cap in ipairs(t) do
        -- lower-case letters only exist in 8-bit mode
        assert.equal(17 + 4 * v, qr.encode(("q"):rep(cap), { level = level }).size, level .. v)
        assert.equal(21 + 4 * v, qr.encode(("q"):rep(cap + 1), { level = level }).size, level .. v .. "+1")
      end
    end
  end)

  it("puts (1, 1) at the top left: finder patterns there, top right and bottom left", function()
    local m = assert(qr.encode(URI))
    local n = m.size
    -- a finder pattern: a dark 7x7 ring, a light ring, a dark 3x3 centre, a light separator
    local function finder(x0, y0)
      for dy = 0, 6 do
        for dx = 0, 6 do
          local ring = dx == 0 or dx == 6 or dy == 0 or dy == 6
          local centre = dx >= 2 and dx <= 4 and dy >= 2 and dy <= 4
          assert.equal(ring or centre, m:get(x0 + dx, y0 + dy), format("module %d,%d", x0 + dx, y0 + dy))
        end
      end
    end
    finder(1, 1)
    finder(n - 6, 1)
    finder(1, n - 6)
    assert.is_false(m:get(8, 8))
    assert.is_false(m:get(n - 7, 8))
    -- the always-dark module sits beside the bottom-left finder, at column 9, row size - 7
    assert.is_true(m:get(9, n - 7))
    -- timing patterns: row 7 and column 7 alternate, dark on odd coordinates
    for i = 9, n - 8 do
      assert.equal(i % 2 == 1, m:get(i, 7))
      assert.equal(i % 2 == 1, m:get(7, i))
    end
  end)

  it("rows() are strings of \"1\"/\"0\" that agree with get()", function()
    for _, level in ipairs(LEVELS) do
      local m = assert(qr.encode(URI .. level, { level = level }))
      local rows = m:rows()
      assert.equal(m.size, #rows)
      for y = 1, m.size do
        assert.equal(m.size, #rows[y])
        assert.truthy(rows[y]:match("^[01]+$"))
        for x = 1, m.size do assert.equal(m:get(x, y), rows[y]:sub(x, x) == "1") end
      end
    end
  end)

  it("returns nil, too_large past version 40 at every level, and fits exactly the capacity", function()
    for _, level in ipairs(LEVELS) do
      local cap = CAPACITY[level]
      local m = assert(qr.encode(("a"):rep(cap), { level = level }))
      assert.equal(177, m.size)
      local none, err = qr.encode(("a"):rep(cap + 1), { level = level })
      assert.is_nil(none)
      assert.is_true(require("auth0.error").is(err))
      assert.equal("too_large", err.code)
      assert.equal(format("qr: too_large: %d bytes do not fit in a QR code at level %s", cap + 1, level),
        tostring(err))
    end
    -- 7089 digits fit at L (numeric mode), 7090 never do, and a huge text is refused at once
    assert.equal(177, assert(qr.encode(("7"):rep(7089), { level = "L" })).size)
    assert.equal("too_large", select(2, qr.encode(("7"):rep(7090), { level = "L" })).code)
    assert.equal("too_large", select(2, qr.encode(("a"):rep(10 * 1024 * 1024))).code)
  end)

  it("raises in argerror form on misuse", function()
    assert.matches("bad argument #1 to 'qr' %(string expected, got nil%)", error_of(qr.encode))
    assert.matches("bad argument #1 to 'qr' %(string expected, got number%)", error_of(qr.encode, 42))
    assert.matches("bad argument #1 to 'qr' %(must not be empty%)", error_of(qr.encode, ""))
    assert.matches("bad argument #1 to 'qr' %(contains a NUL byte%)", error_of(qr.encode, "a\0b"))
    assert.matches("bad argument #2 to 'qr' %(table expected, got string%)", error_of(qr.encode, URI, "H"))
    assert.matches("bad argument #2 to 'qr' %(unknown option 'version'%)", error_of(qr.encode, URI, { version = 3 }))
    for _, bad in ipairs { "m", "", "LL", "X" } do
      assert.matches(format("bad argument #2 to 'qr' %%(level must be \"L\", \"M\", \"Q\" or \"H\", got %q%%)", bad),
        error_of(qr.encode, URI, { level = bad }))
    end
    for _, bad in ipairs { 0 / 0, 1, true, {} } do
      assert.matches("bad argument #2 to 'qr' %(level must be \"L\", \"M\", \"Q\" or \"H\", got " .. type(bad) .. "%)",
        error_of(qr.encode, URI, { level = bad }))
    end
    -- the error points at the caller's line
    assert.matches("^spec/qr_spec%.lua:%d+: bad argument", error_of(function() qr.encode(1) end))
    assert.matches("^spec/qr_spec%.lua:%d+: bad argument", error_of(function() qr(URI, { level = "h" }) end))
    -- the C function checks too (LuaJIT names it '?' under pcall)
    assert.matches("bad argument #2 to '[^']*' %(invalid option 'm'%)", error_of(require("auth0.core").qr, URI, "m"))
  end)

  it("get() raises on coordinates that are not integers in 1..size, NaN included", function()
    local m = assert(qr.encode(URI))
    assert.equal(37, m.size)
    for _, bad in ipairs { 0, 38, -1, 1.5, 0 / 0, 1 / 0, -1 / 0 } do
      local shown = bad ~= bad and "nan" or tostring(bad)
      assert.matches("bad argument #1 to 'get' %(must be an integer from 1 to 37, got " .. shown:gsub("%p", "%%%0") .. "%)",
        error_of(m.get, m, bad, 1))
      assert.matches("bad argument #2 to 'get' %(must be an integer from 1 to 37, got " .. shown:gsub("%p", "%%%0") .. "%)",
        error_of(m.get, m, 1, bad))
    end
    assert.matches("^spec/qr_spec%.lua:%d+: bad argument #1 to 'get' %(number expected, got string%)",
      error_of(function() m:get("1", 1) end))
    assert.matches("calling 'get' on bad self", error_of(m.get, {}, 1, 1))
    assert.matches("calling 'rows' on bad self", error_of(m.rows, nil))
    assert.matches("calling 'terminal' on bad self", error_of(m.terminal, "x"))
  end)

  it("terminal() raises on unknown options and odd values, NaN included", function()
    local m = assert(qr.encode(URI))
    local function terr(opts) return error_of(m.terminal, m, opts) end
    assert.matches("bad argument #1 to 'terminal' %(table expected, got boolean%)", terr(true))
    assert.matches("bad argument #1 to 'terminal' %(unknown option 'colour'%)", terr { colour = true })
    assert.matches("bad argument #1 to 'terminal' %(invert must be a boolean, got string%)", terr { invert = "yes" })
    assert.matches("bad argument #1 to 'terminal' %(ascii must be a boolean, got number%)", terr { ascii = 1 })
    assert.matches("bad argument #1 to 'terminal' %(quiet must be a number, got string%)", terr { quiet = "4" })
    for _, bad in ipairs { 0 / 0, 1 / 0, -1, 17, 2.5 } do
      local shown = (bad ~= bad and "nan" or tostring(bad)):gsub("%p", "%%%0")
      assert.matches("bad argument #1 to 'terminal' %(quiet must be an integer from 0 to 16, got " .. shown .. "%)",
        terr { quiet = bad })
    end
  end)

  it("terminal() draws two rows per line in half blocks inside a quiet zone of 4", function()
    local m = assert(qr.encode(URI))
    local text = m:terminal()
    local lines = {}
    for l in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    assert.equal(math.floor((m.size + 9) / 2), #lines)
    assert.equal(text, concat(lines, "\n") .. "\n")
    -- parsed back, the grid is the matrix with 4 light modules around it (and a light half
    -- row completing the odd last line)
    local grid = parse_terminal(text, false, false)
    local want = matrix_rows(m)
    want[#want + 1] = ("0"):rep(m.size + 8)
    assert.same(want, grid)
    assert.same(want, parse_terminal(m:terminal { invert = true }, true, false))
    assert.same(matrix_rows(m), parse_terminal(m:terminal { ascii = true }, false, true))
    assert.same(matrix_rows(m), parse_terminal(m:terminal { ascii = true, invert = true }, true, true))
    -- quiet = 0: just the matrix
    assert.same(m:rows(), parse_terminal(m:terminal { ascii = true, quiet = 0 }, false, true))
    assert.equal("##", m:terminal { ascii = true, quiet = 0 }:sub(1, 2))
    assert.equal("  ", m:terminal { ascii = true, quiet = 0, invert = true }:sub(1, 2))
  end)
end)

describe("auth0.qr decoded by zbarimg", function()
  if not HAVE_ZBAR then
    it("needs zbarimg", function() pending("zbarimg not installed (Debian zbar-tools; make deps installs it)") end)
    return
  end

  local cases, grids = {}, {}
  local sizes = {}
  for _, level in ipairs(LEVELS) do
    sizes[level] = {}
    for i, len in ipairs(lengths(CAPACITY[level])) do
      local uri = otpauth(len, i)
      local m, err = qr.encode(uri, { level = level })
      assert(m, err)
      sizes[level][m.size] = true
      cases[#cases + 1] = { what = format("level %s, %d bytes, %dx%d", level, len, m.size, m.size), want = uri,
        level = level }
      grids[#grids + 1] = matrix_rows(m)
    end
  end
  -- the terminal renderings: 50 URIs, each style at each level
  local STYLES = { {}, { invert = true }, { ascii = true }, { ascii = true, invert = true } }
  local tcases = {}
  for i, len in ipairs(lengths(1200)) do
    local level, style = LEVELS[i % 4 + 1], STYLES[math.floor(i / 4) % 4 + 1]
    local uri = otpauth(len, i + 100)
    local m = assert(qr.encode(uri, { level = level }))
    tcases[#tcases + 1] = { what = format("terminal %s at level %s, %d bytes", style.ascii and "ascii" or "half blocks",
      level, len) .. (style.invert and ", inverted" or ""), want = uri, style = style }
    grids[#grids + 1] = parse_terminal(m:terminal(style), style.invert, style.ascii)
  end

  local decoded
  local function results()
    decoded = decoded or decode_all(grids)
    return decoded
  end

  for _, level in ipairs(LEVELS) do
    it("decodes 50 otpauth URIs of 60 to " .. CAPACITY[level] .. " bytes at level " .. level, function()
      local got = results()
      local n = 0
      for i, c in ipairs(cases) do
        if c.level == level then
          assert.equal(c.want, got[i], c.what)
          n = n + 1
        end
      end
      assert.equal(50, n)
      -- every length class: from a version 4-6 code up to version 40
      local count, smallest = 0, 177
      for s in pairs(sizes[level]) do count, smallest = count + 1, math.min(smallest, s) end
      assert.is_true(sizes[level][177])
      assert.is_true(smallest <= 41, "smallest " .. smallest)
      assert.is_true(count >= 25, count .. " sizes")
    end)
  end

  it("decodes the terminal rendering of 50 URIs (half blocks and ASCII, plain and inverted)", function()
    local got = results()
    for j, c in ipairs(tcases) do assert.equal(c.want, got[#cases + j], c.what) end
    assert.equal(50, #tcases)
  end)
end)
