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
    -- safe_add: a plain add would evict an upstream's peers to make room when the dict is full.
    return dict():safe_add("lock", true, LOCK_TTL)
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

-- Compact JSON of a validated peer list. Built by hand: Debian's cjson writes an empty table as {};
-- and a validated address holds only hex digits, '.' and ':', nothing to escape.
function M.encode_peers(peers)
    local parts = {}
    for i, p in ipairs(peers) do
        parts[i] = '{"address":"' .. p.address .. '","port":' .. p.port .. ',"weight":' .. p.weight
            .. ',"backup":' .. (p.backup and "true}" or "false}")
    end
    return "[" .. table.concat(parts, ",") .. "]"
end

function M.decode_peers(raw)
    return cjson.decode(raw)
end

-- Write every key or none. safe_set never evicts other keys to make room, but a failed safe_set has
-- already freed the key's old value: on "no memory" every key touched, that one too, gets its old
-- value back (deletes first, so the old values fit where they were).
local function write_all(writes)
    local d, done = dict(), {}
    for key, value in pairs(writes) do
        local old = d:get(key)
        if old == value then
            goto continue -- a re-sync mostly repeats what nginx holds
        end
        done[key] = old or false
        local ok, err = d:safe_set(key, value)
        if not ok then
            for k, old in pairs(done) do
                if not old then
                    d:delete(k)
                end
            end
            for k, old in pairs(done) do
                if old then
                    d:safe_set(k, old)
                end
            end
            return nil, err
        end
        ::continue::
    end
    return true
end

-- The "names" value after this document, or nil when membership does not change. A partial push of
-- known upstreams (the common case) never reads the list: membership is one key lookup each.
local function new_names(doc, d)
    local names = {}
    if doc.full then
        for name in pairs(doc.upstreams) do
            names[#names + 1] = name
        end
    else
        local added = false
        for name in pairs(doc.upstreams) do
            if d:get("u:" .. name) == nil then
                names[#names + 1], added = name, true
            end
        end
        if not added then
            return nil
        end
        for _, name in ipairs(M.names()) do
            names[#names + 1] = name
        end
    end
    table.sort(names)
    return table.concat(names, "\n")
end

-- Apply a validated document (validate.document); the caller holds the lock and checked the generation.
function M.apply(doc)
    local d = dict()
    local before = doc.full and M.names() or {}
    local writes = { names = new_names(doc, d) }
    for name, peers in pairs(doc.upstreams) do
        writes["u:" .. name] = M.encode_peers(peers)
    end
    local ok, err = write_all(writes)
    if not ok then
        return nil, "nginx's shared dict 'upstreams' has no room for this state (" .. tostring(err) .. ")."
    end
    for _, name in ipairs(before) do
        if not doc.upstreams[name] then
            d:delete("u:" .. name) -- a full push drops the upstreams it does not list
        end
    end
    -- Last: balancers re-read an upstream only when the generation moves, so it moves once every
    -- upstream is written (or deleted). An existing number key is overwritten in place.
    local ok_gen, gen_err = d:safe_set("generation", doc.generation)
    if not ok_gen then
        return nil, "nginx's shared dict 'upstreams' has no room for the generation (" .. tostring(gen_err) .. ")."
    end
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
