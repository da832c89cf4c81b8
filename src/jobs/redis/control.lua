-- A control-plane change: numbered, kept in a stream for a replica that
-- misses it on the bus (its subscription was down), and published, all in
-- one step so the numbers, the stream and the bus agree on the order.
-- ARGV[3] the change. Reply: {its number, how many replicas heard it}.
local rev = redis.call('INCR', P .. 'control-rev')
local id = string.format('%d', rev) .. '-1'
redis.call('XADD', P .. 'control', 'MAXLEN', '~', 1000, id, 'c', ARGV[3])
local heard = redis.call('PUBLISH', P .. 'bus', 'control ' .. string.format('%d', rev) .. ' ' .. ARGV[3])
return {rev, heard}
