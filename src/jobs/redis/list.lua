-- T12 lists. ARGV[3] the sorted set ('all', or 'own:'/'open:' and
-- tag|owner), ARGV[4] '1' for newest first, ARGV[5] and ARGV[6] the first
-- rank and how many. Members whose job is gone leave the set. Reply: one
-- snapshot (field/value pairs) per live job, then the ranks looked at.
local set = P .. ARGV[3]
local first, count = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids
if ARGV[4] == '1' then
  ids = redis.call('ZREVRANGE', set, first, first + count - 1)
else
  ids = redis.call('ZRANGE', set, first, first + count - 1)
end
local out = {}
for _, id in ipairs(ids) do
  local j = live(id)
  if j == nil then
    redis.call('ZREM', set, id)
  else
    advanced(j, false)
    out[#out + 1] = snap(j, {})
  end
end
return out
