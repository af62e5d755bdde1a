-- policies/allowlist.lua - exact-match helpers for redirect allowlists.
--
-- require("allowlist") from a policy or a tenant override. Matching is
-- exact on purpose: no wildcards, no suffixes, so "evil-example.com" and
-- "example.com.evil.net" never match "example.com".
local M = {}

-- true when value equals one entry of list (a Lua array of strings).
function M.contains(list, value)
  for _, item in ipairs(list) do
    if item == value then
      return true
    end
  end
  return false
end

-- true when url (a url table from the core parser) may be a return_url
-- for a tenant whose allowlist is hosts: https, and the host listed.
-- Otherwise false and a message for the API client.
function M.https_host_allowed(url, hosts)
  if url.scheme ~= "https" then
    return false, "return_url must use https."
  end
  if #hosts == 0 then
    return false, "Your organization has no hosted_flow_allowed_redirect_hosts configured."
  end
  if not M.contains(hosts, url.host) then
    return false, "The host of return_url is not in hosted_flow_allowed_redirect_hosts."
  end
  return true
end

return M
