"""The Lua scripts the Redis store runs, and the key layout they share.

Each script runs atomically inside Redis, which is what makes the shared bus exact: numbering
an event (``INCR seq``) and appending it (``XADD`` with the stream id ``<seq>-0``) happen in
one step, so seq order is stream order, and no reader can see seq 8 before seq 7.

Every script starts by checking the *epoch*: a random id written when the data set is
created. Redis run without persistence loses everything when it restarts; a process that
then finds the epoch missing (or different from the one it knew) must not go on as if its
seqs and records were still there (`RedisStore.recover`).

Keys, all under one prefix (default ``ipcx:``; the URL's database number separates
installations):

==================  =======================================================================
``seq``             the last seq numbered (INCR)
``epoch``           the data set's id; ``floor``: seqs up to it were lost with a restart
``events``          every event, ids ``<seq>-0``, field ``e`` = its JSON (trimmed, ~)
``h:<job>``         one job's kept history (same ids and field), bounded in events and bytes
``hsize``           hash job → bytes its history holds; ``hjobs``: jobs with a history
``ev:<job>``        runs ``"first last count"`` of the job's evicted seqs, oldest first
``evmax``           zset job → its newest evicted seq
``o:<stream>:<job>``  the job's kept stdout / stderr (capped in all); ``otrunc``: cut jobs
``rec``             hash job → its record (JSON, written by the job's runner)
``lost``            hash job → JSON of when and why it was declared lost
``owner``           hash job → its runner; ``jobs:<runner>``: the runner's jobs; ``orphans``:
                    zset of the jobs of runners that are gone (bounded, oldest out first)
``live:<runner>``   hash: the runner's live jobs → their pids; ``runners``: zset runner →
                    its last heartbeat (Redis's clock)
``runner:<name>``   hash: the runner's pid, hostname, capacity, live children, ...
``ctl:<runner>``    stream of control requests for the runner; ``reply:<id>``: the answer
``jobno``           the last job number given out
==================  =======================================================================
"""

from __future__ import annotations

from typing import Final

