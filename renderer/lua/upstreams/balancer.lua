-- balancer_by_lua: choose the peer of a hooked upstream from the runtime state.
--
-- Per worker, each upstream's decoded peers are cached and re-read only when the shared generation
-- moved (one dict read per request). Smooth weighted round robin, as nginx's own, over the primaries;
-- backups only when there is no primary or every primary failed this request. An upstream that is not
-- in runtime state gets no peer set, so nginx's round robin over the file's `server` lines applies.

local ngx_balancer = require("ngx.balancer")
local store = require("upstreams.store")

local M = {}
-- nginx's NGX_BUSY: the upstream module's "no live upstreams", which answers 502. A status code given
-- to ngx.exit here would become 500 (Debian's nginx lacks OpenResty's balancer status patch).
local NO_LIVE = -3
local cache = {} -- name -> {raw, epoch, primaries, backups, count}
local seen_generation, epoch = nil, 0

-- Each worker starts at a random point: with every worker starting at the first peer after each
-- change, the first requests of all workers would go to the same peer.
local function group(peers, backup)
    local out = {}
    for _, p in ipairs(peers) do
        if p.backup == backup then
            local host = p.address:find(":", 1, true) and ("[" .. p.address .. "]") or p.address
            out[#out + 1] = { host = host, port = p.port, weight = p.weight, current = math.random() * p.weight }
        end
    end
    return out
end

local function build(raw)
    local peers = store.decode_peers(raw)
    if type(peers) ~= "table" then
        return nil
    end
    return { raw = raw, epoch = epoch, primaries = group(peers, false), backups = group(peers, true),
        count = #peers }
end

-- The upstream's cached entry, or nil when it is not in runtime state.
local function entry(name)
    local generation = store.generation()
    if generation ~= seen_generation then
        seen_generation, epoch = generation, epoch + 1
    end
    local e = cache[name]
    if e and e.epoch == epoch then
        return e
    end
    local raw = store.raw_peers(name)
    if raw == nil then
        cache[name] = nil
        return nil
    end
    if e and e.raw == raw then
        e.epoch = epoch -- unchanged by this generation: keep its round robin position
        return e
    end
    e = build(raw)
    cache[name] = e
    return e
end

-- nginx's smooth weighted round robin over the peers not tried yet in this request.
local function pick(peers, tried)
    local best, total = nil, 0
    for _, p in ipairs(peers) do
        if not tried[p] then
            p.current = p.current + p.weight
            total = total + p.weight
            if best == nil or p.current > best.current then
                best = p
            end
        end
    end
    if best then
        best.current = best.current - total
    end
    return best
end

function M.balance(name)
    local e = entry(name)
    if e == nil then
        return -- not in runtime state: nginx's round robin over the file's servers
    end
    if e.count == 0 then
        return ngx.exit(NO_LIVE) -- no instance: 502 at once, as the file's `server ... down` does
    end
    local ctx = ngx.ctx
    if ctx.upstreams_entry == nil and e.count > 1 then
        ngx_balancer.set_more_tries(e.count - 1) -- first try of this request: one try per peer
    end
    local tried = ctx.upstreams_tried
    if tried == nil or ctx.upstreams_entry ~= e then
        -- First try, or the peers changed between two tries (the old peer objects are gone).
        tried = {}
        ctx.upstreams_tried, ctx.upstreams_entry = tried, e
    end
    local p = pick(e.primaries, tried) or pick(e.backups, tried)
    if p == nil then
        return ngx.exit(NO_LIVE) -- every peer failed this request: 502
    end
    tried[p] = true
    local ok, err = ngx_balancer.set_current_peer(p.host, p.port)
    if not ok then
        ngx.log(ngx.ERR, "upstreams: cannot set peer ", p.host, ":", p.port, " of ", name, ": ", err)
        return ngx.exit(500)
    end
end

return M
