-- T0+T1 get / poll. ARGV[3] id, ARGV[4] '1' for a client's poll.
local j = live(ARGV[3])
if j == nil then return {'none', '0'} end
local moved = advanced(j, ARGV[4] == '1')
return reply('ok', moved, j)
