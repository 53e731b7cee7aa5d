-- Pushgateway: the same report as text exposition (444 bytes), pushed to one group per host
-- (job "gitops", instance = host), round-robin over BENCH_HOSTS hosts.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local function body(i)
  local text = string.format(
    'gitops_sync_status{server_group="%s",status="synced"} 1\n' ..
    'gitops_changed_files{server_group="%s"} 0\n' ..
    'gitops_deployment_info{server_group="%s",repo_name="rsyslog",environment="prod",' ..
    'commit_sha="abc1234567890",' ..
    'branch="master",updated_by="woodpecker",validation_status="passed",' ..
    'validation_message="%s"} 1\n' ..
    'gitops_last_pipeline_run_timestamp_seconds{server_group="%s"} 1777199400\n',
    common.group(i), common.group(i), common.group(i), "%s", common.group(i))
  -- Pad the validation message so the body is exactly 444 bytes, as our report's.
  local message = "ok" .. string.rep(".", 444 - (#text - 2) - 2)
  return string.format(text, message)
end

common.round_robin(function()
  local headers = {["Content-Type"] = "text/plain; version=0.0.4"}
  local requests = {}
  for i = 0, common.hosts - 1 do
    local b = body(i)
    assert(#b == 444, "body length " .. #b)
    local path = "/metrics/job/gitops/instance/" .. common.host(i)
    requests[#requests + 1] = wrk.format("POST", path, headers, b)
  end
  return requests
end)
