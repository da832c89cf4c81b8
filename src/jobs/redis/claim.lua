-- T3 claim / T4 peek. ARGV[3] id, ARGV[4] the dialect it must belong to
-- ('' any), ARGV[5] the owner's cap on downloads at once ('' none),
-- ARGV[6] '1' to peek (no writes but the advance), ARGV[7] and ARGV[8] the
-- seq and rev of the plan the caller holds ('' none): the plan, sources
-- and fault come back only when they differ. ARGV[9] and ARGV[10] the
-- claiming replica and the claim's key among its claims: a replica that
-- dies mid-download has its claims ended by the others (reap.lua).
local id = ARGV[3]
local j = live(id)
if j == nil or (ARGV[4] ~= '' and ARGV[4] ~= j.tag) then return {'not_found', '0'} end
if ARGV[5] ~= '' then
  local busy = tonumber(redis.call('HGET', P .. 'dl', lists(j)) or '0')
  if busy >= tonumber(ARGV[5]) then return {'too_many_downloads', '0'} end
end
advanced(j, false)
local why = nil
if j.st == 'queued' or j.st == 'running' then
  why = 'conflict'
elseif j.st ~= 'ready' and not ((j.st == 'downloading' or j.st == 'done') and not j.su) then
  why = 'gone'
end
if why ~= nil then return reply(why, false, j) end
local peek = ARGV[6] == '1'
if not peek then
  j.dl = j.dl + 1
  j.ad = j.ad + 1
  if j.ds == nil then j.ds = NOW end
  if j.su then
    j.st = 'downloading'
    if j.sa == nil then j.sa = NOW end
  end
  save(j)
  redis.call('HINCRBY', P .. 'dl', lists(j), 1)
  redis.call('HSET', claims_of(ARGV[9]), ARGV[10],
    id .. '\n' .. lists(j) .. '\n' .. string.format('%d', j.seq))
end
local out = reply('ok', not peek, j)
if j.seq ~= tonumber(ARGV[7]) or j.rev ~= tonumber(ARGV[8]) then
  local big = redis.call('HMGET', jkey(id), 'plan', 'src', 'fault')
  out[4] = big[1] or ''
  out[5] = big[2] or ''
  out[6] = big[3] or ''
end
return out
