-- The shared counters of fault rules: ARGV[3..] ids; matched and fired of
-- each, in turn.
local out = {}
for i = 3, #ARGV do
  local counts = redis.call('HMGET', P .. 'fault:' .. ARGV[i], 'm', 'f')
  out[#out + 1] = tonumber(counts[1] or '0')
  out[#out + 1] = tonumber(counts[2] or '0')
end
return out
