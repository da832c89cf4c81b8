-- Counts one matching request against fault rules (src/faults.rs `fire`,
-- with the counters every replica shares). ARGV[3..], four per rule: id,
-- after, times ('' for no bound), '1' when the rule fires by chance. Per
-- rule: 0 passed, 1 fired, or -n: eligible, and its n-th draw decides
-- (the replica draws, and commits a win with fault_commit).
local out = {}
for i = 3, #ARGV, 4 do
  local key = P .. 'fault:' .. ARGV[i]
  local matched = redis.call('HINCRBY', key, 'm', 1)
  local fired = tonumber(redis.call('HGET', key, 'f') or '0')
  local times = ARGV[i + 2]
  if matched <= tonumber(ARGV[i + 1]) or (times ~= '' and fired >= tonumber(times)) then
    out[#out + 1] = 0
  elseif ARGV[i + 3] == '1' then
    out[#out + 1] = -redis.call('HINCRBY', key, 'd', 1)
  else
    redis.call('HINCRBY', key, 'f', 1)
    out[#out + 1] = 1
  end
end
return out
