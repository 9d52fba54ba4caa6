-- The runtime peer state in the shared dict "upstreams", shared by every worker.
--
-- Keys: "generation" (number), "names" (the upstream names, one per line), "u:NAME" (that upstream's
-- peers as compact JSON). Balancers compare "generation" once per request and re-read an upstream's
-- peers only when it moved. Writers hold the "lock" key (dict:add is atomic across workers).

local cjson = require("cjson.safe")
local validate = require("upstreams.validate")

local M = {}
local LOCK_TTL = 5 -- seconds: a writer that died holding the lock cannot block the others for longer

local function dict()
    return ngx.shared.upstreams
end

function M.generation()
    return dict():get("generation")
end

function M.raw_peers(name)
    return dict():get("u:" .. name)
end

function M.lock()
    return dict():add("lock", true, LOCK_TTL)
end

function M.unlock()
    dict():delete("lock")
end

function M.names()
    local text = dict():get("names")
    local out = {}
    if text then
        for name in text:gmatch("[^\n]+") do
            out[#out + 1] = name
        end
    end
    return out
end

-- Compact JSON of a validated peer list. Built by hand: Debian's cjson writes an empty table as {}.
function M.encode_peers(peers)
    local parts = {}
    for i, p in ipairs(peers) do
        parts[i] = string.format('{"address":%s,"port":%d,"weight":%d,"backup":%s}',
            cjson.encode(p.address), p.port, p.weight, tostring(p.backup))
    end
    return "[" .. table.concat(parts, ",") .. "]"
end

function M.decode_peers(raw)
    return cjson.decode(raw)
end

-- Write every key or none: on "no memory" the keys already written get their old values back.
local function write_all(writes)
    local d, done = dict(), {}
    for key, value in pairs(writes) do
        local old = d:get(key)
        local ok, err = d:safe_set(key, value)
        if not ok then
            for k, v in pairs(done) do
                d:set(k, v or nil)
            end
            return nil, err
        end
        done[key] = old or false
    end
    return true
end

-- Apply a validated document (validate.document); the caller holds the lock and checked the generation.
function M.apply(doc)
    local d = dict()
    local before = M.names()
    local present, writes, changed = {}, {}, doc.full
    for _, name in ipairs(before) do
        present[name] = true
    end
    for name, peers in pairs(doc.upstreams) do
        writes["u:" .. name] = M.encode_peers(peers)
        changed = changed or not present[name]
    end
    local names = {}
    if doc.full then
        for name in pairs(doc.upstreams) do
            names[#names + 1] = name
        end
    else
        names = before
        for name in pairs(doc.upstreams) do
            if not present[name] then
                names[#names + 1] = name
            end
        end
    end
    if changed then
        table.sort(names)
        writes.names = table.concat(names, "\n")
    end
    local ok, err = write_all(writes)
    if not ok then
        return nil, "nginx's shared dict 'upstreams' has no room for this state (" .. tostring(err) .. ")."
    end
    if doc.full then
        for _, name in ipairs(before) do
            if not doc.upstreams[name] then
                d:delete("u:" .. name)
            end
        end
    end
    -- Last: balancers see the new generation only once every upstream is written.
    d:set("generation", doc.generation)
    return true
end

-- The whole state as the JSON document the endpoint's GET answers.
function M.document_text()
    local gen = M.generation() or 0
    local parts = {}
    for _, name in ipairs(M.names()) do
        local raw = M.raw_peers(name)
        if raw then
            parts[#parts + 1] = cjson.encode(name) .. ":" .. raw
        end
    end
    return string.format('{"generation":%d,"full":true,"upstreams":{%s}}', gen, table.concat(parts, ","))
end

-- Decode and validate JSON text; apply it when its generation is newer.
-- Returns the HTTP status, an error sentence (nil on success) and the generation to report.
function M.push(text, source)
    local doc = cjson.decode(text)
    if doc == nil then
        return 400, "The " .. source .. " is not JSON."
    end
    local valid, err = validate.document(doc)
    if not valid then
        return 400, err
    end
    local current = M.generation()
    if current ~= nil and valid.generation <= current then
        return 409, string.format("Generation %d is not newer than the current one, %d.", valid.generation,
            current), current
    end
    local ok, apply_err = M.apply(valid)
    if not ok then
        return 507, apply_err, current
    end
    return 200, nil, valid.generation
end

return M
