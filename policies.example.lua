-- policies.example.lua - the reference policy hostflow runs by default.
--
-- hostflow asks this file two questions for every new payment session:
--
--   check_tenant(ctx)            may this tenant create a session now?
--   check_return_url(url, ctx)   may the contractor be sent back to url?
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
--         .path, .remote_addr; ctx.now (Unix seconds).
--
-- The sandbox offers string (without dump), table, math, utf8, os.time,
-- os.clock and a read-only `hostflow` table: hostflow.log(message) and
-- hostflow.parse_url(s) (the core parser; returns a url table or nil, why).

local policy = {}

-- Membership in a list, compared exactly: no wildcards, no suffixes, so
-- "evil-example.com" and "example.com.evil.net" never match "example.com".
local function contains(list, value)
  for _, item in ipairs(list) do
    if item == value then
      return true
    end
  end
  return false
end

-- The reference rule: https only, and the host must equal one entry of the
-- tenant's allowlist. A tenant with an empty allowlist cannot redirect
-- anywhere until an operator adds a host (hostflow tenant set-redirect-hosts).
function policy.check_return_url(url, ctx)
  if url.scheme ~= "https" then
    return false, "invalid_return_url", "return_url must use https."
  end
  if #ctx.tenant.redirect_hosts == 0 then
    return false, "invalid_return_url",
      "Your organization has no hosted_flow_allowed_redirect_hosts configured."
  end
  if not contains(ctx.tenant.redirect_hosts, url.host) then
    return false, "invalid_return_url",
      "The host of return_url is not in hosted_flow_allowed_redirect_hosts."
  end
  return true
end

-- Every tenant with a valid key may create sessions. Refuse here to pause a
-- tenant, or to rate-limit one: return false, "rate_limited", "…", 429.
function policy.check_tenant(ctx)
  return true
end

return policy
