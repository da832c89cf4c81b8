-- T8 a build ended. ARGV[3] id, ARGV[4] and ARGV[5] the seq and rev the
-- build started from, ARGV[6] '1' built (ARGV[7] the new plan, ARGV[8] its
-- length, '' unknown) or '0' failed (ARGV[7] the reason).
local j = load(ARGV[3])
if j == nil or j.seq ~= tonumber(ARGV[4]) or j.rev ~= tonumber(ARGV[5]) or not j.bld then
  return {'none', '0'}
end
j.bld = false
if ARGV[6] == '1' then
  j.rev = j.rev + 1
  j.alen = tonumber(ARGV[8])
  j.bat = NOW
  redis.call('HSET', jkey(j.id), 'plan', ARGV[7])
else
  advance(j, NOW, false)
  if not terminal(j.st) then
    j.st = 'failed'
    j.err = ARGV[7]
    j.f = NOW
    if j.sa == nil then j.sa = NOW end
  end
end
save(j)
return reply('ok', true, j)
