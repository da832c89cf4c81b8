-- Ends the downloads of replicas that stopped beating (their `alive:` key
-- expired: killed, or cut off from Redis), as interrupted downloads, so a
-- single-use job does not stay `downloading` and its owner's downloads at
-- once are free again. ARGV[3] the calling replica, ARGV[4..] keys of its
-- own claims whose reply never reached it (the client was told the job
-- store did not answer): ended too, if they were made. Reply: how many
-- ended.
local ended_here = 0
for i = 4, #ARGV do
  local claims = claims_of(ARGV[3])
  local claim = redis.call('HGET', claims, ARGV[i])
  if claim then
    if end_claim(claim) then ended_here = ended_here + 1 end
    redis.call('HDEL', claims, ARGV[i])
  end
end
for _, replica in ipairs(redis.call('SMEMBERS', P .. 'replicas')) do
  if replica ~= ARGV[3] and redis.call('EXISTS', P .. 'alive:' .. replica) == 0 then
    local claims = claims_of(replica)
    local all = redis.call('HGETALL', claims)
    for i = 2, #all, 2 do
      if end_claim(all[i]) then ended_here = ended_here + 1 end
    end
    redis.call('DEL', claims)
    redis.call('SREM', P .. 'replicas', replica)
  end
end
return ended_here
