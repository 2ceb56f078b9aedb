//! Where the service keeps clients' evaluation keys between requests, and what its replicas
//! share besides: the tenants' query budgets. The [`KeyStore`] trait,
//! its in-process implementation [`MemoryKeyStore`] (the default, bounded in MiB) and
//! [`RedisKeyStore`] (a Redis server shared by every replica of a cluster), and [`FairLru`],
//! the byte-bounded, tenant-fair least-recently-used map that both the memory store and the
//! service's cache of expanded keys use.
//!
//! A store holds the serialized key blob a client uploaded (about 29 MiB), under its key id
//! and with the tenant that uploaded it: a lookup by another tenant is answered
//! [`Lookup::OtherOwner`], never with the key. A replica that lacks a key in its cache fetches
//! the blob from the store and expands it (about 0.3 s); a key for another parameter set is
//! refused when expanded, so a key never serves a model it was not made for.
//!
//! Redis was chosen over PostgreSQL: the keys are opaque blobs read whole by id, with no query
//! and no transaction; Redis bounds its own memory (`maxmemory` with `allkeys-lru`), expires
//! keys by time, holds values up to 512 MB, starts in milliseconds, and operators run it as the
//! usual shared cache of stateless replicas. A lost key is not lost data: its client uploads it
//! again (see [`crate::batch`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::Quota;

use crate::error::{Error, Result};
use crate::fhe::bootstrap::KeyId;

/// The tenant that uploaded a key (`None` without authentication).
pub type Owner = Option<Arc<str>>;

/// One MiB, in bytes.
pub const MIB: usize = 1 << 20;

/// What a store holds under a key id, for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The key blob, uploaded by this tenant.
    Found(Vec<u8>),
    /// No such key (never uploaded, evicted, expired, or the store lost it).
    Missing,
    /// The key belongs to another tenant: the service answers 403.
    OtherOwner,
}

/// The answer to spending rows of a query budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Spent: the rows fit the window's budget.
    Within,
    /// Not spent: `used` rows of the window's budget are gone, and the window ends in `wait`.
    Over {
        /// Rows already scored in the window.
        used: u64,
        /// Until the window ends.
        wait: Duration,
    },
}

/// A store of evaluation key blobs, and of the tenants' query budgets, shared by the replicas
/// that serve one set of clients.
/// Calls block (network I/O for a remote store): the service makes them on its blocking
/// workers.
pub trait KeyStore: Send + Sync {
    /// What the store is, for logs and `/v1/health` (`memory (512 MiB)`,
    /// `redis://127.0.0.1:6379/0`; never a password).
    fn describe(&self) -> String;

    /// Stores `blob` (a serialized `EvaluationKey`) under `id` for `owner`, replacing what was
    /// there.
    ///
    /// # Errors
    /// `Error::Unavailable` when a remote store cannot be reached or refuses the write;
    /// `Error::TooLarge` when the blob alone is over the store's bound.
    fn put(&self, owner: &Owner, id: &KeyId, blob: &[u8]) -> Result<()>;

    /// The blob stored under `id`, if `owner` uploaded it.
    ///
    /// # Errors
    /// `Error::Unavailable` when a remote store cannot be reached or answers with something
    /// that is not a stored key.
    fn get(&self, owner: &Owner, id: &KeyId) -> Result<Lookup>;

    /// Spends `rows` of `tenant`'s budget for `model`: fixed windows of `budget.window`, each
    /// starting at its first query; nothing is spent when the rows do not fit.
    ///
    /// # Errors
    /// `Error::Unavailable` when a remote store cannot be reached.
    fn spend(&self, tenant: &str, model: &str, rows: u64, budget: Quota) -> Result<Spent>;
}

/// A map bounded in bytes whose least recently used entries go first, taken from the tenant
/// that holds the most entries, so one tenant's uploads cannot push another below its share.
/// The newest entry always stays, even over the bound.
#[derive(Debug)]
pub struct FairLru<V> {
    limit_bytes: usize,
    bytes: usize,
    /// Least recently used first.
    order: VecDeque<(Owner, KeyId)>,
    entries: HashMap<(Owner, KeyId), (V, usize)>,
}

