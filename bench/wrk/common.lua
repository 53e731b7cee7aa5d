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
