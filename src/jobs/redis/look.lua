-- T0+T1 get / poll. ARGV[3] id, ARGV[4] '1' for a client's poll, ARGV[5]
-- the dialect the job must be of ('' any): another's is not touched.
local j = load(ARGV[3])
if j == nil or (ARGV[5] ~= '' and ARGV[5] ~= j.tag) then return {'none', '0'} end
j = live(ARGV[3])
if j == nil then return {'none', '0'} end
local moved = advanced(j, ARGV[4] == '1')
return reply('ok', moved, j)