#: Checks the epoch; defines the helpers the writing scripts share.
_PRELUDE: Final = r"""
local p = ARGV[1]
if redis.call('GET', p .. 'epoch') ~= ARGV[2] then
  return redis.error_reply('EPOCH the data set in Redis was lost or replaced')
end

local function note_evicted(job, seq, max_runs)
  local rk = p .. 'ev:' .. job
  redis.call('ZADD', p .. 'evmax', seq, job)
  local tail = redis.call('LINDEX', rk, -1)
  if tail then
    local lo, hi, c = string.match(tail, '^(%d+) (%d+) (%d+)$')
    if tonumber(hi) == seq - 1 then
      redis.call('LSET', rk, -1, lo .. ' ' .. seq .. ' ' .. (tonumber(c) + 1))
      return
    end
  end
  redis.call('RPUSH', rk, seq .. ' ' .. seq .. ' 1')
  if redis.call('LLEN', rk) > max_runs then
    -- keep the list bounded: the two oldest runs become one (first of one, last of the
    -- other, both counts), exact for any replay that starts outside it
    local a = redis.call('LPOP', rk)
    local b = redis.call('LINDEX', rk, 0)
    local alo, _, ac = string.match(a, '^(%d+) (%d+) (%d+)$')
    local _, bhi, bc = string.match(b, '^(%d+) (%d+) (%d+)$')
    redis.call('LSET', rk, 0, alo .. ' ' .. bhi .. ' ' .. (tonumber(ac) + tonumber(bc)))
  end
end

local function keep_output(job, stream, out, cap)
  local a = redis.call('STRLEN', p .. 'o:stdout:' .. job)
  local b = redis.call('STRLEN', p .. 'o:stderr:' .. job)
  local room = cap - a - b
  if #out > room then
    redis.call('HSET', p .. 'otrunc', job, 1)
  end
  if room > 0 then
    redis.call('APPEND', p .. 'o:' .. stream .. ':' .. job, string.sub(out, 1, room))
  end
end

-- a live job is in its runner's live hash (job -> pid), so a lost runner's jobs are known;
-- every job of a runner is in its jobs set, so that they become orphans when it goes
local function put_record(job, rec, runner, pid)
  redis.call('HSET', p .. 'rec', job, rec)
  redis.call('HSET', p .. 'owner', job, runner)
  redis.call('SADD', p .. 'jobs:' .. runner, job)
  redis.call('ZREM', p .. 'orphans', job)
  if pid ~= '' then
    redis.call('HSET', p .. 'live:' .. runner, job, pid)
  else
    redis.call('HDEL', p .. 'live:' .. runner, job)
  end
end

-- everything kept about a job
local function forget_job(job)
  redis.call('DEL', p .. 'h:' .. job, p .. 'ev:' .. job, p .. 'o:stdout:' .. job,
    p .. 'o:stderr:' .. job)
  redis.call('HDEL', p .. 'hsize', job)
  redis.call('SREM', p .. 'hjobs', job)
  redis.call('ZREM', p .. 'evmax', job)
  redis.call('HDEL', p .. 'otrunc', job)
  redis.call('HDEL', p .. 'rec', job)
  redis.call('HDEL', p .. 'lost', job)
  redis.call('ZREM', p .. 'orphans', job)
  local owner = redis.call('HGET', p .. 'owner', job)
  if owner then
    redis.call('SREM', p .. 'jobs:' .. owner, job)
    redis.call('HDEL', p .. 'live:' .. owner, job)
    redis.call('HDEL', p .. 'owner', job)
  end
end

-- A runner that is gone leaves its jobs to nobody: they become orphans, which are kept (they
-- are still worth reading) up to `keep`, the oldest forgotten first.
local function orphan_jobs(runner, now, keep)
  local jk = p .. 'jobs:' .. runner
  for _, job in ipairs(redis.call('SMEMBERS', jk)) do
    redis.call('ZADD', p .. 'orphans', now, job)
  end
  redis.call('DEL', jk)
  local excess = redis.call('ZCARD', p .. 'orphans') - keep
  if excess > 0 then
    for k, job in ipairs(redis.call('ZRANGE', p .. 'orphans', 0, excess - 1)) do
      forget_job(job)
    end
  end
end

-- limits: {global maxlen, events per job, bytes per job, output cap, evicted runs}
local function append_event(job, rest, stream, out, limits)
  local seq = redis.call('INCR', p .. 'seq')
  local text = '{"seq":' .. seq .. ',' .. string.sub(rest, 2)
  local id = seq .. '-0'
  redis.call('XADD', p .. 'events', 'MAXLEN', '~', limits[1], id, 'e', text)
  local hk = p .. 'h:' .. job
  redis.call('XADD', hk, id, 'e', text)
  redis.call('SADD', p .. 'hjobs', job)
  local size = redis.call('HINCRBY', p .. 'hsize', job, #text)
  local n = redis.call('XLEN', hk)
  while n > 1 and (n > limits[2] or size > limits[3]) do
    local first = redis.call('XRANGE', hk, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', hk, first[1])
    size = redis.call('HINCRBY', p .. 'hsize', job, -#first[2][2])
    n = n - 1
    note_evicted(job, tonumber(string.match(first[1], '^%d+')), limits[5])
  end
  if stream ~= '' then
    keep_output(job, stream, out, limits[4])
  end
  return seq
end
"""

#: ARGV: prefix, epoch, 5 limits, n, n x (job, event JSON without seq, output stream or "",
#: output text), m, m x (job, record JSON, runner, pid or "" when no longer live). Records are
#: only updated here, never created (a forgotten job stays forgotten). Returns the first seq
#: given (0: none).
PUBLISH: Final = (
    _PRELUDE
    + r"""
local limits = {}
for i = 1, 5 do limits[i] = tonumber(ARGV[2 + i]) end
local n = tonumber(ARGV[8])
local first = 0
local i = 9
for _ = 1, n do
  local seq = append_event(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], limits)
  if first == 0 then first = seq end
  i = i + 4
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  if redis.call('HEXISTS', p .. 'rec', ARGV[i]) == 1 then
    put_record(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  end
  i = i + 4
end
return first
"""
)

