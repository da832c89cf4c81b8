-- The top of the job library (src/jobs/redis/mod.rs loads it once with
-- FUNCTION LOAD, each other .lua file as one function of it, so these
-- tables and helpers are made once, not on every call). The state machine
-- here is src/jobs/job.rs's `advance`, line for line; the differential
-- test in src/jobs/redis/tests.rs runs both on the same ops.
--
-- Every function's ARGV[1] is the key prefix (one hash tag, so every key
-- sits in one slot), ARGV[2] the server clock's now in integer
-- microseconds; `begin` reads them into P and NOW (Redis runs one function
-- at a time).
--
-- A job is a hash: `j`, its record (the fields of mod.rs's `Record`) in
-- MessagePack, and `plan`, `src` and `fault`, read only when a replica
-- lacks them. MessagePack because numbers then travel as numbers: times
-- are integer µs, exact in Lua's doubles to 2^53 (the year 2255), and
-- neither side formats or parses decimal text (string.format of a time
-- and tonumber of one were most of a call's time when every field was a
-- hash field of its own: ~80 µs a call against ~15 now).
local P, NOW
local function begin(args)
  P = args[1]
  NOW = tonumber(args[2])
end
-- chrono's last instant in µs: a deadline past it means "never", as
-- `clock::saturating_add` makes it in Rust.
local MAXT = 8210266876799998976

-- What changes after a create: a save writes the record only when one of
-- these changed.
local DYN = {'st', 'r', 'x', 'ds', 'f', 'polls', 's0', 's1', 'ed', 'fd', 'bs', 'dl',
  'ad', 'ack', 'err', 'sa', 'bld', 'bat', 'rev', 'alen', 'et', 'fia', 'fs', 'fos'}

local function jkey(id) return P .. 'job:' .. id end

local function load(id)
  local blob = redis.call('HGET', jkey(id), 'j')
  if not blob then return nil end
  return cmsgpack.unpack(blob)
end

-- The values save() compares against.
local function seen(j)
  local was = {}
  for _, f in ipairs(DYN) do was[f] = j[f] end
  return was
end

local function terminal(st)
  return st == 'done' or st == 'failed' or st == 'cancelled' or st == 'expired'
end

local function sat(a, d)
  local v = a + d
  if v > MAXT then return MAXT end
  return v
end

-- Writes the record back (when `was`, what seen() took, is given: only if
-- something changed since).
local function save(j, was)
  if was ~= nil then
    local changed = false
    for _, f in ipairs(DYN) do
      if was[f] ~= j[f] then
        changed = true
        break
      end
    end
    if not changed then return end
  end
  local key = jkey(j.id)
  redis.call('HSET', key, 'j', cmsgpack.pack(j))
  -- A settled job is reclaimed on the clock by `live`; the TTL only
  -- collects records nobody looks at again (real time, a minute past the
  -- retention as it stands now; an advanced clock reclaims them earlier).
  if j.sa ~= nil and terminal(j.st) then
    local ms = math.floor((sat(j.sa, j.ret) - NOW) / 1000)
    if ms < 0 then ms = 0 end
    redis.call('PEXPIRE', key, string.format('%d', ms + 60000))
    -- When it may be reclaimed (fixed once settled): what a sweep reads.
    redis.call('ZADD', P .. 'deadlines', sat(j.sa, j.ret), j.id)
  end
end

local function lists(j) return j.tag .. '|' .. j.own end

local function forget(j)
  redis.call('DEL', jkey(j.id))
  redis.call('ZREM', P .. 'own:' .. lists(j), j.id)
  redis.call('ZREM', P .. 'open:' .. lists(j), j.id)
  redis.call('ZREM', P .. 'all', j.id)
  redis.call('ZREM', P .. 'who:' .. j.own, j.id)
  redis.call('ZREM', P .. 'deadlines', j.id)
end

-- table.rs: how many of the oldest jobs an eviction looks through per job
-- it must drop.
local EVICTION_WINDOW_PER_JOB = 4

local function reclaimable(j, now)
  return j.sa ~= nil and terminal(j.st) and now > sat(j.sa, j.ret)
end

-- The job, unless its retention has passed (then it is forgotten now).
local function live(id)
  local j = load(id)
  if j == nil then return nil end
  if reclaimable(j, NOW) then
    forget(j)
    return nil
  end
  return j
end

-- table.rs `sweep_if_due`, run where the in-memory registry runs it
-- (create, lists): at most once per clock second, every job past its
-- retention goes, found by the deadline each got when it settled.
local function sweep_if_due()
  local swept = redis.call('GET', P .. 'swept')
  if swept and NOW >= tonumber(swept) and NOW - tonumber(swept) < 1000000 then return end
  local deadlines = P .. 'deadlines'
  -- Bounded, so a big clock advance does not stall Redis: the rest go at
  -- the next sweep.
  local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. string.format('%d', NOW),
    'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local j = load(id)
    if j == nil then
      redis.call('ZREM', deadlines, id)
    elseif reclaimable(j, NOW) then
      forget(j)
    end
  end
  redis.call('SET', P .. 'swept', string.format('%d', NOW))
end

-- job.rs `Job::advance`.
local function advance(j, now, poll)
  if poll then j.polls = math.min(j.polls + 1, 4294967295) end
  if j.st == 'queued' or j.st == 'running' then
    local ready_at = nil
    if j.pk == 'i' then
      ready_at = j.c
    elseif j.pk == 'p' then
      j.s0 = math.min(j.polls, j.pn)
      j.s1 = j.pn
      if j.polls >= j.pn then ready_at = now end
    else
      local at = sat(j.c, j.pd)
      if now >= at then ready_at = at end
    end
    if j.bld then
      j.s0 = math.min(j.s0, math.max(j.s1 - 1, 0))
      ready_at = nil
    elseif ready_at ~= nil and j.bat ~= nil then
      ready_at = math.max(ready_at, j.bat)
    end
    if j.fk == 'q' then
      j.st = 'queued'
      j.s0 = 0
      return
    elseif j.fk == 'r' then
      j.st = 'running'
      j.s0 = math.min(j.s0, math.max(j.s1 - 1, 0))
      return
    elseif j.fk == 'f' and ready_at ~= nil then
      j.st = 'failed'
      j.err = j.fmsg
      j.f = ready_at
      if j.sa == nil then j.sa = ready_at end
      return
    end
    if ready_at ~= nil then
      j.st = 'ready'
      j.r = ready_at
      j.s0 = j.s1
      if j.win ~= nil then j.x = sat(ready_at, j.win) else j.x = nil end
    elseif j.st == 'queued' and (j.polls > 0 or now > j.c) then
      j.st = 'running'
    end
  end
  if j.st == 'ready' and j.x ~= nil then
    local unused = j.dl == 0 or not j.su
    if now > j.x and unused then
      j.st = 'expired'
      j.f = j.x
      if j.sa == nil then j.sa = j.x end
    end
  end
end

-- A download of `owner`'s (tag|owner) ended: it counts no more against
-- the owner's downloads at once, even if its job is gone.
local function uncount(owner)
  local left = redis.call('HINCRBY', P .. 'dl', owner, -1)
  if left <= 0 then redis.call('HDEL', P .. 'dl', owner) end
end

-- A download of job `j` ended, whole or not (ticket.rs `finish`).
local function ended(j, complete)
  j.ad = math.max(j.ad - 1, 0)
  if not terminal(j.st) or j.st == 'done' then
    if complete then
      -- Every file the archive held (fewer than planned when a
      -- download-time recheck left some out).
      j.fd = math.min(j.fia, j.fc)
      j.ed = j.et
    end
    if j.su then
      if complete then
        j.st = 'done'
      else
        j.st = 'failed'
        j.err = 'download interrupted'
      end
      j.f = NOW
    end
  end
end

-- The claims a replica holds: what to end if it dies mid-download.
local function claims_of(replica) return P .. 'claims:' .. replica end

-- Ends a claim as registered by claim.lua (`id\ntag|owner\nseq`) as an
-- interrupted download; false if it does not read as one.
local function end_claim(claim)
  local id, owner, seq = string.match(claim, '^(.*)\n(.*)\n(%d+)$')
  if id == nil then return false end
  uncount(owner)
  local j = load(id)
  if j ~= nil and j.seq == tonumber(seq) then
    ended(j, false)
    save(j)
  end
  return true
end

-- A reply: status, whether the live feed should hear of it, the record.
local function reply(status, announce, j)
  local out = {status, announce and '1' or '0'}
  if j ~= nil then out[3] = cmsgpack.pack(j) end
  return out
end

-- Advances a job as of now and saves it if that changed anything; true
-- when its state or steps moved (what the live feed is told of).
local function advanced(j, poll)
  local was = seen(j)
  advance(j, NOW, poll)
  save(j, was)
  return was.st ~= j.st or was.s0 ~= j.s0 or was.s1 ~= j.s1
end
