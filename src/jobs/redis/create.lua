-- T2 create. ARGV[3] id, ARGV[4] tag|owner, ARGV[5..] the job's fields as
-- field/value pairs (made in Rust from `Job::new` advanced to now).
-- Reply: {'ok', seq} or {'conflict'}.
local id, owner = ARGV[3], ARGV[4]
if live(id) ~= nil then return {'conflict'} end
local seq = fmt(redis.call('INCR', P .. 'seq'))
local args = {}
for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', jkey(id), 'seq', seq, 'rev', '1', unpack(args))
redis.call('ZADD', P .. 'own:' .. owner, seq, id)
redis.call('ZADD', P .. 'open:' .. owner, seq, id)
redis.call('ZADD', P .. 'all', seq, id)
return {'ok', seq}
