-- The cosocket transport's HTTP/1.1 reader (auth0.transport.http1) over a fake socket: what it
-- accepts, what it refuses, and that a hostile server can make it read only a bounded
-- number of bytes. spec/ngx_reader_spec.lua runs the same attacks inside a real nginx.
local http1 = require "auth0.transport.http1"
local fake = require "spec.support.fake_socket"

local MAX_BODY, MAX_HEADER = http1.MAX_BODY, http1.MAX_HEADER
local function left() return 1000 end

local function read(bytes, method, seed)
  local sock = fake.new(bytes, { seed = seed or 1 })
  local resp, a, b, c = http1.read_response(sock, method or "POST", left, true)
  return resp, a, b, c, sock
end

-- An endless source: `head` once, then `piece` for ever.
local function endless(head, piece)
  local sent = false
  return function()
    if not sent then sent = true; return head end
    return piece
  end
end

local OK = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

describe("the HTTP/1.1 reader", function()
  it("reads Content-Length, chunked, close-delimited and interim answers", function()
    for seed = 1, 4 do
      local r, reusable = read(OK .. "Content-Length: 2\r\n\r\n{}", "POST", seed)
      assert.same({ status = 200, body = "{}", headers = { ["content-type"] = "application/json",
        ["content-length"] = "2" } }, r)
      assert.is_true(reusable)
      r, reusable = read(OK .. "Transfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;ext=1\r\n\":1}\r\n0\r\n\r\n", "POST", seed)
      assert.equal('{"a":1}', r.body)
      assert.is_true(reusable)
      r, reusable = read(OK .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: a\r\nY: b\r\n\r\n", "POST", seed)
      assert.equal("{}", r.body)
      assert.is_true(reusable)
      r, reusable = read(OK .. "\r\n{\"close\":true}", "POST", seed)
      assert.equal('{"close":true}', r.body)
      assert.is_false(reusable)
      r = read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. OK .. "Content-Length: 0\r\n\r\n", "POST", seed)
      assert.equal(200, r.status)
      assert.equal("", r.body)
    end
  end)

  it("keeps a connection only when the answer says so", function()
    local _, reusable = read(OK .. "Connection: close\r\nContent-Length: 0\r\n\r\n")
    assert.is_false(reusable)
    _, reusable = read("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert.is_false(reusable)
    _, reusable = read("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert.is_true(reusable)
    local r
    r, reusable = read("HTTP/1.1 204 No Content\r\n\r\n")
    assert.equal("", r.body)
    assert.is_true(reusable)
    r = read(OK .. "Content-Length: 5\r\n\r\n", "HEAD")
    assert.equal("", r.body)
  end)

  it("accepts only strict chunk sizes", function()
    local function chunked(size_line)
      return OK .. "Transfer-Encoding: chunked\r\n\r\n" .. size_line .. "\r\n{}\r\n0\r\n\r\n"
    end
    assert.equal("{}", read(chunked("2")).body)
    assert.equal("{}", read(chunked("02")).body)
    assert.equal("{}", read(chunked("2 ;name=value")).body)
    for _, bad in ipairs { "0x2", "+2", "-2", " 2", "2 ", "2x", "", "000000002", "2\0", "g" } do
      local r, code, msg = read(chunked(bad))
      assert.is_nil(r, bad)
      assert.equal("bad_response", code, bad)
      assert.equal("malformed chunk size", msg, bad)
    end
    local r, code, msg = read(OK .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n")
    assert.is_nil(r)
    assert.same({ "bad_response", "malformed chunk" }, { code, msg })
  end)

  it("refuses Transfer-Encoding with Content-Length, and codings other than chunked", function()
    local r, code, msg = read(OK .. "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert.is_nil(r)
    assert.same({ "bad_response", "response has both Transfer-Encoding and Content-Length" }, { code, msg })
    r, code, msg = read(OK .. "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert.is_nil(r)
    assert.same({ "bad_response", "unsupported Transfer-Encoding" }, { code, msg })
    r, code, msg = read(OK .. "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert.is_nil(r)
    assert.same({ "bad_response", "malformed Content-Length" }, { code, msg })
  end)

  it("bounds every line a hostile server can send", function()
    local cases = {
      { "an endless status line", endless("HTTP/1.1 200 ", "x"), "bad_response",
        "response headers larger than 65536 bytes" },
      { "an endless header", endless(OK .. "X-A: ", ("a"):rep(4096)), "bad_response",
        "response headers larger than 65536 bytes" },
      { "endless interim answers", endless("", "HTTP/1.1 100 Continue\r\n\r\n"), "bad_response",
        "response headers larger than 65536 bytes" },
      { "an endless chunk-size line", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n", "0"),
        "bad_response", "malformed chunk size" },
      { "an endless chunk extension", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n2;", "a"),
        "bad_response", "malformed chunk size" },
      { "an endless trailer line", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n0\r\nX: ", ("t"):rep(4096)),
        "bad_response", "response trailers larger than the header cap" },
      { "endless trailers", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n0\r\n", "X-T: 1\r\n"),
        "bad_response", "response trailers larger than the header cap" },
      { "endless empty chunks' framing", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n", "1;x\r\n \r\n"),
        "bad_response", "chunk framing larger than the header cap" },
      { "an endless chunked body", endless(OK .. "Transfer-Encoding: chunked\r\n\r\n", "1000\r\n"
        .. ("b"):rep(4096) .. "\r\n"), "too_large", "response larger than 1048576 bytes" },
      { "an endless close-delimited body", endless(OK .. "\r\n", ("b"):rep(4096)), "too_large",
        "response larger than 1048576 bytes" },
    }
    for _, case in ipairs(cases) do
      local name, src, code, msg = case[1], case[2], case[3], case[4]
      local sock = fake.new(src, { seed = 3 })
      local r, c, m = http1.read_response(sock, "POST", left, true)
      assert.is_nil(r, name)
      assert.same({ code, msg }, { c, m }, name)
      -- what it pulled from the server: the caps, one read buffer and one source piece more
      assert.is_true(sock.consumed <= MAX_HEADER + MAX_BODY + 3 * 4096 + 64, name .. ": " .. sock.consumed)
    end
  end)

  it("reports an empty answer as nothing received, and cut answers as cut", function()
    local r, code, msg, nothing = read("")
    assert.is_nil(r)
    assert.same({ "bad_response", "the server sent nothing", true }, { code, msg, nothing })
    for bytes, want in pairs {
      ["HTTP/1.1 200 OK\r\nContent-"] = "the response ended inside its headers",
      [OK .. "Content-Length: 10\r\n\r\n{}"] = "the response body was cut short",
      [OK .. "Transfer-Encoding: chunked\r\n\r\n10\r\n{}"] = "the response body was cut short",
      [OK .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"] = "the chunked response body was cut short",
      [OK .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX: 1\r\n"] = "the chunked response ended in its trailers",
      ["garbage\r\n\r\n"] = "no HTTP status line",
      [OK .. " folded\r\n\r\n"] = "malformed response header",
    } do
      r, code, msg, nothing = read(bytes)
      assert.is_nil(r, bytes)
      assert.same({ "bad_response", want }, { code, msg }, bytes)
      assert.is_nil(nothing, bytes)
    end
  end)

  it("survives the fuzz corpus and 20,000 generated answers", function()
    local fuzz = dofile("csrc/fuzz/fuzz_http1.lua")
    local stats = fuzz.run { seed = 20261201, count = 20000, corpus = "csrc/fuzz/corpus/fuzz_http1" }
    assert.equal(20000 + stats.corpus, stats.runs)
    assert.is_true(stats.corpus >= 20, "corpus files: " .. stats.corpus)
    -- the generator must reach both outcomes, or it tests nothing
    assert.is_true(stats.ok > 1000, "answers read: " .. stats.ok)
    assert.is_true(stats.failed > 1000, "answers refused: " .. stats.failed)
  end)
end)
