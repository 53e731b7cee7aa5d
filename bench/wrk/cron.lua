-- POST /status/cron: the seeds' drift check of an in-sync host (their cron runs every 2
-- minutes), round-robin over BENCH_HOSTS hosts, which must exist already.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

common.round_robin(function()
  local headers = {["Content-Type"] = "application/json"}
  local requests = {}
  for i = 0, common.hosts - 1 do
    local b = string.format(
      '{"server_group": "%s", "host": "%s", "status": "synced", "changed_files": [], ' ..
      '"last_cron_check": "2026-04-26T11:00:00Z"}',
      common.group(i), common.host(i))
    requests[#requests + 1] = wrk.format("POST", "/status/cron", headers, b)
  end
  return requests
end)
