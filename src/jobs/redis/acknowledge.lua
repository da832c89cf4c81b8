-- T10 acknowledge, then the job as get shows it. ARGV[3] id.
local j = load(ARGV[3])
if j == nil then return {'none', '0'} end
local was = seen(j)
j.ack = true
redis.call('ZREM', P .. 'open:' .. lists(j), j.id)
if reclaimable(j, NOW) then
  forget(j)
  return {'none', '0'}
end
advance(j, NOW, false)
save(j, was)
return reply('ok', was.st ~= j.st or was.s0 ~= j.s0 or was.s1 ~= j.s1, j)