#: ARGV: prefix, epoch, m, m x (job, record JSON, runner, pid or ""). Creates or rewrites
#: records (a new job; every job of a runner that rejoins after Redis or the runner was lost).
PUT: Final = (
    _PRELUDE
    + r"""
local m = tonumber(ARGV[3])
local i = 4
for _ = 1, m do
  put_record(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  redis.call('HDEL', p .. 'lost', ARGV[i])
  i = i + 4
end
return m
"""
)

#: ARGV: prefix, epoch, "one" or "all", job, after, max_replay.
#: Returns {floor, newest evicted seq (all) or the runs (one), cut seq (all: the newest seq
#: left out by max_replay, 0 if none), items...}; items oldest first as {id, text}.
REPLAY: Final = r"""
local p = ARGV[1]
if redis.call('GET', p .. 'epoch') ~= ARGV[2] then
  return redis.error_reply('EPOCH the data set in Redis was lost or replaced')
end
local after = tonumber(ARGV[5])
local max = tonumber(ARGV[6])
local floor = tonumber(redis.call('GET', p .. 'floor') or '0')
local function pack(entry) return {entry[1], entry[2][2]} end
if ARGV[3] == 'one' then
  local job = ARGV[4]
  if redis.call('SISMEMBER', p .. 'hjobs', job) == 0 then
    return {floor, false, 0}
  end
  local out = {floor, redis.call('LRANGE', p .. 'ev:' .. job, 0, -1), 0}
  for _, e in ipairs(redis.call('XRANGE', p .. 'h:' .. job, '(' .. after .. '-0', '+')) do
    out[#out + 1] = pack(e)
  end
  return out
end
local top = redis.call('ZREVRANGE', p .. 'evmax', 0, 0, 'WITHSCORES')
local evmax = 0
if top[2] then evmax = tonumber(top[2]) end
local from = math.max(after, evmax, floor)
-- newest first from each job, merged newest first: keep max, note the next one left out
local heads, lists = {}, {}
for _, job in ipairs(redis.call('SMEMBERS', p .. 'hjobs')) do
  local l = redis.call('XREVRANGE', p .. 'h:' .. job, '+', '(' .. from .. '-0', 'COUNT', max + 1)
  if #l > 0 then
    lists[#lists + 1] = l
    heads[#heads + 1] = 1
  end
end
local picked, cut = {}, 0
while true do
  local best, bestseq = 0, -1
  for k = 1, #lists do
    local e = lists[k][heads[k]]
    if e then
      local s = tonumber(string.match(e[1], '^%d+'))
      if s > bestseq then best, bestseq = k, s end
    end
  end
  if best == 0 then break end
  if #picked == max then cut = bestseq break end
  picked[#picked + 1] = lists[best][heads[best]]
  heads[best] = heads[best] + 1
end
local out = {floor, evmax, cut}
for k = #picked, 1, -1 do out[#out + 1] = pack(picked[k]) end
return out
"""

#: ARGV: prefix, epoch, job. Deletes everything kept about the job.
FORGET: Final = (
    _PRELUDE
    + r"""
forget_job(ARGV[3])
return 1
"""
)

#: ARGV: prefix, new epoch, floor. Creates the data set if it is not there (first start, or
#: Redis came back empty), and moves seq up to `floor` if it is below: a process that saw
#: seqs before Redis lost them passes the highest it saw plus a margin, so that no seq given
#: before is given again. Returns the epoch.
INIT: Final = r"""
local p = ARGV[1]
local floor = tonumber(ARGV[3])
local seq = tonumber(redis.call('GET', p .. 'seq') or '0')
if floor > seq then
  redis.call('SET', p .. 'seq', floor)
  redis.call('SET', p .. 'floor', floor)
end
local e = redis.call('GET', p .. 'epoch')
if e then return e end
redis.call('SET', p .. 'epoch', ARGV[2])
return ARGV[2]
"""

