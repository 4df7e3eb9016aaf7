-- busted output handler: busted's own terminal report, then one closing line
-- "N passed, N failed, N skipped" that CI reads (failed = failures + errors, including
-- errors in hooks and files). With A0_COUNTS set, the counts are also appended to that file
-- so spec/run.sh can add several passes up.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  busted.subscribe({ "exit" }, function()
    local passed, skipped = handler.successesCount or 0, handler.pendingsCount or 0
    local failed = (handler.failuresCount or 0) + (handler.errorsCount or 0)
    io.stdout:write("\n", string.format("%d passed, %d failed, %d skipped", passed, failed, skipped), "\n")
    local path = os.getenv("A0_COUNTS")
    if path then
      local f = io.open(path, "a")
      if f then f:write(passed, " ", failed, " ", skipped, "\n"); f:close() end
    end
    return nil, true
  end)
  return handler
end
