-- Validation of a peer document (push body and state file): pure functions, no nginx API.
-- Everything is checked before anything changes; the first problem found is returned as one sentence.

local M = {}

M.MAX_UPSTREAMS = 100000
M.MAX_PEERS = 10000
M.MAX_WEIGHT = 1000
M.MAX_GENERATION = 9007199254740991 -- 2^53 - 1: larger integers are not exact in a JSON number

local function is_integer(v, low, high)
    return type(v) == "number" and v == math.floor(v) and v >= low and v <= high
end

-- Dotted quad, each part 0..255 without leading zeros (some parsers read "010" as octal).
local function is_ipv4(s)
    local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #parts ~= 4 then
        return false
    end
    for _, part in ipairs(parts) do
        if #part > 3 or (#part > 1 and part:sub(1, 1) == "0") or tonumber(part) > 255 then
            return false
        end
    end
    return true
end
M.is_ipv4 = is_ipv4

-- An IPv6 literal without brackets or zone: hex groups of 1-4 digits, at most one "::", and
-- optionally a dotted quad as the last 32 bits.
local function is_ipv6(s)
    if #s < 2 or #s > 45 or s:find("[^%x:%.]") then
        return false
    end
    local groups = 0
    local body = s
    local quad = s:match(":(%d+%.%d+%.%d+%.%d+)$")
    if quad then
        if not is_ipv4(quad) then
            return false
        end
        body = s:sub(1, #s - #quad)
        if body:sub(-2) ~= "::" then
            body = body:sub(1, -2) -- drop the ":" before the quad, unless it ends a "::"
        end
        groups = 2
    elseif s:find("%.") then
        return false
    end
    local double = body:find("::", 1, true)
    if double and body:find("::", double + 1, true) then
        return false
    end
    if body:find(":::", 1, true) then
        return false
    end
    local head, tail = body, ""
    if double then
        head, tail = body:sub(1, double - 1), body:sub(double + 2)
    end
    for _, side in ipairs({ head, tail }) do
        if side ~= "" then
            for group in (side .. ":"):gmatch("(.-):") do
                if not group:match("^%x%x?%x?%x?$") then
                    return false
                end
                groups = groups + 1
            end
        end
    end
    if double then
        return groups <= 7
    end
    return groups == 8
end
M.is_ipv6 = is_ipv6

function M.is_name(name)
    return type(name) == "string" and #name >= 1 and #name <= 1024 and not name:find("[^A-Za-z0-9_.%-]")
end

-- An array decoded by cjson: a table whose keys are exactly 1..n.
local function array_length(t)
    local n = 0
    for k in pairs(t) do
        if type(k) ~= "number" then
            return nil
        end
        n = n + 1
    end
    if n ~= #t then
        return nil
    end
    return n
end

-- Whether a string is an address literal; ``known`` remembers the answers of one document (a few
-- hosts carry many peers, so each address is parsed once).
local function is_address(address, known)
    local answer = known[address]
    if answer == nil then
        answer = is_ipv4(address) or is_ipv6(address)
        known[address] = answer
    end
    return answer
end

local function where(i, name)
    return "peer " .. i .. " of upstream " .. name -- built only for an error
end

-- One peer, normalised to {address, port, weight, backup}; or nil and why not.
local function peer(p, i, name, known)
    if type(p) ~= "table" then
        return nil, where(i, name) .. " is not an object"
    end
    local address = p.address
    if type(address) ~= "string" or not is_address(address, known) then
        return nil, where(i, name) .. " has no IPv4 or IPv6 address (host names cannot be pushed)"
    end
    if not is_integer(p.port, 1, 65535) then
        return nil, where(i, name) .. " has no port from 1 to 65535"
    end
    local weight = p.weight
    if weight == nil then
        weight = 1
    elseif not is_integer(weight, 1, M.MAX_WEIGHT) then
        return nil, where(i, name) .. " has a weight that is not an integer from 1 to " .. M.MAX_WEIGHT
    end
    local backup = p.backup
    if backup == nil then
        backup = false
    elseif type(backup) ~= "boolean" then
        return nil, where(i, name) .. " has a backup flag that is not true or false"
    end
    return { address = address, port = p.port, weight = weight, backup = backup }
end

local function peers(list, name, known)
    if type(list) ~= "table" then
        return nil, "upstream " .. name .. " is not a list of peers"
    end
    local n = array_length(list)
    if n == nil then
        return nil, "upstream " .. name .. " is not a list of peers"
    end
    if n > M.MAX_PEERS then
        return nil, "upstream " .. name .. " has more than " .. M.MAX_PEERS .. " peers"
    end
    local out = {}
    for i = 1, n do
        local p, err = peer(list[i], i, name, known)
        if not p then
            return nil, err
        end
        out[i] = p
    end
    return out
end

-- The whole document: returns {generation, full, upstreams = {name = peers}, count} or nil, sentence.
function M.document(doc)
    if type(doc) ~= "table" then
        return nil, "The body is not a JSON object."
    end
    if not is_integer(doc.generation, 0, M.MAX_GENERATION) then
        return nil, "The generation is not a non-negative integer."
    end
    if type(doc.full) ~= "boolean" then
        return nil, "The full flag is not true or false."
    end
    if type(doc.upstreams) ~= "table" then
        return nil, "The upstreams are not an object of peer lists."
    end
    local out, count, known = {}, 0, {}
    for name, list in pairs(doc.upstreams) do
        if not M.is_name(name) then
            -- cjson gives a JSON array as integer keys: not names either.
            return nil, "An upstream name is not 1 to 1024 letters, digits, '_', '.' or '-'."
        end
        count = count + 1
        if count > M.MAX_UPSTREAMS then
            return nil, "There are more than " .. M.MAX_UPSTREAMS .. " upstreams."
        end
        local list_out, err = peers(list, name, known)
        if not list_out then
            return nil, err:sub(1, 1):upper() .. err:sub(2) .. "."
        end
        out[name] = list_out
    end
    return { generation = doc.generation, full = doc.full, upstreams = out, count = count }
end

return M
