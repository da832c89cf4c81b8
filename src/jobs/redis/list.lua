-- T12 lists. ARGV[3] the sorted set ('all', or 'own:'/'open:' and
-- tag|owner), ARGV[4] '1' for newest first, ARGV[5] and ARGV[6] the first
-- rank and how many. Members whose job is gone leave the set. Reply: the
-- set's size once they left, how many of the ranks read are still in it
-- (where the next page starts), then one record per live job.
local set = P .. ARGV[3]
local first, count = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids
if ARGV[4] == '1' then
  ids = redis.call('ZREVRANGE', set, first, first + count - 1)
else
  ids = redis.call('ZRANGE', set, first, first + count - 1)
end
local out = {0, 0}
local kept = 0
for _, id in ipairs(ids) do
  local j = live(id)
  if j == nil then
    redis.call('ZREM', set, id)
  else
    kept = kept + 1
    advanced(j, false)
    out[#out + 1] = cmsgpack.pack(j)
  end
end
out[1] = redis.call('ZCARD', set)
out[2] = kept
return out