impl<V> FairLru<V> {
    /// An empty map holding at most `limit_bytes` (the newest entry excepted).
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            bytes: 0,
            order: VecDeque::new(),
            entries: HashMap::new(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Bytes held (the sizes given to [`FairLru::insert`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bound, in bytes.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// The value for `(owner, id)`, now the most recently used.
    pub fn get(&mut self, owner: &Owner, id: &KeyId) -> Option<&V> {
        let key = (owner.clone(), *id);
        if !self.entries.contains_key(&key) {
            return None;
        }
        self.touch(&key);
        self.entries.get(&key).map(|(v, _)| v)
    }

    /// Whether some tenant holds `id`.
    pub fn holds_id(&self, id: &KeyId) -> bool {
        self.order.iter().any(|(_, k)| k == id)
    }

    /// Inserts (or replaces) a value of `size` bytes, then evicts down to the bound; returns
    /// the evicted keys.
    pub fn insert(
        &mut self,
        owner: &Owner,
        id: &KeyId,
        value: V,
        size: usize,
    ) -> Vec<(Owner, KeyId)> {
        let key = (owner.clone(), *id);
        if let Some((_, old)) = self.entries.insert(key.clone(), (value, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        self.touch(&key);
        let mut evicted = Vec::new();
        while self.bytes > self.limit_bytes && self.order.len() > 1 {
            // Every entry counts towards its tenant's share; the newest is never evicted.
            let mut held: HashMap<&Owner, usize> = HashMap::new();
            for (tenant, _) in &self.order {
                *held.entry(tenant).or_default() += 1;
            }
            let candidates = self.order.len() - 1;
            let Some(at) = (0..candidates).max_by_key(|&i| {
                // The most held tenant first; among its entries, the oldest.
                (held[&self.order[i].0], std::cmp::Reverse(i))
            }) else {
                break;
            };
            if let Some(old) = self.order.remove(at) {
                if let Some((_, size)) = self.entries.remove(&old) {
                    self.bytes -= size;
                }
                evicted.push(old);
            }
        }
        evicted
    }

    fn touch(&mut self, key: &(Owner, KeyId)) {
        self.order.retain(|k| k != key);
        self.order.push_back(key.clone());
    }
}

/// The default store: key blobs in this process, at most `limit_mib` MiB (about 29 MiB per
/// key); a restart forgets them (clients upload again).
pub struct MemoryKeyStore {
    keys: Mutex<FairLru<Arc<Vec<u8>>>>,
    /// Per (tenant, model): when the window started, and rows scored since.
    budgets: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl MemoryKeyStore {
    /// A store bounded at `limit_mib` MiB.
    pub fn new(limit_mib: usize) -> Self {
        Self {
            keys: Mutex::new(FairLru::new(limit_mib.saturating_mul(MIB))),
            budgets: Mutex::new(HashMap::new()),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FairLru<Arc<Vec<u8>>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn describe(&self) -> String {
        format!("memory ({} MiB)", self.lock().limit_bytes() / MIB)
    }

    fn put(&self, owner: &Owner, id: &KeyId, blob: &[u8]) -> Result<()> {
        let mut keys = self.lock();
        if blob.len() > keys.limit_bytes() {
            return Err(Error::TooLarge {
                what: "the evaluation key for the key store (bytes)".into(),
                limit: keys.limit_bytes(),
                size: blob.len(),
            });
        }
        keys.insert(owner, id, Arc::new(blob.to_vec()), blob.len());
        Ok(())
    }

    fn get(&self, owner: &Owner, id: &KeyId) -> Result<Lookup> {
        let mut keys = self.lock();
        if let Some(blob) = keys.get(owner, id) {
            return Ok(Lookup::Found(blob.as_ref().clone()));
        }
        Ok(if keys.holds_id(id) {
            Lookup::OtherOwner
        } else {
            Lookup::Missing
        })
    }

    fn spend(&self, tenant: &str, model: &str, rows: u64, budget: Quota) -> Result<Spent> {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let (start, used) = budgets
            .entry((tenant.to_string(), model.to_string()))
            .or_insert((now, 0));
        if now.duration_since(*start) >= budget.window {
            (*start, *used) = (now, 0);
        }
        if *used + rows > budget.count {
            return Ok(Spent::Over {
                used: *used,
                wait: budget.window.saturating_sub(now.duration_since(*start)),
            });
        }
        *used += rows;
        Ok(Spent::Within)
    }
}

/// Key blobs in a Redis server, shared by every replica: stored under
/// `fhe-ml:evaluation-key:{key id hex}` as the owner's name (length-prefixed) followed by the
/// blob, with a time to live that each read renews (`GETEX`, Redis 6.2 or later). One
/// connection, re-opened once when it fails; every call times out.
pub struct RedisKeyStore {
    client: redis::Client,
    shown: String,
    ttl_s: u64,
    timeout: Duration,
    connection: Mutex<Option<redis::Connection>>,
}

impl RedisKeyStore {
    /// A store at `url` (`redis://[:password@]host[:port][/db]`); keys expire `ttl_s` seconds
    /// after their last use. Connects lazily: the first call reaches the server.
    ///
    /// # Errors
    /// `Error::Input` for a URL the redis client cannot parse.
    pub fn new(url: &str, ttl_s: u64) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::Input(format!("key store URL: {e}")))?;
        let info = client.get_connection_info();
        let shown = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        Ok(Self {
            client,
            shown,
            ttl_s: ttl_s.max(1),
            timeout: Duration::from_secs(10),
            connection: Mutex::new(None),
        })
    }

    fn name(id: &KeyId) -> String {
        format!("fhe-ml:evaluation-key:{}", crate::protocol::hex(id))
    }

    /// Runs `command` on the connection, opening it (again) once if it is closed or fails.
    fn call<T>(
        &self,
        mut command: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if slot.is_none() {
                match self.client.get_connection_with_timeout(self.timeout) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(self.timeout * 3));
                        let _ = c.set_write_timeout(Some(self.timeout * 3));
                        *slot = Some(c);
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let Some(connection) = slot.as_mut() else {
                continue;
            };
            match command(connection) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // A server error on an open connection (out of memory, read-only
                    // replica) will not heal by reconnecting.
                    let broken = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || e.is_timeout();
                    *slot = None;
                    if !broken {
                        return Err(unavailable(&self.shown, e));
                    }
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(e) => unavailable(&self.shown, e),
            None => Error::Unavailable(format!("key store {}: no connection", self.shown)),
        })
    }
}

fn unavailable(store: &str, e: redis::RedisError) -> Error {
    Error::Unavailable(format!("key store {store}: {e}"))
}

/// The owner's name as stored: `-` without authentication (tenant names are never `-`:
/// they are checked by [`crate::auth`]).
fn owner_tag(owner: &Owner) -> &str {
    owner.as_deref().unwrap_or("-")
}

impl KeyStore for RedisKeyStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn put(&self, owner: &Owner, id: &KeyId, blob: &[u8]) -> Result<()> {
        let tag = owner_tag(owner).as_bytes();
        let mut value = Vec::with_capacity(2 + tag.len() + blob.len());
        value.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        value.extend_from_slice(tag);
        value.extend_from_slice(blob);
        let name = Self::name(id);
        self.call(|c| {
            redis::cmd("SET")
                .arg(&name)
                .arg(&value)
                .arg("EX")
                .arg(self.ttl_s)
                .query::<()>(c)
        })
    }

    fn get(&self, owner: &Owner, id: &KeyId) -> Result<Lookup> {
        let name = Self::name(id);
        let value: Option<Vec<u8>> = self.call(|c| {
            redis::cmd("GETEX")
                .arg(&name)
                .arg("EX")
                .arg(self.ttl_s)
                .query(c)
        })?;
        let Some(value) = value else {
            return Ok(Lookup::Missing);
        };
        let corrupt = || {
            Error::Unavailable(format!(
                "key store {}: a malformed entry {name}",
                self.shown
            ))
        };
        let len = u16::from_le_bytes(
            value
                .get(..2)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ) as usize;
        let tag = value.get(2..2 + len).ok_or_else(corrupt)?;
        if tag != owner_tag(owner).as_bytes() {
            return Ok(Lookup::OtherOwner);
        }
        Ok(Lookup::Found(value[2 + len..].to_vec()))
    }

    /// One counter per (tenant, model) window: `INCRBY`, and `EXPIRE … NX` starts the window
    /// at its first query (Redis 7), in one transaction; over the budget, `DECRBY` gives the
    /// rows back. Every replica spends from the same counter.
    fn spend(&self, tenant: &str, model: &str, rows: u64, budget: Quota) -> Result<Spent> {
        let name = format!("fhe-ml:budget:{tenant}:{model}");
        let window_ms = budget.window.as_millis().max(1) as u64;
        let (used, ttl_ms): (u64, i64) = self.call(|c| {
            redis::pipe()
                .atomic()
                .cmd("INCRBY")
                .arg(&name)
                .arg(rows)
                .cmd("PEXPIRE")
                .arg(&name)
                .arg(window_ms)
                .arg("NX")
                .ignore()
                .cmd("PTTL")
                .arg(&name)
                .query(c)
        })?;
        if used <= budget.count {
            return Ok(Spent::Within);
        }
        self.call(|c| redis::cmd("DECRBY").arg(&name).arg(rows).query::<i64>(c))?;
        Ok(Spent::Over {
            used: used - rows,
            wait: Duration::from_millis(ttl_ms.max(0) as u64),
        })
    }
}

/// The store a `--key-store` URL names: `memory` (or empty) for [`MemoryKeyStore`] bounded at
/// `memory_mib`, `redis://...` for [`RedisKeyStore`] with keys expiring `ttl_s` seconds after
/// their last use.
///
/// # Errors
/// `Error::Input` for another scheme or a malformed Redis URL.
pub fn open(url: &str, memory_mib: usize, ttl_s: u64) -> Result<Arc<dyn KeyStore>> {
    match url {
        "" | "memory" | "memory://" => Ok(Arc::new(MemoryKeyStore::new(memory_mib))),
        u if u.starts_with("redis://") => Ok(Arc::new(RedisKeyStore::new(u, ttl_s)?)),
        u if u.starts_with("rediss://") => Err(Error::Input(
            "rediss:// (Redis over TLS) is not built in: use redis:// on a private network".into(),
        )),
        other => Err(Error::Input(format!(
            "key store {other:?}: expected `memory` or a redis:// URL"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> KeyId {
        [n; 16]
    }

    fn owner(name: &str) -> Owner {
        Some(Arc::from(name))
    }

    #[test]
    fn the_bound_is_in_bytes_and_the_least_recently_used_goes_first() {
        let mut lru = FairLru::new(100);
        assert!(lru.insert(&None, &id(1), 1, 40).is_empty());
        assert!(lru.insert(&None, &id(2), 2, 40).is_empty());
        assert_eq!(lru.get(&None, &id(1)), Some(&1)); // 1 is now the most recent
        assert_eq!(lru.insert(&None, &id(3), 3, 40), vec![(None, id(2))]);
        assert_eq!((lru.len(), lru.bytes()), (2, 80));
        assert_eq!(lru.get(&None, &id(2)), None);
        // A value larger than the bound stays alone.
        assert_eq!(lru.insert(&None, &id(4), 4, 500).len(), 2);
        assert_eq!((lru.len(), lru.bytes()), (1, 500));
    }

    #[test]
    fn the_tenant_holding_most_gives_up_its_oldest() {
        let (alice, bob) = (owner("alice"), owner("bob"));
        let mut lru = FairLru::new(30);
        lru.insert(&bob, &id(1), (), 10);
        lru.insert(&alice, &id(2), (), 10);
        lru.insert(&alice, &id(3), (), 10);
        let evicted = lru.insert(&alice, &id(4), (), 10);
        assert_eq!(evicted, vec![(alice.clone(), id(2))]);
        assert!(lru.get(&bob, &id(1)).is_some(), "Bob's older key stays");
        // Room for two: Bob's one key stays when Alice's second arrives (her newest counts
        // towards her share, though it is not evicted itself).
        let mut lru = FairLru::new(20);
        lru.insert(&bob, &id(1), (), 10);
        lru.insert(&alice, &id(2), (), 10);
        assert_eq!(
            lru.insert(&alice, &id(3), (), 10),
            vec![(alice.clone(), id(2))]
        );
        // A tenant whose only entry is the newest: the other's oldest goes.
        assert_eq!(lru.insert(&owner("carol"), &id(4), (), 10).len(), 1);
        assert!(lru.get(&owner("carol"), &id(4)).is_some());
    }

    #[test]
    fn the_memory_store_answers_by_owner() {
        let store = MemoryKeyStore::new(1);
        let (alice, bob) = (owner("alice"), owner("bob"));
        store.put(&alice, &id(7), b"key").unwrap();
        assert_eq!(
            store.get(&alice, &id(7)).unwrap(),
            Lookup::Found(b"key".to_vec())
        );
        assert_eq!(store.get(&bob, &id(7)).unwrap(), Lookup::OtherOwner);
        assert_eq!(store.get(&None, &id(8)).unwrap(), Lookup::Missing);
        let big = vec![0u8; MIB + 1];
        assert!(matches!(
            store.put(&alice, &id(9), &big),
            Err(Error::TooLarge { .. })
        ));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn store_urls() {
        assert_eq!(
            open("memory", 64, 60).unwrap().describe(),
            "memory (64 MiB)"
        );
        let redis = open("redis://:secret@127.0.0.1:6390/2", 64, 60).unwrap();
        assert_eq!(redis.describe(), "redis://127.0.0.1:6390/2");
        assert!(open("postgres://x", 64, 60).is_err());
        assert!(open("rediss://127.0.0.1:6390/0", 64, 60).is_err());
    }

    /// Nothing listens on port 1: the store answers `Unavailable` (503), it does not hang or
    /// panic.
    #[test]
    fn an_unreachable_redis_is_unavailable() {
        let store = RedisKeyStore::new("redis://127.0.0.1:1/0", 60).unwrap();
        let err = store.get(&None, &id(1)).unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
        assert_eq!(err.http_status(), 503);
    }
}
