-- T7 cancel / fail. ARGV[3] id, ARGV[4] the state, ARGV[5] the error
-- ('' none, else '=' and the message, which may be empty). Reply's 4th
-- item: '1' when this call ended the job (its build and, if cancelled,
-- its downloads stop). The end goes out on the bus too, '<state> <seq>
-- <id>', so the replica building the job or streaming it stops as well.
local j = live(ARGV[3])
if j == nil then return {'not_found', '0'} end
advance(j, NOW, false)
local settled = '0'
if not terminal(j.st) then
  j.st = ARGV[4]
  if ARGV[5] == '' then j.err = nil else j.err = string.sub(ARGV[5], 2) end
  j.f = NOW
  if j.sa == nil then j.sa = NOW end
  j.bld = false
  settled = '1'
  redis.call('PUBLISH', P .. 'bus', ARGV[4] .. ' ' .. string.format('%d', j.seq) .. ' ' .. j.id)
end
save(j)
local out = reply('ok', true, j)
out[4] = settled
return out
