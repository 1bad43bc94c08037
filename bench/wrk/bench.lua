-- The one wrk script of bench/run.sh, configured through the environment:
--   BENCH_METHOD       GET (default) or POST
--   BENCH_BODY         request body, sent as application/json
--   BENCH_BEARER       a token sent as `Authorization: Bearer` on every request
--   BENCH_TOKENS_FILE  one token per line, each sent once (as `Authorization: Bearer`), split
--                      between the BENCH_THREADS wrk threads; a thread that runs out starts
--                      over and counts the tokens it presents again as "reused"
--   BENCH_THREADS      wrk's -t, needed to split the tokens
-- `done` prints one tab-separated line:
--   RESULT <req/s> <p50 µs> <p99 µs> <errors> <requests> <reused tokens>
-- where errors are connect, read, write and timeout errors plus responses with status >= 400.

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local bearer = os.getenv("BENCH_BEARER")
local tokens_file = os.getenv("BENCH_TOKENS_FILE")

wrk.method = method
if body then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
end
if bearer then
    wrk.headers["Authorization"] = "Bearer " .. bearer
end

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

if tokens_file then
    local tokens = {}
    local position = 0
    local wrapped = false
    reused = 0

    function init(args)
        local count = tonumber(os.getenv("BENCH_THREADS") or "1")
        local line_number = 0
        for line in io.lines(tokens_file) do
            if line_number % count == id then
                tokens[#tokens + 1] = line
            end
            line_number = line_number + 1
        end
        assert(#tokens > 0, "no tokens for thread " .. id)
    end

    function request()
        position = position + 1
        if position > #tokens then
            position = 1
            wrapped = true
        end
        if wrapped then
            reused = reused + 1
        end
        return wrk.format(method, nil, { ["Authorization"] = "Bearer " .. tokens[position] }, body)
    end
end

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.timeout + summary.errors.status
    local reused_total = 0
    for _, thread in ipairs(threads) do
        reused_total = reused_total + (tonumber(thread:get("reused")) or 0)
    end
    io.write(string.format("RESULT\t%.1f\t%d\t%d\t%d\t%d\t%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99),
        errors, summary.requests, reused_total))
end
