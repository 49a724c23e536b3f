-- verdict for HAProxy 2.6+: a Lua action of our own (no third-party library) that asks
-- verdict's auth-request dialect about the request with HAProxy's own HTTP client, and
-- tells haproxy.cfg what to do through variables.
--
--   global
--       lua-load haproxy/verdict.lua
--   frontend app
--       http-request lua.verdict 127.0.0.1:8080
--       (then act on var(txn.verdict_status): see haproxy.cfg)
--
-- Takes: the request as HAProxy received it. Sends verdict every client header (the
-- credential may be in any of them) except the hop-by-hop ones and the facts, which it
-- sets from HAProxy's own view: X-Original-URI (the request line's target),
-- X-Original-Method, X-Forwarded-Host (Host), X-Forwarded-Proto, X-Real-IP (the TCP
-- peer). Returns: txn.verdict_status 200, 401 (with txn.verdict_www_authenticate, and
-- txn.verdict_location when verdict sends a browser to the login page), 302 (with
-- txn.verdict_location), 403, or 503 when verdict cannot be asked or answers
-- anything else; on 200 the identity headers of verdict's answer replace the request's.
-- Must never: let a client's copy of a fact or of an identity header reach verdict or the
-- application, or turn a failure into a 200.

-- every identity header verdict may send (all four families); none of the client's
-- copies survive, and only verdict's answer sets them
local identity = {
    "x-authgear-session-valid", "x-authgear-user-id", "x-authgear-user-anonymous",
    "x-authgear-user-verified", "x-authgear-user-can-reauthenticate",
    "x-authgear-user-roles", "x-authgear-session-amr",
    "x-authgear-session-authenticated-at", "x-session-name",
    "remote-user", "remote-groups", "remote-email", "remote-name",
    "x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
}

-- never sent to verdict from the client: hop-by-hop headers, and every fact verdict reads
-- (set below from HAProxy's own view)
local not_forwarded = {
    ["host"] = true, ["content-length"] = true, ["transfer-encoding"] = true,
    ["connection"] = true, ["keep-alive"] = true, ["upgrade"] = true, ["te"] = true,
    ["trailer"] = true, ["proxy-connection"] = true, ["expect"] = true,
    ["x-original-uri"] = true, ["x-original-url"] = true, ["x-original-method"] = true,
    ["x-forwarded-host"] = true, ["x-forwarded-proto"] = true, ["x-forwarded-for"] = true,
    ["x-forwarded-uri"] = true, ["x-forwarded-method"] = true, ["x-real-ip"] = true,
    ["forwarded"] = true,
    -- certificate headers a certificate authorizer reads: never a client's
    ["x-forwarded-client-cert"] = true, ["x-ssl-client-cert"] = true,
    ["x-forwarded-tls-client-cert"] = true, ["x-client-cert"] = true,
}

-- how long verdict may take, in milliseconds
local timeout_ms = 2000

-- a header's values as HAProxy lists them (from index 0)
local function values(list)
    local out = {}
    local i = 0
    while list[i] ~= nil do
        out[#out + 1] = list[i]
        i = i + 1
    end
    return out
end

local function first(headers, name)
    local list = headers and headers[name]
    if list == nil then
        return nil
    end
    return list[0]
end

core.register_action("verdict", { "http-req" }, function(txn, server)
    local sent = {}
    for name, list in pairs(txn.http:req_get_headers()) do
        local lower = string.lower(name)
        if not not_forwarded[lower] then
            sent[lower] = values(list)
        end
    end
    -- the facts, from what HAProxy itself received
    sent["x-original-uri"] = { txn.sf:url() }
    sent["x-original-method"] = { txn.sf:method() }
    sent["x-forwarded-host"] = { txn.sf:req_fhdr("host") or "" }
    -- ssl_fc is a boolean fetch that Lua sees as true/false or 1/0 (0 is true in Lua)
    local tls = txn.sf:ssl_fc()
    sent["x-forwarded-proto"] = { (tls == true or tls == 1) and "https" or "http" }
    sent["x-real-ip"] = { txn.sf:src() }

    -- the client's identity headers never reach the application, whatever verdict says
    for _, name in ipairs(identity) do
        txn.http:req_del_header(name)
    end

    local client = core.httpclient()
    local ok, answer = pcall(function()
        return client:get{
            url = "http://" .. server .. "/_resolver/auth-request",
            headers = sent,
            timeout = timeout_ms,
        }
    end)
    local status = ok and answer and answer.status or 0
    if status == 200 then
        for _, name in ipairs(identity) do
            for _, value in ipairs(values(answer.headers[name] or {})) do
                txn.http:req_add_header(name, value)
            end
        end
        txn:set_var("txn.verdict_status", 200)
    elseif status == 401 then
        txn:set_var("txn.verdict_status", 401)
        txn:set_var("txn.verdict_www_authenticate",
            first(answer.headers, "www-authenticate") or "Bearer")
        -- a browser is sent to the login page (server.login_url): 401 + Location
        local location = first(answer.headers, "location")
        if location then
            txn:set_var("txn.verdict_location", location)
        end
    elseif status == 302 and first(answer.headers, "location") then
        txn:set_var("txn.verdict_status", 302)
        txn:set_var("txn.verdict_location", first(answer.headers, "location"))
    elseif status == 403 then
        txn:set_var("txn.verdict_status", 403)
    else
        -- verdict down, timed out or answering something else: refused
        txn:set_var("txn.verdict_status", 503)
    end
end, 1)
