-- GET one path (BENCH_PATH), or, when it holds {host} and {group}, a path per host,
-- round-robin over BENCH_HOSTS hosts. BENCH_ACCEPT_ENCODING sets Accept-Encoding.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

common.round_robin(function()
  local template = os.getenv("BENCH_PATH") or "/status"
  local headers = {}
  local encoding = os.getenv("BENCH_ACCEPT_ENCODING")
  if encoding and encoding ~= "" then
    headers["Accept-Encoding"] = encoding
  end
  local requests = {}
  local count = template:find("{host}", 1, true) and common.hosts or 1
  for i = 0, count - 1 do
    local path = template:gsub("{host}", common.host(i)):gsub("{group}", common.group(i))
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
  return requests
end)
