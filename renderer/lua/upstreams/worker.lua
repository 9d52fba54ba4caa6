-- init_worker_by_lua: load the state file the sidecar writes beside the rendered files.
--
-- Run in every worker at start (also after a reload, which only starts workers once the new config
-- was accepted: that is why this is not init_by_lua, whose writes stay even when the reload fails).
-- One worker loads at a time (the store's lock); the generation check makes the others' load a no-op.

local store = require("upstreams.store")

local M = {}

local function read(path)
    local file, err = io.open(path, "rb")
    if not file then
        return nil, err
    end
    local text = file:read("*a")
    file:close()
    return text
end

local function load(path)
    local text, err = read(path)
    if not text then
        ngx.log(ngx.ERR, "upstreams: cannot read the state file: ", err, "; runtime state left as it is")
        return
    end
    local status, message = store.push(text, "state file " .. path)
    if status == 409 then
        return -- the dict already holds this generation or a newer one (a push, or another worker)
    end
    if status ~= 200 then
        ngx.log(ngx.ERR, "upstreams: state file not loaded: ", message, " Runtime state left as it is.")
        return
    end
    ngx.log(ngx.NOTICE, "upstreams: runtime state loaded from ", path, " (generation ",
        string.format("%d", store.generation()), ")")
end

function M.start(path)
    -- LuaJIT seeds its generator the same in every process: seed per worker for the random offsets.
    math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
    if not store.lock() then
        return -- another worker (or a push) is writing right now; what it writes is at least as new
    end
    local ok, err = pcall(load, path)
    store.unlock()
    if not ok then
        ngx.log(ngx.ERR, "upstreams: loading the state file failed: ", err)
    end
end

return M
