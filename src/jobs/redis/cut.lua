-- T9 a download-time recheck cut the archive. ARGV[3] id, ARGV[4] and
-- ARGV[5] the seq and rev it was cut from, ARGV[6] the plan, ARGV[7] the
-- sources, ARGV[8] the length ('' unknown), ARGV[9] entries, ARGV[10]
-- files in it, ARGV[11] and ARGV[12] files and folders it left out.
local j = load(ARGV[3])
if j == nil or j.seq ~= tonumber(ARGV[4]) or j.rev ~= tonumber(ARGV[5]) then
  return {'none', '0'}
end
j.rev = j.rev + 1
j.alen = tonumber(ARGV[8])
j.et = tonumber(ARGV[9])
j.fia = tonumber(ARGV[10])
j.fs = j.fs + tonumber(ARGV[11])
j.fos = j.fos + tonumber(ARGV[12])
redis.call('HSET', jkey(j.id), 'plan', ARGV[6], 'src', ARGV[7])
save(j)
return reply('ok', false, j)
