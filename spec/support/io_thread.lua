-- busted helper of the "iothread" pass (spec/run.sh): every client the specs create gets
-- `io_thread = true` unless the spec chose, so the whole suite also runs against the
-- engine whose libcurl work happens on an I/O thread.
local auth0 = require "auth0"
local new = auth0.new
auth0.new = function(opts)
  if type(opts) == "table" and opts.io_thread == nil then
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.io_thread = true
    opts = o
  end
  return new(opts)
end
