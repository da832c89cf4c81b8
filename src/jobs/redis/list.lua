-- T12 lists. ARGV[3] the sorted set ('all', or 'own:'/'open:' and
-- tag|owner), ARGV[4] '1' for newest first, ARGV[5] and ARGV[6] the first
-- rank and how many. Members whose job is gone leave the set. Reply: the
-- set's size once they left, how many of the ranks read are still in it
-- (where the next page starts), then one record per live job. ARGV[7]
-- '1' to sweep first, as the in-memory registry's lists do (not its
-- newest-job lookup). ARGV[8] '1' to poll each job still in progress as
-- well (backend.rs `open_of_polled`: the look, then the poll).
if ARGV[7] == '1' then sweep_if_due() end
local polling = ARGV[8] == '1'
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
  local j = load(id)
  if j == nil then
    redis.call('ZREM', set, id)
  else
    -- One past its retention is left for the sweep, as the in-memory
    -- registry's lists leave it: not shown, still counted by the caps.
    kept = kept + 1
    if not reclaimable(j, NOW) then
      advanced(j, false)
      if polling and not terminal(j.st) and j.st ~= 'ready' then advanced(j, true) end
      out[#out + 1] = cmsgpack.pack(j)
    end
  end
end
out[1] = redis.call('ZCARD', set)
out[2] = kept
return out
