-- T10 acknowledge, then the job as get shows it. ARGV[3] id.
local j = load(ARGV[3])
if j == nil then return {'none', '0'} end
redis.call('HSET', jkey(j.id), 'ack', '1')
j.ack = '1'
redis.call('ZREM', P .. 'open:' .. lists(j), j.id)
if reclaimable(j, NOW) then
  forget(j)
  return {'none', '0'}
end
local moved = advanced(j, false)
return reply('ok', moved, j)
