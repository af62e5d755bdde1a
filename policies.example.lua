-- policies.example.lua - the reference policy hostflow runs by default.
--
-- hostflow asks this file two questions for every new payment session:
--
--   check_tenant(ctx)            may this tenant create a session now?
--   check_return_url(url, ctx)   may the contractor be sent back to url?
--
-- and one when a tenant registers a webhook endpoint:
--
--   check_webhook_url(url, ctx)  may hostflow send this tenant's events to url?
--
-- Each answers `true` to allow, or `false, code, message` to refuse
-- (check_tenant may add an HTTP status from 400 to 499 as a fourth value).
-- Anything else - an error, a non-boolean answer, running out of the
-- instruction or memory budget - refuses the request with 500 policy_error.
-- The policy fails closed: when in doubt, hostflow says no.
--
-- What the arguments hold:
--
--   url   the return_url as hostflow's own strict parser read it:
--         url.raw, url.scheme, url.host (both lower-case), url.port (the
--         explicit port, else 443 for https / 80 for http), url.path and
--         url.query (nil without '?'). The core has already refused URLs
--         with user:pass@, fragments, control characters, backslashes,
--         non-ASCII bytes or over 2048 bytes, before any policy runs.
--   ctx   ctx.tenant.id, .name, .mode ("live" or "test", from the API key),
--         .redirect_hosts (the tenant's hosted_flow_allowed_redirect_hosts,
--         lower-case), .settings; ctx.contractor.id; ctx.request.method,
--         .path, .remote_addr; ctx.now (Unix seconds); ctx.rate.limited
--         and ctx.rate.retry_after (the core's rate limits, see below).
--
-- The sandbox offers string (without dump), table, math, utf8, os.time,
-- os.clock, require (modules of the policy directory only: require("x")
-- loads policies/x.lua) and a read-only `hostflow` table:
-- hostflow.log(message), hostflow.parse_url(s) (the core parser; returns
-- a url table or nil, why) and hostflow.is_internal_host(host) (true for
-- loopback, private, link-local and other non-public address literals and
-- for localhost names). Each call may run 1,000,000 Lua instructions
-- (pattern matching counts too) in at most 16 MiB; past that the request
-- fails closed. Globals assigned while answering a request are forgotten
-- after it; keep deliberate state in locals of this file.
--
-- Reloading: save this file (or any file in policies/) and hostflow
-- compiles the new version, runs the `examples` below against it, and only
-- then switches every worker to it. Also on SIGHUP, `hostflow policy
-- reload`, or POST /admin/v1/policy/reload. If anything fails, the running
-- version keeps serving and the error (file:line) is logged and shown by
-- GET /admin/v1/policy. `hostflow policy check` runs the same checks
-- offline.
--
-- Per-tenant overrides: policies/tenants/<tenant id>.lua returns a table
-- of functions that replace these for that tenant alone. It receives this
-- shared policy as its argument, so it can defer to it:
--
--   -- policies/tenants/tn_AbCdEf.lua: also allow the tenant's staging host
--   local shared = ...
--   return {
--     check_return_url = function(url, ctx)
--       if url.scheme == "https" and url.host == "staging.acme.test" then
--         return true
--       end
--       return shared.check_return_url(url, ctx)
--     end,
--     examples = {
--       { url = "https://staging.acme.test/done", allow = true },
--     },
--   }

local allowlist = require("allowlist") -- policies/allowlist.lua

local policy = {}

-- The reference rule: https only, and the host must equal one entry of the
-- tenant's allowlist (exactly: no wildcards, no suffix matching). A tenant
-- with an empty allowlist cannot redirect anywhere until an operator adds
-- a host (hostflow tenant set-redirect-hosts).
function policy.check_return_url(url, ctx)
  local ok, why = allowlist.https_host_allowed(url, ctx.tenant.redirect_hosts)
  if not ok then
    return false, "invalid_return_url", why
  end
  return true
end

-- May this tenant create a session now? ctx.rate says whether the core's
-- rate limits (per API key and per client address, set with
-- --rate-create-key / --rate-create-ip) are exceeded; this policy enforces
-- them. To exempt a tenant, or to pause one, decide otherwise here.
function policy.check_tenant(ctx)
  if ctx.rate.limited then
    return false, "rate_limit",
      "Too many requests; retry after " .. ctx.rate.retry_after .. " seconds.", 429
  end
  return true
end

-- Where may events go? Webhooks are requests hostflow itself makes, so a
-- careless URL would let a tenant reach the operator's own network
-- (server-side request forgery). This rule: https only, and never an
-- internal address or a localhost name. Whatever this allows, hostflow
-- still refuses at connection time to reach an internal address that the
-- URL did not name literally (a public name resolving to 10.0.0.5, say).
-- Without this function the core applies the same rule.
function policy.check_webhook_url(url, ctx)
  if url.scheme ~= "https" then
    return false, "invalid_webhook_url", "Webhook URLs must use https."
  end
  if hostflow.is_internal_host(url.host) then
    return false, "invalid_webhook_url",
      "Webhook URLs must not point at loopback, private or link-local addresses."
  end
  return true
end

-- Cases every new version must pass before it serves. Each names the check
-- ("return_url" when url is given, else "tenant"; "webhook_url" must be
-- named), the tenant's allowlist,
-- and the expected answer (allow, and code when refused). Optional fields:
-- tenant (id, for overrides), mode ("live" or "test").
policy.examples = {
  { name = "https to a listed host", url = "https://app.example.com/billing/done?x=1",
    redirect_hosts = { "app.example.com" }, allow = true },
  { name = "plain http", url = "http://app.example.com/done",
    redirect_hosts = { "app.example.com" }, allow = false, code = "invalid_return_url" },
  { name = "unlisted host", url = "https://evil.example.net/",
    redirect_hosts = { "app.example.com" }, allow = false, code = "invalid_return_url" },
  { name = "suffix of a listed host", url = "https://app.example.com.evil.net/",
    redirect_hosts = { "app.example.com" }, allow = false, code = "invalid_return_url" },
  { name = "userinfo never reaches the policy", url = "https://app.example.com@evil.net/",
    redirect_hosts = { "app.example.com" }, allow = false, code = "invalid_return_url" },
  { name = "empty allowlist", url = "https://app.example.com/", redirect_hosts = {},
    allow = false, code = "invalid_return_url" },
  { name = "tenants may create sessions", check = "tenant", allow = true },
  { name = "over the rate limit", check = "tenant", rate_limited = true,
    allow = false, code = "rate_limit" },
  { name = "webhook to a public https host", check = "webhook_url",
    url = "https://hooks.example.com/hostflow", allow = true },
  { name = "webhook over plain http", check = "webhook_url",
    url = "http://hooks.example.com/hostflow", allow = false, code = "invalid_webhook_url" },
  { name = "webhook to loopback", check = "webhook_url", url = "https://127.0.0.1/",
    allow = false, code = "invalid_webhook_url" },
  { name = "webhook to a cloud metadata address", check = "webhook_url",
    url = "https://169.254.169.254/latest", allow = false, code = "invalid_webhook_url" },
  { name = "webhook to a private IPv6 address", check = "webhook_url",
    url = "https://[fd00::1]/", allow = false, code = "invalid_webhook_url" },
}

return policy
