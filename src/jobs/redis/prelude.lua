-- The top of the job library (src/jobs/redis/mod.rs loads it once with
-- FUNCTION LOAD, each other .lua file as one function of it, so these
-- tables and helpers are made once, not on every call). The state machine
-- here is src/jobs/job.rs's `advance`, line for line; the differential
-- test in src/jobs/redis/tests.rs runs both on the same ops.
--
-- Every function's ARGV[1] is the key prefix (one hash tag, so every key
-- sits in one slot), ARGV[2] the server clock's now in integer
-- microseconds; `begin` reads them into P and NOW (Redis runs one function
-- at a time). Times are stored as decimal µs strings: Lua numbers are
-- doubles, exact to 2^53 µs (the year 2255). Numbers are always written
-- with fmt(): Redis turns a Lua number into a string with "%.14g", which
-- would round a 16-digit time. Formatting is the costly part of a call
-- (string.format('%.0f') of a time took 2 µs, and a call made ~80), so a
-- field keeps the text it was read as until its value changes, and only
-- changed fields are written back.
local P, NOW
local function begin(args)
  P = args[1]
  NOW = tonumber(args[2])
end
-- chrono's last instant in µs: a deadline past it means "never", as
-- `clock::saturating_add` makes it in Rust.
local MAXT = 8210298412799999000

local NUM = {c = 1, r = 1, x = 1, ds = 1, f = 1, polls = 1, s0 = 1, s1 = 1, et = 1,
  ed = 1, fc = 1, fd = 1, fs = 1, fos = 1, bs = 1, dl = 1, ad = 1, sa = 1, bat = 1,
  pn = 1, pd = 1, win = 1, ret = 1, seq = 1, rev = 1, alen = 1, fia = 1}
-- What a script loads of a job: everything but the plan and the sources,
-- which can be large and are read only when a replica lacks them.
local FIELDS = {'id', 'name', 'ctx', 'tag', 'own', 'st', 'ack', 'err', 'su', 'pk',
  'fk', 'fmsg', 'bld', 'c', 'r', 'x', 'ds', 'f', 'polls', 's0', 's1', 'et', 'ed',
  'fc', 'fd', 'fs', 'fos', 'bs', 'dl', 'ad', 'sa', 'bat', 'pn', 'pd', 'win', 'ret',
  'seq', 'rev', 'alen', 'fia'}
-- What changes after a create.
local DYN = {'st', 'r', 'x', 'ds', 'f', 'polls', 's0', 's1', 'ed', 'fd', 'bs', 'dl',
  'ad', 'ack', 'err', 'sa', 'bld', 'bat'}
-- What a snapshot (zipgate_api::JobSnapshot) shows.
local SNAP = {'id', 'name', 'ctx', 'tag', 'own', 'c', 'alen', 'et', 'fc', 'fs', 'fos',
  'st', 'r', 'x', 'ds', 'f', 'polls', 's0', 's1', 'ed', 'fd', 'bs', 'dl', 'ad', 'ack', 'err'}

-- '%d' is a C long here (64 bits), exact for every integer we keep.
local function fmt(v)
  if v == nil then return '' end
  if type(v) == 'number' then return string.format('%d', v) end
  return v
end

local function jkey(id) return P .. 'job:' .. id end

-- A job's fields as values, with `read` (each field as it was read, a
-- value and its text) beside them.
local function load(id)
  local values = redis.call('HMGET', jkey(id), unpack(FIELDS))
  if not values[1] then return nil end
  local j, read = {}, {}
  for i, f in ipairs(FIELDS) do
    local v = values[i]
    if v == false or (NUM[f] and v == '') then
      j[f] = nil
    elseif NUM[f] then
      j[f] = tonumber(v)
    else
      j[f] = v
    end
    read[f] = {j[f], v or ''}
  end
  j.read = read
  return j
end

-- Field f's text: as read while its value is unchanged.
local function text(j, f)
  local was = j.read and j.read[f]
  local v = j[f]
  if was ~= nil and was[1] == v then return was[2] end
  return fmt(v)
end

local function terminal(st)
  return st == 'done' or st == 'failed' or st == 'cancelled' or st == 'expired'
end

local function sat(a, d)
  local v = a + d
  if v > MAXT then return MAXT end
  return v
end

-- Writes the fields whose value changed since they were read.
local function save(j)
  local key = jkey(j.id)
  local args = {}
  for _, f in ipairs(DYN) do
    local was = j.read[f]
    if was == nil or was[1] ~= j[f] then
      args[#args + 1] = f
      args[#args + 1] = fmt(j[f])
      j.read[f] = {j[f], args[#args]}
    end
  end
  if #args == 0 then return end
  redis.call('HSET', key, unpack(args))
  -- A settled job is reclaimed on the clock by `live`; the TTL only
  -- collects records nobody looks at again (real time, a minute past the
  -- retention as it stands now; an advanced clock reclaims them earlier).
  if j.sa ~= nil and terminal(j.st) then
    local ms = math.floor((sat(j.sa, j.ret) - NOW) / 1000)
    if ms < 0 then ms = 0 end
    redis.call('PEXPIRE', key, fmt(ms + 60000))
  end
end

local function lists(j) return j.tag .. '|' .. j.own end

local function forget(j)
  redis.call('DEL', jkey(j.id))
  redis.call('ZREM', P .. 'own:' .. lists(j), j.id)
  redis.call('ZREM', P .. 'open:' .. lists(j), j.id)
  redis.call('ZREM', P .. 'all', j.id)
end

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
    if j.bld == '1' then
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
    local unused = j.dl == 0 or j.su ~= '1'
    if now > j.x and unused then
      j.st = 'expired'
      j.f = j.x
      if j.sa == nil then j.sa = j.x end
    end
  end
end

-- A snapshot as field/value pairs, appended to `out`.
local function snap(j, out)
  for _, f in ipairs(SNAP) do
    out[#out + 1] = f
    out[#out + 1] = text(j, f)
  end
  return out
end

-- A reply: status, whether the live feed should hear of it, the snapshot.
local function reply(status, announce, j)
  local out = {status, announce and '1' or '0'}
  if j ~= nil then snap(j, out) end
  return out
end

-- Advances a job as of now and saves it if that changed anything; true
-- when its state or steps moved (what the live feed is told of).
local function advanced(j, poll)
  local st, s0, s1 = j.st, j.s0, j.s1
  advance(j, NOW, poll)
  save(j)
  return st ~= j.st or s0 ~= j.s0 or s1 ~= j.s1
end
