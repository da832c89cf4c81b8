-- A won draw fires its rule, unless its `times` were spent meanwhile (by
-- another replica). ARGV[3] the rule's id, ARGV[4] times ('' for none).
local key = P .. 'fault:' .. ARGV[3]
local fired = tonumber(redis.call('HGET', key, 'f') or '0')
if ARGV[4] ~= '' and fired >= tonumber(ARGV[4]) then return 0 end
redis.call('HINCRBY', key, 'f', 1)
return 1
