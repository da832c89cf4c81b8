-- T2 create. ARGV[3] id, ARGV[4] tag|owner, ARGV[5] the record (made in
-- Rust from `Job::new` advanced to now), ARGV[6..8] plan, sources, fault.
-- Reply: {'ok', seq} or {'conflict'}.
local id, owner = ARGV[3], ARGV[4]
if live(id) ~= nil then return {'conflict'} end
local seq = redis.call('INCR', P .. 'seq')
local j = cmsgpack.unpack(ARGV[5])
j.seq = seq
j.rev = 1
redis.call('HSET', jkey(id), 'j', cmsgpack.pack(j), 'plan', ARGV[6], 'src', ARGV[7],
  'fault', ARGV[8])
redis.call('ZADD', P .. 'own:' .. owner, seq, id)
redis.call('ZADD', P .. 'open:' .. owner, seq, id)
redis.call('ZADD', P .. 'all', seq, id)
return {'ok', seq}
