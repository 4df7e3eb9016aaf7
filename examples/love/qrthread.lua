-- luacheck: globals love
--- The QR codes of the login screen, built on a `love.thread` (a Lua state of its own): a
-- code costs 0.1-0.4 ms of libqrencode, too much for a frame's budget, so main.lua only hands
-- the enrollment URI over and gets the matrix back a frame or two later.
-- In: (requests, answers, root) channels and the checkout folder. A request is the URI (a
-- string), or false to end; an answer is { uri, size, rows (the matrix's rows joined by "\n",
-- "1" dark), ms (CPU time it took) } or { uri, err }.
local requests, answers, root = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath
require "love.timer"
local qr = require "auth0.qr"
local cpu = require("auth0.core").thread_cpu

-- libqrencode's first codes build its tables (cold, 2-3x slower): once, now
for _ = 1, 3 do qr.encode("otpauth://totp/x:y?secret=" .. ("A"):rep(32) .. ("&issuer=x"):rep(10)) end

while true do
  local uri = requests:demand()
  if type(uri) ~= "string" then break end
  local c0 = cpu()
  local m, err = qr.encode(uri)
  if m then
    answers:push({ uri = uri, size = m.size, rows = table.concat(m:rows(), "\n"), ms = (cpu() - c0) * 1000 })
  else
    answers:push({ uri = uri, err = tostring(err) })
  end
end
