-- The update endpoint (content_by_lua in the snippet's own server): POST and GET /upstreams/peers.
-- Every answer is JSON; errors are {"error": "one sentence"} (409 also carries the current generation).

local cjson = require("cjson.safe")
local store = require("upstreams.store")

local M = {}
local LOCK_WAIT = 2 -- seconds a push waits for another worker's push to finish

local function reply(status, message, generation)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    local fields = {}
    if message then
        fields[#fields + 1] = '"error":' .. cjson.encode(message)
    end
    if generation then
        -- %d: cjson writes integers above 10^14 in exponent form.
        fields[#fields + 1] = string.format('"generation":%d', generation)
    end
    ngx.say("{" .. table.concat(fields, ",") .. "}")
    return ngx.exit(status)
end

-- Another worker may be pushing (two requests at once): wait for its lock, briefly.
local function acquire()
    local waited = 0
    while not store.lock() do
        if waited >= LOCK_WAIT then
            return false
        end
        ngx.sleep(0.005)
        waited = waited + 0.005
    end
    return true
end

local function post()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body == nil then
        -- client_body_buffer_size equals client_max_body_size in the snippet: a body nginx wrote
        -- to a file instead of memory can only mean that cap was changed; refuse it as too large.
        if ngx.req.get_body_file() then
            return reply(413, "The body is larger than the endpoint's buffer.")
        end
        return reply(400, "The body is empty.")
    end
    if not acquire() then
        return reply(503, "Another push held the lock for too long; try again.")
    end
    local ok, status, message, generation = pcall(store.push, body, "body")
    store.unlock()
    if not ok then
        ngx.log(ngx.ERR, "upstreams: push failed: ", status)
        return reply(500, "The push failed inside nginx; see its error log.")
    end
    if status == 200 then
        ngx.log(ngx.INFO, "upstreams: peers of generation ", string.format("%d", generation), " applied")
    end
    return reply(status, message, generation)
end

function M.handle()
    local method = ngx.req.get_method()
    if method == "GET" then
        ngx.header["Content-Type"] = "application/json"
        ngx.say(store.document_text())
        return ngx.exit(200)
    end
    if method == "POST" then
        return post()
    end
    ngx.header["Allow"] = "GET, POST"
    return reply(405, "Only GET and POST are allowed here.")
end

return M
