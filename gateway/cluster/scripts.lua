-- uvgate's cluster state: every change is one call of this script, so every decision
-- ("first connection", "last subscriber", "is this node dead") is taken once, atomically,
-- for the whole cluster. Called as EVALSHA sha 0 prefix op args...
--
-- Keys (P = prefix, A = app id, C = channel, N = node key, U = user id, S = socket id):
--   P:nodes                      zset  N -> last heartbeat (ms)
--   P:node:N                     str   the node's claim (PX lease)
--   P:node:N:subs                hash  A\31C -> this node's subscriptions to C
--   P:node:N:members             hash  A\31C\31S -> U (this node's presence memberships)
--   P:node:N:users               hash  A\31U -> this node's signed-in connections of U
--   P:node:N:conns               hash  A -> this node's connections of A
--   P:app:A:channels             hash  C -> subscriptions in the cluster (occupied if > 0)
--   P:app:A:p:C:n / :i           hash  U -> connections of U on presence channel C / info
--   P:app:A:online               hash  U -> signed-in connections of U in the cluster
--   P:app:A:conns                str   connections of A in the cluster
--   P:app:A:cache:C              str   the cached event (PX = the app's cache TTL)
--   P:wh:delayed                 zset  A\31name\31C\31U -> due (ms): vacated / removed
--   P:wh:outbox                  stream a=A e=<event json>: webhook events to deliver
-- PUB/SUB channels: P:app:A:c:C (channel), P:app:A:u:U (a user), P:app:A:w:U (its watchers)

local SEP = '\31'
local P = ARGV[1]
local op = ARGV[2]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function app_key(app, rest) return P .. ':app:' .. app .. ':' .. rest end
local function node_key(node, rest) return P .. ':node:' .. node .. ':' .. rest end

-- the D message of protocol/cluster.py
local function deliver_msg(payload, exclude)
  exclude = exclude or ''
  return 'D' .. string.char(#exclude) .. exclude .. payload
end

-- A webhook event that fires now, unless it cancels a delayed one (a quick rejoin).
local function hook_now(app, name, channel, user, cancels)
  if cancels then
    local delayed = table.concat({app, cancels, channel, user or ''}, SEP)
    if redis.call('ZREM', P .. ':wh:delayed', delayed) == 1 then return end
  end
  local event = {name = name, channel = channel}
  if user and user ~= '' then event.user_id = user end
  redis.call('XADD', P .. ':wh:outbox', 'MAXLEN', '~', 100000, '*', 'a', app, 'e', cjson.encode(event))
end

-- vacated / member_removed wait (~3 s) and are cancelled by a rejoin on any node
local function hook_later(app, name, channel, user, delay)
  local member = table.concat({app, name, channel, user or ''}, SEP)
  redis.call('ZADD', P .. ':wh:delayed', now_ms() + delay, member)
end

local function member_removed_payload(channel, user)
  return cjson.encode({event = 'pusher_internal:member_removed', channel = channel,
                       data = cjson.encode({user_id = user})})
end

local function watchlist_payload(name, user)
  return cjson.encode({event = 'pusher_internal:watchlist_events',
                       data = cjson.encode({events = {{name = name, user_ids = {user}}}})})
end

-- ---------------------------------------------------------------- subscriptions
local function sub_adjust(app, channel, node, delta, hooks, delay)
  local total = redis.call('HINCRBY', app_key(app, 'channels'), channel, delta)
  if total <= 0 then redis.call('HDEL', app_key(app, 'channels'), channel) end
  local field = app .. SEP .. channel
  local mine = redis.call('HINCRBY', node_key(node, 'subs'), field, delta)
  if mine <= 0 then redis.call('HDEL', node_key(node, 'subs'), field) end
  if hooks then
    if delta > 0 and total == delta then hook_now(app, 'channel_occupied', channel, nil, 'channel_vacated') end
    if delta < 0 and total <= 0 then hook_later(app, 'channel_vacated', channel, nil, delay) end
  end
  return total
end

-- presence: count the socket as user; true if it is the user's first connection here
local function member_add(app, channel, node, socket, user, info, max, hooks)
  local counts = app_key(app, 'p:' .. channel .. ':n')
  local have = redis.call('HGET', counts, user)
  if not have and max > 0 and redis.call('HLEN', counts) >= max then return nil end
  redis.call('HINCRBY', counts, user, 1)
  redis.call('HSET', node_key(node, 'members'), table.concat({app, channel, socket}, SEP), user)
  if have then return false end
  redis.call('HSET', app_key(app, 'p:' .. channel .. ':i'), user, info)
  if hooks then hook_now(app, 'member_added', channel, user, 'member_removed') end
  return true
end

-- true if it was the user's last connection to the channel (member_removed is published)
local function member_remove(app, channel, node, socket, hooks, delay)
  local field = table.concat({app, channel, socket}, SEP)
  local user = redis.call('HGET', node_key(node, 'members'), field)
  if not user then return false end
  redis.call('HDEL', node_key(node, 'members'), field)
  local counts = app_key(app, 'p:' .. channel .. ':n')
  if redis.call('HINCRBY', counts, user, -1) > 0 then return false end
  redis.call('HDEL', counts, user)
  redis.call('HDEL', app_key(app, 'p:' .. channel .. ':i'), user)
  redis.call('PUBLISH', app_key(app, 'c:' .. channel), deliver_msg(member_removed_payload(channel, user)))
  if hooks then hook_later(app, 'member_removed', channel, user, delay) end
  return true
end

local function users_adjust(app, node, user, delta)
  local total = redis.call('HINCRBY', app_key(app, 'online'), user, delta)
  local field = app .. SEP .. user
  local mine = redis.call('HINCRBY', node_key(node, 'users'), field, delta)
  if mine <= 0 then redis.call('HDEL', node_key(node, 'users'), field) end
  if total <= 0 then
    redis.call('HDEL', app_key(app, 'online'), user)
    if delta < 0 then
      redis.call('PUBLISH', app_key(app, 'w:' .. user), deliver_msg(watchlist_payload('offline', user)))
    end
  end
  return total
end

local function conns_adjust(app, node, delta)
  redis.call('HINCRBY', node_key(node, 'conns'), app, delta)
  if tonumber(redis.call('HGET', node_key(node, 'conns'), app)) <= 0 then
    redis.call('HDEL', node_key(node, 'conns'), app)
  end
  local total = redis.call('INCRBY', app_key(app, 'conns'), delta)
  if total <= 0 then redis.call('DEL', app_key(app, 'conns')) end
  return total
end

-- --------------------------------------------------------------------- ops
local A = ARGV

if op == 'connect' then              -- app node
  return conns_adjust(A[3], A[4], 1)

elseif op == 'disconnect' then       -- app node
  if not redis.call('HGET', node_key(A[4], 'conns'), A[3]) then return 0 end
  return conns_adjust(A[3], A[4], -1)

elseif op == 'join' then
  -- app channel node socket user info max hooks(0/1) added_payload cache(0/1)
  local app, channel, node, socket, user = A[3], A[4], A[5], A[6], A[7]
  local hooks = A[10] == '1'
  local first = false
  local max = tonumber(A[9])
  if user ~= '' and max > 0 then  -- full: refused before anything changes
    local counts = app_key(app, 'p:' .. channel .. ':n')
    if not redis.call('HGET', counts, user) and redis.call('HLEN', counts) >= max then
      return {'full'}
    end
  end
  -- occupied before member_added, as one node tells them
  local total = sub_adjust(app, channel, node, 1, hooks, 0)
  if user ~= '' then first = member_add(app, channel, node, socket, user, A[8], 0, hooks) end
  -- The join's place in the channel's stream: what the channel gets from now on is the
  -- joiner's too (protocol/cluster.py "J"; member_added rides along when first).
  local flag, payload = '0', ''
  if first then flag, payload = '1', A[11] end
  redis.call('PUBLISH', app_key(app, 'c:' .. channel), 'J' .. string.char(#socket) .. socket .. flag .. payload)
  local roster = false
  if user ~= '' then roster = redis.call('HGETALL', app_key(app, 'p:' .. channel .. ':i')) end
  local cached = false
  if A[12] == '1' then cached = redis.call('GET', app_key(app, 'cache:' .. channel)) end
  return {'ok', total, first and 1 or 0, roster, cached}

elseif op == 'leave' then
  -- app channel node socket hooks delay_ms
  local app, channel, node = A[3], A[4], A[5]
  if not redis.call('HGET', node_key(node, 'subs'), app .. SEP .. channel) then return -1 end
  local hooks, delay = A[7] == '1', tonumber(A[8])
  member_remove(app, channel, node, A[6], hooks, delay)
  return sub_adjust(app, channel, node, -1, hooks, delay)

elseif op == 'sign_in' then
  -- app node user online_payload watched...
  local app, node, user = A[3], A[4], A[5]
  if users_adjust(app, node, user, 1) == 1 then
    redis.call('PUBLISH', app_key(app, 'w:' .. user), A[6])
  end
  local online = {}
  for i = 7, #A do
    if redis.call('HEXISTS', app_key(app, 'online'), A[i]) == 1 then online[#online + 1] = A[i] end
  end
  return online

elseif op == 'sign_out' then         -- app node user
  if not redis.call('HGET', node_key(A[4], 'users'), A[3] .. SEP .. A[5]) then return -1 end
  return users_adjust(A[3], A[4], A[5], -1)

elseif op == 'trigger' then
  -- pubsub message cache_key ttl_ms cache_value: the cache and the event in one step, so
  -- a joiner gets one or the other (its join is before or after this in the stream)
  if A[5] ~= '' then redis.call('SET', A[5], A[7], 'PX', A[6]) end
  return redis.call('PUBLISH', A[3], A[4])

elseif op == 'resync_subs' then      -- app channel node count hooks delay: set this node's count
  local app, channel, node = A[3], A[4], A[5]
  local have = tonumber(redis.call('HGET', node_key(node, 'subs'), app .. SEP .. channel) or '0')
  local delta = tonumber(A[6]) - have
  if delta == 0 then return 0 end
  sub_adjust(app, channel, node, delta, A[7] == '1', tonumber(A[8]))
  return delta

elseif op == 'member_add' then       -- app channel node socket user info hooks added_payload
  local app, channel, user = A[3], A[4], A[7]
  local first = member_add(app, channel, A[5], A[6], user, A[8], 0, A[9] == '1')
  if first then
    redis.call('PUBLISH', app_key(app, 'c:' .. channel), deliver_msg(A[10], A[6]))
  end
  return first and 1 or 0

elseif op == 'member_remove' then    -- app channel node socket hooks delay
  return member_remove(A[3], A[4], A[5], A[6], A[7] == '1', tonumber(A[8])) and 1 or 0

elseif op == 'gone' then             -- app channel user hooks delay: announce a departure
  -- A user left while this node could not reach Redis, and Redis lost the membership
  -- meanwhile (a restart without persistence): if nobody re-registered the user, the
  -- others still list it.
  local app, channel, user = A[3], A[4], A[5]
  if redis.call('HEXISTS', app_key(app, 'p:' .. channel .. ':n'), user) == 1 then return 0 end
  redis.call('PUBLISH', app_key(app, 'c:' .. channel), deliver_msg(member_removed_payload(channel, user)))
  if A[6] == '1' then hook_later(app, 'member_removed', channel, user, tonumber(A[7])) end
  return 1

elseif op == 'resync_users' then     -- app node user count online_payload
  local app, node, user = A[3], A[4], A[5]
  local have = tonumber(redis.call('HGET', node_key(node, 'users'), app .. SEP .. user) or '0')
  local delta = tonumber(A[6]) - have
  if delta == 0 then return 0 end
  if users_adjust(app, node, user, delta) == delta and delta > 0 then
    redis.call('PUBLISH', app_key(app, 'w:' .. user), A[7])
  end
  return delta

elseif op == 'resync_conns' then     -- app node count
  local have = tonumber(redis.call('HGET', node_key(A[4], 'conns'), A[3]) or '0')
  local delta = tonumber(A[5]) - have
  if delta ~= 0 then conns_adjust(A[3], A[4], delta) end
  return delta

elseif op == 'state_of' then         -- node: what this node holds, for a resync diff
  return {redis.call('HGETALL', node_key(A[3], 'subs')),
          redis.call('HGETALL', node_key(A[3], 'members')),
          redis.call('HGETALL', node_key(A[3], 'users')),
          redis.call('HGETALL', node_key(A[3], 'conns'))}

elseif op == 'claim' then            -- node value ttl_ms: 1 if this node key is ours now
  if not redis.call('SET', P .. ':node:' .. A[3], A[4], 'NX', 'PX', A[5]) then return 0 end
  redis.call('ZADD', P .. ':nodes', now_ms(), A[3])
  return 1

elseif op == 'heartbeat' then        -- node value ttl_ms: 0 if our claim was lost (reaped)
  if redis.call('GET', P .. ':node:' .. A[3]) ~= A[4] then return 0 end
  redis.call('PEXPIRE', P .. ':node:' .. A[3], A[5])
  redis.call('ZADD', P .. ':nodes', now_ms(), A[3])
  return 1

elseif op == 'release' then          -- node value: a clean stop
  if redis.call('GET', P .. ':node:' .. A[3]) == A[4] then
    redis.call('DEL', P .. ':node:' .. A[3])
  end
  return 1

elseif op == 'reap' then
  -- node stale_ms batch delay: undo up to batch entries of a node whose heartbeat is older
  -- than stale_ms and whose claim is gone; re-checked here, so two reapers never both act.
  local node, stale, batch, delay = A[3], tonumber(A[4]), tonumber(A[5]), tonumber(A[6])
  local seen = redis.call('ZSCORE', P .. ':nodes', node)
  if redis.call('EXISTS', P .. ':node:' .. node) == 1 then return 'alive' end
  if seen and tonumber(seen) > now_ms() - stale then return 'alive' end
  local done = 0
  local members = redis.call('HGETALL', node_key(node, 'members'))
  for i = 1, #members, 2 do
    if done >= batch then return 'more' end
    local app, channel, socket = string.match(members[i], '^(.-)\31(.-)\31(.*)$')
    member_remove(app, channel, node, socket, true, delay)
    done = done + 1
  end
  local subs = redis.call('HGETALL', node_key(node, 'subs'))
  for i = 1, #subs, 2 do
    if done >= batch then return 'more' end
    local app, channel = string.match(subs[i], '^(.-)\31(.*)$')
    sub_adjust(app, channel, node, -tonumber(subs[i + 1]), true, delay)
    done = done + 1
  end
  local users = redis.call('HGETALL', node_key(node, 'users'))
  for i = 1, #users, 2 do
    if done >= batch then return 'more' end
    local app, user = string.match(users[i], '^(.-)\31(.*)$')
    users_adjust(app, node, user, -tonumber(users[i + 1]))
    done = done + 1
  end
  local conns = redis.call('HGETALL', node_key(node, 'conns'))
  for i = 1, #conns, 2 do
    conns_adjust(conns[i], node, -tonumber(conns[i + 1]))
  end
  redis.call('ZREM', P .. ':nodes', node)
  return 'done'

elseif op == 'move_due' then         -- limit: delayed webhook events that are due -> outbox
  local due = redis.call('ZRANGEBYSCORE', P .. ':wh:delayed', '-inf', now_ms(), 'LIMIT', 0, tonumber(A[3]))
  for _, member in ipairs(due) do
    redis.call('ZREM', P .. ':wh:delayed', member)
    local app, name, channel, user = string.match(member, '^(.-)\31(.-)\31(.-)\31(.*)$')
    local event = {name = name, channel = channel}
    if user ~= '' then event.user_id = user end
    redis.call('XADD', P .. ':wh:outbox', 'MAXLEN', '~', 100000, '*', 'a', app, 'e', cjson.encode(event))
  end
  return #due
end
return redis.error_reply('unknown op ' .. tostring(op))
