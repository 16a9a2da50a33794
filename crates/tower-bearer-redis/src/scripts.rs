//! The Lua scripts behind [`RedisStore`](crate::RedisStore)'s operations, one per operation
//! that must be atomic.
//!
//! Every script touches only keys of one [`StoreKey`](tower_bearer::store::StoreKey), which
//! share its hash tag, so each runs on one Redis Cluster slot.
//!
//! The refresh-token record is a hash with `gen` (the generation, in decimal), `val` (the
//! sealed refresh token) and, while a replica presents it, `presenting` (that replica's
//! holder id). A key holds a *valid record* when it is a hash whose `gen` is decimal digits
//! of a number below 2^53 (exact in Lua's doubles) and that has a `val`. Anything else at
//! the key (another type, a bad `gen`, no `val`) is no record: it is never presented and
//! any write replaces it. The settle marker is a key of its own, set with `PX`.

use std::sync::LazyLock;

use redis::Script;

/// `valid_generation(key)`: the generation of the valid record at `key`, or `nil`.
const VALID_RECORD: &str = r"
local function valid_generation(key)
  if redis.call('TYPE', key).ok ~= 'hash' then
    return nil
  end
  local gen = redis.call('HGET', key, 'gen')
  if not gen or not string.match(gen, '^%d+$') then
    return nil
  end
  gen = tonumber(gen)
  if gen >= 9007199254740992 or redis.call('HEXISTS', key, 'val') == 0 then
    return nil
  end
  return gen
end
";

fn with_valid_record(body: &str) -> Script {
    Script::new(&format!("{VALID_RECORD}{body}"))
}

/// `KEYS[1]` the token key. `{type}`, and for a string `{type, value, pttl}`: the value and
/// its remaining time to live, read together.
pub(crate) static READ_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local kind = redis.call('TYPE', KEYS[1]).ok
          if kind ~= 'string' then
            return {kind}
          end
          return {kind, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}",
    )
});

/// Takes the lease if nobody holds it. A lease key without an expiry (not written by us:
/// ours always have one) gets one, so it blocks the fleet for one lease time at most.
pub(crate) static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return 1
          end
          if redis.call('PTTL', KEYS[1]) == -1 then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
          end
          return 0",
    )
});

/// Deletes the lease only if `holder` still holds it.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// `KEYS[1]` the record, `KEYS[2]` the settle marker. `{type, settling}`, and for a hash
/// `{type, settling, gen, val, presenting}` (each field `nil` when absent): the record as
/// it is and whether a settle is running, read together.
pub(crate) static READ_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local settling = redis.call('EXISTS', KEYS[2])
          local kind = redis.call('TYPE', KEYS[1]).ok
          if kind ~= 'hash' then
            return {kind, settling}
          end
          local fields = redis.call('HMGET', KEYS[1], 'gen', 'val', 'presenting')
          return {kind, settling, fields[1], fields[2], fields[3]}",
    )
});

/// `KEYS[1]` the record, `KEYS[2]` the settle marker; `ARGV[1]` a generation, `ARGV[2]` a
/// holder. Records `ARGV[2]`'s intent to present generation `ARGV[1]`: only if no settle is
/// running, the record is valid and of that generation, and no other holder's intent is
/// recorded. 1 if the intent is `ARGV[2]`'s now.
pub(crate) static BEGIN_PRESENTING: LazyLock<Script> = LazyLock::new(|| {
    with_valid_record(
        r"if redis.call('EXISTS', KEYS[2]) == 1 then
            return 0
          end
          local gen = valid_generation(KEYS[1])
          if gen == nil or gen ~= tonumber(ARGV[1]) then
            return 0
          end
          local presenting = redis.call('HGET', KEYS[1], 'presenting')
          if presenting then
            return presenting == ARGV[2] and 1 or 0
          end
          redis.call('HSET', KEYS[1], 'presenting', ARGV[2])
          return 1",
    )
});

/// `KEYS[1]` the record; `ARGV[1]` a generation, `ARGV[2]` a holder. Clears the intent if
/// the record is valid, of that generation, and the intent is `ARGV[2]`'s. 1 if cleared.
pub(crate) static END_PRESENTING: LazyLock<Script> = LazyLock::new(|| {
    with_valid_record(
        r"local gen = valid_generation(KEYS[1])
          if gen == nil or gen ~= tonumber(ARGV[1]) then
            return 0
          end
          if redis.call('HGET', KEYS[1], 'presenting') ~= ARGV[2] then
            return 0
          end
          redis.call('HDEL', KEYS[1], 'presenting')
          return 1",
    )
});

/// `KEYS[1]` the record, `KEYS[2]` the settle marker; `ARGV[1]` the generation written
/// (below 2^53), `ARGV[2]` the sealed refresh token, `ARGV[3]` the generation of a damaged
/// value this write may replace (or empty), `ARGV[4]` a settle in milliseconds (or empty).
///
/// Writes a fresh record (no intent) if the key holds no valid record, a record of an
/// older generation, or one still of generation `ARGV[3]`. After a write, the settle
/// marker's time to live becomes the longer of what it has left and `ARGV[4]`. 1 if it
/// wrote.
pub(crate) static STORE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    with_valid_record(
        r"local written = tonumber(ARGV[1])
          local current = valid_generation(KEYS[1])
          local replace = current == nil or current < written
            or (ARGV[3] ~= '' and current == tonumber(ARGV[3]))
          if not replace then
            return 0
          end
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'val', ARGV[2])
          if ARGV[4] ~= '' then
            local settle = tonumber(ARGV[4])
            -- PTTL is -2 for no marker and -1 for one without expiry (not ours): both shorter.
            if redis.call('PTTL', KEYS[2]) < settle then
              redis.call('SET', KEYS[2], '1', 'PX', settle)
            end
          end
          return 1",
    )
});