#: ARGV: prefix, epoch, runner, instance id, info JSON, ttl seconds. The runner's heartbeat:
#: claims the name (refused while another live instance holds it), stamps it with Redis's
#: own clock (hosts' clocks may differ). Returns {server time, 1 if it (re)joined}: a runner
#: that rejoins (new, or declared lost while it could not reach Redis) rewrites its records.
HEARTBEAT: Final = (
    _PRELUDE
    + r"""
local name, instance = ARGV[3], ARGV[4]
local rk = p .. 'runner:' .. name
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local holder = redis.call('HGET', rk, 'instance')
local beat = redis.call('ZSCORE', p .. 'runners', name)
if holder and holder ~= instance and beat and now - tonumber(beat) < tonumber(ARGV[6]) then
  return redis.error_reply('NAMETAKEN ' .. (redis.call('HGET', rk, 'info') or '{}'))
end
local joined = 0
if not beat or holder ~= instance then joined = 1 end
redis.call('HSET', rk, 'instance', instance, 'info', ARGV[5])
redis.call('ZADD', p .. 'runners', now, name)
return {tostring(now), joined}
"""
)

#: ARGV: prefix, epoch, runner, instance id, orphans kept. A runner that stops cleanly
#: leaves; its (finished) jobs stay readable, as orphans.
LEAVE: Final = (
    _PRELUDE
    + r"""
local rk = p .. 'runner:' .. ARGV[3]
if redis.call('HGET', rk, 'instance') == ARGV[4] then
  local t = redis.call('TIME')
  redis.call('DEL', rk, p .. 'live:' .. ARGV[3])
  redis.call('ZREM', p .. 'runners', ARGV[3])
  orphan_jobs(ARGV[3], tonumber(t[1]) + tonumber(t[2]) / 1e6, tonumber(ARGV[5]))
end
return 1
"""
)

#: ARGV: prefix, epoch, ttl seconds, 5 limits, orphans kept. Declares every runner whose last
#: heartbeat is older than ttl lost, exactly once (whoever runs this first), and with it each
#: of its live jobs: a ``lost`` event each (numbered like any other) and a ``lost`` mark on its
#: record; all its jobs become orphans. Returns the names of the runners it declared lost.
REAP: Final = (
    _PRELUDE
    + r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local ttl = tonumber(ARGV[3])
local limits = {}
for i = 1, 5 do limits[i] = tonumber(ARGV[3 + i]) end
local found = redis.call('ZRANGEBYSCORE', p .. 'runners', '-inf', '(' .. (now - ttl), 'WITHSCORES')
local dead = {}
for k = 1, #found, 2 do
  local name, beat = found[k], tonumber(found[k + 1])
  dead[#dead + 1] = name
  redis.call('ZREM', p .. 'runners', name)
  redis.call('DEL', p .. 'runner:' .. name)
  local lk = p .. 'live:' .. name
  local live = redis.call('HGETALL', lk)
  redis.call('DEL', lk)
  local why = 'runner ' .. name .. ' stopped answering: no heartbeat for '
    .. string.format('%.1f', now - beat) .. ' s'
  for j = 1, #live, 2 do
    local job, pid = live[j], live[j + 1]
    local data = cjson.encode({message = why, runner = name, last_heartbeat = beat})
    local rest = '{"job":' .. cjson.encode(job) .. ',"pid":' .. pid .. ',"type":"lost","t":'
      .. string.format('%.3f', now) .. ',"data":' .. data .. ',"host":' .. cjson.encode(name)
      .. '}'
    append_event(job, rest, '', '', limits)
    redis.call('HSET', p .. 'lost', job, cjson.encode({t = now, runner = name, message = why}))
  end
  orphan_jobs(name, now, tonumber(ARGV[9]))
end
return dead
"""
)
