//! The shared limiter's Redis side: two Lua scripts and how their arguments and replies are laid
//! out. Sockets are the gateway's business; this module is pure so it can be tested without one.
//!
//! - **admit** decides a whole [`Demand`] in one script call — atomically for every bucket of the
//!   request — using Redis server time (`TIME`), so every replica sees the same windows. It
//!   charges all buckets or none.
//! - **settle** trues up the reserved amounts to real usage in the windows they went into, and
//!   releases concurrency leases.
//!
//! Keys: `{prefix}:<bucket>` — the `{prefix}` hash tag puts every bucket in one Redis Cluster
//! slot, which is what lets one script see all buckets of a request. Rate buckets are hashes
//! of window index → count (expiring after two windows); budgets are hashes of calendar window id
//! → nano-USD (expiring a day after the window ends; lifetime never); concurrency buckets are
//! sorted sets of lease ids scored by lease expiry, so a replica that dies cannot hold slots
//! for longer than the lease.

use std::sync::Arc;

use crate::limit::{BucketView, Charge, Demand, Denied, Grant, Reserved, Window};

/// Decide and charge a demand. `KEYS` = bucket keys; `ARGV` = n, lease id, lease ms, then five
/// values per bucket: kind (`s` sliding, `b` budget, `c` concurrency), limit, amount, window
/// (ms for `s`, id for `b`, `-` for `c`), expire-at ms for `b` (0 = never).
///
/// Reply: `{1, now_ms, [index, used_after, reset_ms] × n}` when admitted, or
/// `{0, now_ms, denied_bucket (1-based), used, retry_after_ms (-1 = never), [used, reset_ms] × n}`.
pub const ADMIT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_ms = tonumber(ARGV[3])
local used = {}
local reset = {}
local idx = {}
local deny = 0
local deny_retry = -1
for i = 1, n do
  local b = 3 + (i - 1) * 5
  local kind = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local amount = tonumber(ARGV[b + 3])
  local p = ARGV[b + 4]
  local u = 0
  local retry = -1
  if kind == 's' then
    local w = tonumber(p)
    local ix = math.floor(now / w)
    local el = now - ix * w
    local v = redis.call('HMGET', KEYS[i], tostring(ix), tostring(ix - 1))
    local curr = tonumber(v[1] or '0') or 0
    local prev = tonumber(v[2] or '0') or 0
    u = math.ceil(prev * (w - el) / w) + curr
    idx[i] = ix
    if curr > 0 then reset[i] = (w - el) + w elseif prev > 0 then reset[i] = w - el else reset[i] = 0 end
    if u + amount > limit and amount <= limit then
      local room = limit - amount
      if curr <= room and prev > 0 then
        local left = math.floor((room - curr) * w / prev)
        if left > w then left = w end
        retry = (w - left) - el + 1
        if retry < 0 then retry = 0 end
      else
        local to_next = w - el
        if curr == 0 then retry = to_next else
          local left = math.floor(room * w / curr)
          if left > w then left = w end
          retry = to_next + (w - left) + 1
        end
      end
    end
  elseif kind == 'b' then
    u = tonumber(redis.call('HGET', KEYS[i], p) or '0') or 0
    idx[i] = 0
    local exp = tonumber(ARGV[b + 5])
    if exp > 0 then
      reset[i] = exp - 86400000 - now
      if reset[i] < 0 then reset[i] = 0 end
      if amount <= limit then retry = reset[i] end
    else
      reset[i] = 0
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    u = redis.call('ZCARD', KEYS[i])
    idx[i] = 0
    reset[i] = 0
    retry = 1000
  end
  used[i] = u
  if deny == 0 and u + amount > limit then
    deny = i
    deny_retry = retry
  end
