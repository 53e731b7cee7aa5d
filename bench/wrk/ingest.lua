-- POST /status/pipeline: a 444-byte deployment report, round-robin over BENCH_HOSTS hosts.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local function body(i)
  local text = string.format(
    '{"project_name": "gitops-for-servers", "repo_name": "rsyslog", "server_group": "%s", ' ..
    '"server_type": "rsyslog", "environment": "prod", "host": "%s", "status": "synced", ' ..
    '"changed_files": [], "validation_status": "passed", "validation_message": "%s", ' ..
    '"commit_sha": "abc1234567890", "branch": "master", "updated_by": "woodpecker", ' ..
    '"last_pipeline_run": "2026-04-26T10:30:00Z"}',
    common.group(i), common.host(i), "%s")
  -- Pad the validation message so the body is exactly 444 bytes.
  local message = "rsyslog syntax validation passed"
  message = message .. string.rep(".", 444 - (#text - 2) - #message)
  return string.format(text, message)
end

common.round_robin(function()
  local headers = {["Content-Type"] = "application/json"}
  local requests = {}
  for i = 0, common.hosts - 1 do
    local b = body(i)
    assert(#b == 444, "body length " .. #b)
    requests[#requests + 1] = wrk.format("POST", "/status/pipeline", headers, b)
  end
  return requests
end)
