-- busted output handler: busted's own terminal report, then one closing line
-- "N passed, N failed, N skipped" that CI reads. With A0_COUNTS set, the counts are
-- also appended to that file so spec/run.sh can add several passes up.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local counts = { passed = 0, failed = 0, skipped = 0 }
  local function bump(kind) return function() counts[kind] = counts[kind] + 1; return nil, true end end
  busted.subscribe({ "test", "end" }, function(_, _, status)
    if status == "success" then counts.passed = counts.passed + 1
    elseif status == "pending" then counts.skipped = counts.skipped + 1
    else counts.failed = counts.failed + 1 end
    return nil, true
  end)
  busted.subscribe({ "error", "file" }, bump("failed"))
  busted.subscribe({ "error", "describe" }, bump("failed"))
  busted.subscribe({ "exit" }, function()
    local line = string.format("%d passed, %d failed, %d skipped", counts.passed, counts.failed, counts.skipped)
    io.stdout:write("\n", line, "\n")
    local path = os.getenv("A0_COUNTS")
    if path then
      local f = io.open(path, "a")
      if f then f:write(counts.passed, " ", counts.failed, " ", counts.skipped, "\n"); f:close() end
    end
    return nil, true
  end)
  return handler
end