end
if deny > 0 then
  local out = {0, now, deny, used[deny], deny_retry}
  for i = 1, n do
    out[#out + 1] = used[i]
    out[#out + 1] = reset[i]
  end
  return out
end
local out = {1, now}
for i = 1, n do
  local b = 3 + (i - 1) * 5
  local kind = ARGV[b + 1]
  local amount = tonumber(ARGV[b + 3])
  local p = ARGV[b + 4]
  if kind == 's' then
    local w = tonumber(p)
    local ix = idx[i]
    if amount > 0 then redis.call('HINCRBY', KEYS[i], tostring(ix), amount) end
    redis.call('HDEL', KEYS[i], tostring(ix - 2))
    redis.call('PEXPIRE', KEYS[i], 2 * w + 1000)
    local el = now - ix * w
    reset[i] = (w - el) + w
  elseif kind == 'b' then
    if amount > 0 then redis.call('HINCRBY', KEYS[i], p, amount) end
    local exp = tonumber(ARGV[b + 5])
    if exp > 0 then redis.call('PEXPIREAT', KEYS[i], exp) end
  else
    redis.call('ZADD', KEYS[i], now + lease_ms, lease)
    redis.call('PEXPIRE', KEYS[i], lease_ms * 2)
  end
  out[#out + 1] = idx[i]
  out[#out + 1] = used[i] + amount
  out[#out + 1] = reset[i]
end
return out
"#;

/// True up reservations, several requests' at once (the gateway batches what queued while the
/// previous call was out). `KEYS` = every job's bucket keys, in order; `ARGV` = the number of
/// jobs, then per job: its bucket count n, its lease id, then four values per bucket: kind (`s`
/// rate, `r` rate use replayed from the local fallback, `b` budget, `c` concurrency), delta
/// (signed), window index (`s`, `r`) or id (`b`), expire-at ms (`b`, 0 = never) or the key's time
/// to live should this call create it (`r`). Redis runs the script with no other command in
/// between.
/// Counts never go below zero; a change to a rate window Redis no longer (or never) held is left
/// alone, except that replayed use (`r`) is added to it.
pub const SETTLE_LUA: &str = r#"
local jobs = tonumber(ARGV[1])
local a = 1
local k = 0
for j = 1, jobs do
  local n = tonumber(ARGV[a + 1])
  local lease = ARGV[a + 2]
  a = a + 2
  for i = 1, n do
    local key = KEYS[k + i]
    local kind = ARGV[a + 1]
    local delta = tonumber(ARGV[a + 2])
    local p = ARGV[a + 3]
    if kind == 'c' then
      redis.call('ZREM', key, lease)
    elseif delta ~= 0 then
      if kind == 's' or kind == 'r' then
        if redis.call('HEXISTS', key, p) == 1 then
          local v = redis.call('HINCRBY', key, p, delta)
          if v < 0 then redis.call('HSET', key, p, 0) end
        elseif kind == 'r' and delta > 0 then
          -- Use admitted elsewhere (the local fallback during an outage) into a window Redis
          -- has not seen: add it, and give a key this creates the rate buckets' expiry.
          redis.call('HINCRBY', key, p, delta)
          local ttl = tonumber(ARGV[a + 4])
          if ttl > 0 and redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ttl) end
        end
      else
        local v = redis.call('HINCRBY', key, p, delta)
        if v < 0 then redis.call('HSET', key, p, 0) end
        local exp = tonumber(ARGV[a + 4])
        if exp > 0 then redis.call('PEXPIREAT', key, exp) end
      end
    end
    a = a + 4
  end
  k = k + n
end
return jobs
"#;

/// Budget keys live a day past their window so a late settle still finds them.
pub const BUDGET_GRACE_MS: u64 = 86_400_000;

/// The Redis key of a bucket.
pub fn redis_key(prefix: &str, bucket: &str) -> String {
    format!("{{{prefix}}}:{bucket}")
}

/// `KEYS` and `ARGV` of an admit call, every limit multiplied by `scale`.
pub fn admit_args(
    prefix: &str,
    demand: &Demand,
    lease: &str,
    lease_ms: u64,
) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::with_capacity(demand.charges.len());
    let mut argv = Vec::with_capacity(3 + demand.charges.len() * 5);
    argv.push(demand.charges.len().to_string());
    argv.push(lease.to_string());
    argv.push(lease_ms.to_string());
    for c in &demand.charges {
        keys.push(redis_key(prefix, &c.bucket));
        let (kind, window, exp) = match &c.window {
            Window::Sliding { ms } => ("s", ms.to_string(), 0),
            Window::Calendar { id, end_ms } => (
                "b",
                id.to_string(),
                end_ms.map_or(0, |e| e + BUDGET_GRACE_MS),
            ),
            Window::InFlight => ("c", "-".to_string(), 0),
        };
        argv.push(kind.to_string());
        argv.push(c.limit.to_string());
        argv.push(c.amount.to_string());
        argv.push(window);
        argv.push(exp.to_string());
    }
    (keys, argv)
}

/// Decode an admit reply.
pub fn admit_reply(
    demand: &Demand,
    reply: &[i64],
    lease: &str,
) -> Result<Grant, Result<Denied, String>> {
    let n = demand.charges.len();
    let get = |i: usize| -> Result<i64, String> {
        reply
            .get(i)
            .copied()
            .ok_or_else(|| format!("short reply from the admit script ({} values)", reply.len()))
    };
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    let view = |c: &Charge, used: u64, reset: i64| BucketView {
        limit: c.limit,
        remaining: c.limit.saturating_sub(used),
        reset_ms: u(reset),
    };
    match get(0).map_err(Err)? {
        1 => {
            let mut reserved = Vec::with_capacity(n);
            let mut views = Vec::with_capacity(n);
            for (i, c) in demand.charges.iter().enumerate() {
                let base = 2 + i * 3;
                let index = get(base).map_err(Err)?;
                let used_after = get(base + 1).map_err(Err)?;
                let reset = get(base + 2).map_err(Err)?;
                views.push(view(c, u(used_after), reset));
                reserved.push(Reserved {
                    bucket: c.bucket.clone(),
                    metric: c.metric,
                    window: c.window.clone(),
                    window_index: u(index),
                    amount: c.amount,
                });
            }
            Ok(Grant {
                reserved,
                views,
                lease: Some(Arc::from(lease)),
                shadow: Vec::new(),
            })
        }
        0 => {
            let which = usize::try_from(get(2).map_err(Err)?).unwrap_or(1).max(1) - 1;
            let used = u(get(3).map_err(Err)?);
            let retry = get(4).map_err(Err)?;
            let mut views = Vec::with_capacity(n);
            for (i, c) in demand.charges.iter().enumerate() {
                let base = 5 + i * 2;
                views.push(view(
                    c,
                    u(get(base).map_err(Err)?),
                    get(base + 1).map_err(Err)?,
                ));
            }
            let c = demand.charges.get(which).ok_or_else(|| {
                Err("admit script named a bucket that does not exist".to_string())
            })?;
            Err(Ok(Denied {
                index: which,
                used,
                limit: c.limit,
                amount: c.amount,
                retry_after_ms: (retry >= 0).then(|| u(retry)),
                views,
            }))
        }
        other => Err(Err(format!("unexpected admit reply tag {other}"))),
    }
}

/// The settle entries that replay, into Redis, the use a request admitted by the local
/// fallback made of the rate windows (`now_ms` local time): only windows that still count
/// (the current and the previous one), so that when Redis returns the shared counters include
/// what the replicas admitted without it.
pub fn replay_entries(
    prefix: &str,
    reserved: &[Reserved],
    actual: &crate::limit::Actual,
    now_ms: u64,
) -> Vec<SettleEntry> {
    reserved
        .iter()
        .filter_map(|r| {
            let Window::Sliding { ms } = r.window else {
                return None;
            };
            // Requests count as reserved (one each); tokens as used.
            let amount = r.settled_amount(actual).unwrap_or(r.amount);
            let live = r.window_index + 1 >= now_ms / ms.max(1);
            (live && amount > 0).then(|| SettleEntry {
                key: redis_key(prefix, &r.bucket),
                kind: "r",
                delta: i64::try_from(amount).unwrap_or(i64::MAX),
                window: r.window_index.to_string(),
                expire_at_ms: 2 * ms + 1000,
            })
        })
        .collect()
}

/// One reservation's part of a settle call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleEntry {
    pub key: String,
    pub kind: &'static str,
    pub delta: i64,
    pub window: String,
    pub expire_at_ms: u64,
}

/// The entries of a settle call for a grant (entries with nothing to do are left out).
pub fn settle_entries(
    prefix: &str,
    reserved: &[Reserved],
    actual: &crate::limit::Actual,
) -> Vec<SettleEntry> {
    reserved
        .iter()
        .filter_map(|r| {
            let key = redis_key(prefix, &r.bucket);
            match &r.window {
                Window::InFlight => Some(SettleEntry {
                    key,
                    kind: "c",
                    delta: 0,
                    window: "-".into(),
                    expire_at_ms: 0,
                }),
                Window::Sliding { .. } => {
                    let delta = r.delta(actual);
                    (delta != 0).then(|| SettleEntry {
                        key,
                        kind: "s",
                        delta,
                        window: r.window_index.to_string(),
                        expire_at_ms: 0,
                    })
                }
                Window::Calendar { id, end_ms } => {
                    let delta = r.delta(actual);
                    (delta != 0).then(|| SettleEntry {
                        key,
                        kind: "b",
                        delta,
                        window: id.to_string(),
                        expire_at_ms: end_ms.map_or(0, |e| e + BUDGET_GRACE_MS),
                    })
                }
            }
        })
        .collect()
}

/// `KEYS` and `ARGV` of one settle call for several jobs: each job's entries and its lease.
pub fn settle_args<'a>(
    jobs: impl IntoIterator<Item = (&'a [SettleEntry], &'a str)>,
) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut argv = vec![String::new()];
    let mut count = 0usize;
    for (entries, lease) in jobs {
        count += 1;
        argv.push(entries.len().to_string());
        argv.push(lease.to_string());
        for e in entries {
            keys.push(e.key.clone());
            argv.push(e.kind.to_string());
            argv.push(e.delta.to_string());
            argv.push(e.window.clone());
            argv.push(e.expire_at_ms.to_string());
        }
    }
    argv[0] = count.to_string();
    (keys, argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::{Metric, Scope, TokenType};

    fn demand() -> Demand {
        Demand {
            charges: vec![
                Charge {
                    bucket: Arc::from("t:a:tt:60000"),
                    scope: Scope::Tenant,
                    subject: Arc::from("a"),
                    metric: Metric::Tokens(TokenType::Total),
                    window: Window::Sliding { ms: 60_000 },
                    limit: 1000,
                    amount: 10,
                },
                Charge {
                    bucket: Arc::from("t:a:c"),
                    scope: Scope::Tenant,
                    subject: Arc::from("a"),
                    metric: Metric::Concurrency,
                    window: Window::InFlight,
                    limit: 5,
                    amount: 1,
                },
            ],
        }
    }

    #[test]
    fn settle_args_carry_each_job_with_its_lease() {
        let e = |key: &str, kind: &'static str, delta: i64| SettleEntry {
            key: key.into(),
            kind,
            delta,
            window: "7".into(),
            expire_at_ms: 0,
        };
        let a = [e("{ig}:x", "s", -3), e("{ig}:c", "c", 0)];
        let b = [e("{ig}:y", "b", 5)];
        let (keys, argv) = settle_args([(&a[..], "L1"), (&b[..], "L2")]);
        assert_eq!(keys, ["{ig}:x", "{ig}:c", "{ig}:y"]);
        assert_eq!(
            argv,
            [
                "2", "2", "L1", "s", "-3", "7", "0", "c", "0", "7", "0", "1", "L2", "b", "5", "7",
                "0"
            ]
        );
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let (keys, argv) = admit_args("ig", &demand(), "L1", 600_000);
        assert_eq!(keys, vec!["{ig}:t:a:tt:60000", "{ig}:t:a:c"]);
        assert_eq!(argv[..3], ["2", "L1", "600000"]);
        assert_eq!(argv[3..8], ["s", "1000", "10", "60000", "0"]);
    }

    #[test]
    fn fallback_use_is_replayed_into_live_rate_windows_only() {
        let d = demand();
        let reserved: Vec<Reserved> = d
            .charges
            .iter()
            .map(|c| Reserved {
                bucket: c.bucket.clone(),
                metric: c.metric,
                window: c.window.clone(),
                window_index: 7,
                amount: c.amount,
            })
            .collect();
        let actual = crate::limit::Actual {
            input_tokens: 3,
            output_tokens: 4,
            cost_nanos: 0,
        };
        // In window 8 the request's window 7 still counts (as the previous one).
        let e = replay_entries("ig", &reserved, &actual, 8 * 60_000 + 5);
        assert_eq!(e.len(), 1, "concurrency is not replayed");
        assert_eq!((e[0].kind, e[0].delta, e[0].window.as_str()), ("r", 7, "7"));
        assert_eq!(e[0].expire_at_ms, 121_000);
        // Two windows later it no longer does.
        assert!(replay_entries("ig", &reserved, &actual, 9 * 60_000).is_empty());
    }

    #[test]
    fn replies_decode() {
        let d = demand();
        let g = admit_reply(&d, &[1, 5, 7, 10, 90_000, 0, 1, 0], "L1").unwrap();
        assert_eq!(g.reserved[0].window_index, 7);
        assert_eq!(g.views[0].remaining, 990);
        assert_eq!(g.views[1].remaining, 4);
        let denied = admit_reply(&d, &[0, 5, 2, 5, 1000, 10, 0, 5, 0], "L1")
            .unwrap_err()
            .unwrap();
        assert_eq!(denied.index, 1);
        assert_eq!(denied.retry_after_ms, Some(1000));
        assert!(admit_reply(&d, &[1, 5], "L1").is_err());
    }
}
