-- T11 remove. ARGV[3] id. One past its retention is gone already.
local j = live(ARGV[3])
if j == nil then return {'none', '0'} end
forget(j)
return reply('ok', false, j)
