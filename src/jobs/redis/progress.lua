-- T5 progress, and T6 finish when ARGV[8] is '1' or '0' (complete or not).
-- ARGV[3] id, ARGV[4] the claimed job's seq (a later job under the id is
-- not this one), ARGV[5] bytes sent since the last report, ARGV[6] the
-- entries done so far ('' none), ARGV[7] files finished since the last
-- report, ARGV[8] '' for progress alone, ARGV[9] tag|owner of the claim,
-- ARGV[10] '1' when the live feed listens, ARGV[11] and ARGV[12] the
-- replica and the claim's key among its claims (a finish forgets it).
local finishing = ARGV[8] ~= ''
-- A claim ends once: one the reaper ended already (its replica missed its
-- lease) is not counted down again.
local ending = finishing and redis.call('HDEL', claims_of(ARGV[11]), ARGV[12]) == 1
if ending then uncount(ARGV[9]) end
local j = load(ARGV[3])
if j == nil or j.seq ~= tonumber(ARGV[4]) then return {'none', '0'} end
j.bs = j.bs + tonumber(ARGV[5])
if ARGV[6] ~= '' then j.ed = math.max(j.ed, tonumber(ARGV[6])) end
j.fd = math.min(j.fd + tonumber(ARGV[7]), math.max(j.fc, j.fd))
if ending then ended(j, ARGV[8] == '1') end
save(j)
return reply('ok', finishing or ARGV[10] == '1', j)
