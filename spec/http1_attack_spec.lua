-- The cosocket transport's HTTP/1.1 reader under attack (the hostile review): an answer
-- that has no body by definition (204, 304, or to a HEAD) but announces one leaves bytes on the
-- connection that the next request on the pooled connection would read as its own answer.
-- After a 204 or 304 announcing a body, the connection is not pooled.
local http1 = require "auth0.transport.http1"
local fake = require "spec.support.fake_socket"

local function left() return 1000 end
local PLANTED = "HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"access_token\":\"planted\"}"

local function read(bytes, method)
  return http1.read_response(fake.new(bytes), method or "POST", left, true)
end

describe("http1 reader attacked: bodiless answers that announce a body", function()
  it("does not pool after a 204 or 304 with a Content-Length or Transfer-Encoding", function()
    for _, head in ipairs({
      "HTTP/1.1 204 No Content\r\nContent-Length: " .. #PLANTED .. "\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: " .. #PLANTED .. "\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    }) do
      local r, reusable = read(head .. PLANTED)
      assert.equal("", r.body)
      assert.is_false(reusable, head)
    end
  end)

  it("still pools the well-formed ones", function()
    local _, reusable = read("HTTP/1.1 204 No Content\r\n\r\n")
    assert.is_true(reusable)
    _, reusable = read("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    assert.is_true(reusable)
    -- a HEAD answer announces the GET's length or framing, and sends no body
    _, reusable = read("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "HEAD")
    assert.is_true(reusable)
    _, reusable = read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD")
    assert.is_true(reusable)
  end)
end)
