//! The Lua scripts the members run in Redis: each is atomic there, so a
//! count and the decision on it cannot interleave with another member's.
//!
//! Keys, under the fleet's namespace `ns` (`keepalive:fleet:<name>`):
//!
//! * `ns:member:<id>`: a member's heartbeat, a string with a `PX` time to
//!   live of one lease;
//! * `ns:slots:<key>`: a hash, one field per open connection (its token),
//!   valued with its member's id;
//! * `ns:queue:<key>`: a sorted set of waiting requests (tokens) by
//!   ticket, and `ns:waiters:<key>` a hash of their members;
//! * `ns:ticket`: the counter the tickets come from;
//! * `ns:wanted:<key>:<id>`: set for 500 ms when a request of member
//!   `id` had to wait, so each member's "wanted" publish goes out at most
//!   that often per key.
//!
//! Releases need no script: a batch of `HDEL`/`ZREM` per token and a
//! `PUBLISH` per key, pipelined (`member.rs`).
//!
//! Channels: `ns:freed` (a slot of a key was freed, or there is room for
//! the next waiter), with the key as the message, and `ns:wanted` (a
//! member waits for a key: close an idle connection for it), with the key
//! and the waiting member's id on a line of its own.

/// Takes a slot for a token, or queues it.
///
/// KEYS: slots, queue, waiters, ticket, wanted. ARGV: the heartbeat key
/// prefix (`ns:member:`), member id, token, max, channel prefix (`ns`),
/// key. Returns 1 (granted; also when the token already holds a slot) or
/// 0 (queued, or still queued).
pub(super) const ACQUIRE: &str = r#"
local prefix, me, token, max, ns, key = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local function alive(member) return redis.call('EXISTS', prefix .. member) == 1 end
if redis.call('HEXISTS', KEYS[1], token) == 1 then return 1 end
local used = 0
local slots = redis.call('HGETALL', KEYS[1])
for i = 1, #slots, 2 do
  if alive(slots[i + 1]) then used = used + 1 else redis.call('HDEL', KEYS[1], slots[i]) end
end
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then break end
  local member = redis.call('HGET', KEYS[3], head[1])
  if member and alive(member) then break end
  redis.call('ZREM', KEYS[2], head[1])
  redis.call('HDEL', KEYS[3], head[1])
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
local first = #head == 0 or head[1] == token
if used < max and first then
  redis.call('HSET', KEYS[1], token, me)
  redis.call('ZREM', KEYS[2], token)
  redis.call('HDEL', KEYS[3], token)
  if used + 1 < max and redis.call('ZCARD', KEYS[2]) > 0 then
    redis.call('PUBLISH', ns .. ':freed', key)
  end
  return 1
end
if not redis.call('ZSCORE', KEYS[2], token) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)
  redis.call('HSET', KEYS[3], token, me)
end
if used >= max and redis.call('SET', KEYS[5], '1', 'PX', 500, 'NX') then
  redis.call('PUBLISH', ns .. ':wanted', key .. '\n' .. me)
end
return 0
"#;

/// Renews a member's heartbeat. Returns whether it was still there: 0
/// means it expired or Redis lost it, and the member must put its slots
/// back.
///
/// KEYS: the heartbeat. ARGV: the lease in ms.
pub(super) const RENEW: &str = r#"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return existed
"#;
