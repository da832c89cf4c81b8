-- T5 progress, and T6 finish when ARGV[8] is '1' or '0' (complete or not).
-- ARGV[3] id, ARGV[4] the claimed job's seq (a later job under the id is
-- not this one), ARGV[5] bytes sent since the last report, ARGV[6] the
-- entries done so far ('' none), ARGV[7] files finished since the last
-- report, ARGV[8] '' for progress alone, ARGV[9] tag|owner of the claim,
-- ARGV[10] '1' when the live feed listens.
local finishing = ARGV[8] ~= ''
if finishing then
  -- Whose download this was counts down even if the job is gone.
  local left = redis.call('HINCRBY', P .. 'dl', ARGV[9], -1)
  if left <= 0 then redis.call('HDEL', P .. 'dl', ARGV[9]) end
end
local j = load(ARGV[3])
if j == nil or j.seq ~= tonumber(ARGV[4]) then return {'none', '0'} end
j.bs = j.bs + tonumber(ARGV[5])
if ARGV[6] ~= '' then j.ed = math.max(j.ed, tonumber(ARGV[6])) end
j.fd = math.min(j.fd + tonumber(ARGV[7]), math.max(j.fc, j.fd))
if finishing then
  j.ad = math.max(j.ad - 1, 0)
  if not terminal(j.st) or j.st == 'done' then
    local complete = ARGV[8] == '1'
    if complete then
      -- Every file the archive held (fewer than planned when a
      -- download-time recheck left some out).
      j.fd = math.min(j.fia, j.fc)
      j.ed = j.et
    end
    if j.su then
      if complete then
        j.st = 'done'
      else
        j.st = 'failed'
        j.err = 'download interrupted'
      end
      j.f = NOW
    end
  end
end
save(j)
return reply('ok', finishing or ARGV[10] == '1', j)
