-- T2 create. ARGV[3] id, ARGV[4] tag|owner, ARGV[5] the record (made in
-- Rust from `Job::new` advanced to now), ARGV[6..8] plan, sources, fault,
-- ARGV[9] the owner alone (its jobs over every tag), ARGV[10] the most jobs
-- kept, ARGV[11] the most one principal holds (mod.rs `create`).
-- Reply: {'ok', seq}, {'conflict'} or {'too_many'}.
local id, owner, who = ARGV[3], ARGV[4], P .. 'who:' .. ARGV[9]
local max_jobs, per_principal = tonumber(ARGV[10]), tonumber(ARGV[11])
-- So the caps below count what the in-memory registry counts.
sweep_if_due()
if live(id) ~= nil then return {'conflict'} end
-- A per-principal cap at or above the global one adds nothing.
if per_principal < max_jobs then
  local held = redis.call('ZCARD', who)
  if held >= per_principal then
    -- Its own settled jobs make room (brought up to now first: one past its
    -- window has expired whether or not anyone looked), 1% of its cap at
    -- once, from a bounded window of its oldest; its pending jobs stay.
    local count = math.max(held + 1 - per_principal, math.floor(per_principal / 100))
    local window = math.max(count * EVICTION_WINDOW_PER_JOB, 64)
    local gone = 0
    for _, other in ipairs(redis.call('ZRANGE', who, 0, window - 1)) do
      local o = load(other)
      if o == nil then
        -- Its record expired (the TTL backstop) unswept: a place freed.
        redis.call('ZREM', who, other)
        gone = gone + 1
        if gone == count then break end
      else
        local was = seen(o)
        advance(o, NOW, false)
        if o.sa ~= nil then
          forget(o)
          gone = gone + 1
          if gone == count then break end
        else
          save(o, was)
        end
      end
    end
    if redis.call('ZCARD', who) >= per_principal then return {'too_many'} end
  end
end
local all = P .. 'all'
local total = redis.call('ZCARD', all)
if total >= max_jobs then
  -- Down to 99% of the cap at once: settled jobs among the oldest first,
  -- then the oldest.
  local count = math.max(total + 1 - max_jobs, math.floor(max_jobs / 100))
  local gone = 0
  for _, other in ipairs(redis.call('ZRANGE', all, 0, count * EVICTION_WINDOW_PER_JOB - 1)) do
    local o = load(other)
    if o == nil then
      -- Its record expired unswept (the TTL backstop): a place freed.
      redis.call('ZREM', all, other)
      gone = gone + 1
      if gone == count then break end
    elseif o.sa ~= nil then
      forget(o)
      gone = gone + 1
      if gone == count then break end
    end
  end
  while gone < count do
    local oldest = redis.call('ZRANGE', all, 0, 0)[1]
    if oldest == nil then break end
    local o = load(oldest)
    if o == nil then
      redis.call('ZREM', all, oldest)
    else
      forget(o)
    end
    gone = gone + 1
  end
end
local seq = redis.call('INCR', P .. 'seq')
local j = cmsgpack.unpack(ARGV[5])
j.seq = seq
j.rev = 1
redis.call('HSET', jkey(id), 'j', cmsgpack.pack(j), 'plan', ARGV[6], 'src', ARGV[7],
  'fault', ARGV[8])
if j.sa ~= nil and terminal(j.st) then save(j) end
redis.call('ZADD', P .. 'own:' .. owner, seq, id)
redis.call('ZADD', P .. 'open:' .. owner, seq, id)
redis.call('ZADD', all, seq, id)
redis.call('ZADD', who, seq, id)
return {'ok', seq}
