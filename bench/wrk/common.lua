-- Shared by the bench's wrk scripts: host names, per-thread start offsets, and one JSON line
-- of results on stdout (parsed by bench/bench.py).
local common = {}

common.hosts = tonumber(os.getenv("BENCH_HOSTS") or "1000")
common.groups = tonumber(os.getenv("BENCH_GROUPS") or "10")

-- Host i (0-based) is "host-NNNNN" in group "group-NN": fixed widths, so every body built
-- from them has the same length.
function common.host(i)
  return string.format("host-%05d", i)
end

function common.group(i)
  return string.format("group-%02d", i % common.groups)
end

local thread_count = 0
-- Each thread starts at its own offset, so the threads spread over the hosts.
function common.setup(thread)
  thread:set("offset", thread_count * 7919)
  thread_count = thread_count + 1
end

-- Makes the script send the requests `build()` returns (raw, from wrk.format), round-robin,
-- each thread from its own offset; they are built once per thread, before the load starts.
function common.round_robin(build)
  local requests, next_request = {}, 1
  setup = common.setup
  init = function(args)
    requests = build()
    next_request = (tonumber(offset) or 0) % #requests + 1
  end
  request = function()
    local r = requests[next_request]
    next_request = next_request % #requests + 1
    return r
  end
  done = common.done
end

function common.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end

return common
