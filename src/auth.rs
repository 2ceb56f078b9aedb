//! Tenants of the inference service: who may call it, with which API token, and how much.
//!
//! `fhe-ml serve --auth FILE` reads one tenant per line:
//!
//! ```text
//! # tenant   token hash (BLAKE3 of the token)                                 quotas
//! hospital-a blake3:5d41402abc4b2a76b9719d911017c592ae1d3a3fc45e21d2a8d6b2c0f0e5a1b2 rate=600/min budget=10000/day
//! ops        blake3:8f14e45fceea167a5a36dedd4bea2543c8b7e0a1b2c3d4e5f60718293a4b5c6d role=admin
//! ```
//!
//! The file holds only the tokens' hashes: a token is 256 bits from the operating system's
//! generator, so one BLAKE3 hash suffices (a slow password hash protects low-entropy secrets;
//! a random 256-bit token has none to protect), and a leaked file lets nobody call the service.
//! `rate` bounds a tenant's requests (per second, minute or hour, every route but health);
//! `budget` bounds the rows one tenant may score per model per window (`/hour` or `/day`): the
//! knob a model owner turns against model extraction through label-only queries (see the
//! README's security section). `role=admin` lets a tenant read `/metrics`, which shows every
//! tenant's traffic.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::check_model_name;

/// Prefix of every token `fhe-ml token new` prints.
pub const TOKEN_PREFIX: &str = "fhe_";

/// A quota: `count` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// How many (requests, or rows scored).
    pub count: u64,
    /// Per how long.
    pub window: Duration,
}

impl Quota {
    fn parse(text: &str, windows: &[(&str, u64)]) -> Option<Self> {
        let (count, unit) = text.split_once('/')?;
        let count: u64 = count.parse().ok().filter(|&c| c > 0)?;
        let secs = windows.iter().find(|(name, _)| *name == unit)?.1;
        Some(Self {
            count,
            window: Duration::from_secs(secs),
        })
    }

    fn unit(&self) -> &'static str {
        match self.window.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "hour",
            _ => "day",
        }
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, self.unit())
    }
}

const RATE_WINDOWS: [(&str, u64); 3] = [("s", 1), ("min", 60), ("hour", 3600)];
const BUDGET_WINDOWS: [(&str, u64); 2] = [("hour", 3600), ("day", 86_400)];

/// One tenant: its name, its token's hash, and its quotas (`None`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's name (the model-name rule: 1 to 64 of `A-Za-z0-9-_.`).
    pub name: String,
    token_hash: blake3::Hash,
    /// Requests per window, over every route but health.
    pub rate: Option<Quota>,
    /// Rows scored per model per window.
    pub budget: Option<Quota>,
    /// May read `/metrics`, which shows every tenant's traffic (`role=admin`).
    pub admin: bool,
}

impl Tenant {
    fn line(&self) -> String {
        let mut line = format!("{} blake3:{}", self.name, self.token_hash.to_hex());
        if let Some(rate) = self.rate {
            line += &format!(" rate={rate}");
        }
        if let Some(budget) = self.budget {
            line += &format!(" budget={budget}");
        }
        if self.admin {
            line += " role=admin";
        }
        line
    }
}

/// The tenants of a service, looked up by token.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_hash: HashMap<[u8; 32], Tenant>,
}

fn hash(token: &str) -> blake3::Hash {
    blake3::hash(token.as_bytes())
}

impl Tenants {
    /// Reads a tenants file.
    ///
    /// # Errors
    /// `Error::Io` when it cannot be read; `Error::Input` for a malformed line (named by
    /// number), a repeated tenant or token hash.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
    }

    /// Parses a tenants file's text (see the module's documentation).
    ///
    /// # Errors
    /// `Error::Input` for a malformed line (named by number), a repeated tenant or token hash.
    pub fn parse(text: &str) -> Result<Self> {
        let mut tenants = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |m: String| Error::Input(format!("line {}: {m}", i + 1));
            let mut fields = line.split_whitespace();
            let (Some(name), Some(hash_field)) = (fields.next(), fields.next()) else {
                return Err(bad(
                    "expected `tenant blake3:HASH [rate=N/min] [budget=N/day]`".into(),
                ));
            };
            check_model_name(name).map_err(|_| bad(format!("invalid tenant name {name:?}")))?;
            let token_hash = hash_field
                .strip_prefix("blake3:")
                .and_then(|h| blake3::Hash::from_hex(h).ok())
                .ok_or_else(|| bad("the token hash must be `blake3:` and 64 hex digits".into()))?;
            let mut tenant = Tenant {
                name: name.to_string(),
                token_hash,
                rate: None,
                budget: None,
                admin: false,
            };
            for field in fields {
                match field.split_once('=') {
                    Some(("rate", q)) => {
                        tenant.rate = Some(Quota::parse(q, &RATE_WINDOWS).ok_or_else(|| {
                            bad(format!("rate {q:?}: expected N/s, N/min or N/hour, N > 0"))
                        })?)
                    }
                    Some(("budget", q)) => {
                        tenant.budget = Some(Quota::parse(q, &BUDGET_WINDOWS).ok_or_else(|| {
                            bad(format!("budget {q:?}: expected N/hour or N/day, N > 0"))
                        })?)
                    }
                    Some(("role", "admin")) => tenant.admin = true,
                    _ => return Err(bad(format!("unknown field {field:?}"))),
                }
            }
            if tenants.by_hash.values().any(|t| t.name == tenant.name) {
                return Err(bad(format!("tenant {name} appears twice")));
            }
            if tenants
                .by_hash
                .insert(*tenant.token_hash.as_bytes(), tenant)
                .is_some()
            {
                return Err(bad("two tenants share a token".into()));
            }
        }
        Ok(tenants)
    }

    /// The tenant holding `token`, if any.
    pub fn authenticate(&self, token: &str) -> Option<&Tenant> {
        self.by_hash.get(hash(token).as_bytes())
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.by_hash.values()
    }

    /// Number of tenants.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A new token: 32 bytes from the operating system's generator, hex, after [`TOKEN_PREFIX`].
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{TOKEN_PREFIX}{hex}")
}

/// Adds a tenant to the tenants file at `path` (created if missing) with a new token, and
/// returns the token: the only time it exists outside its holder.
///
/// # Errors
/// `Error::Input` for an invalid name, a tenant already in the file, or a malformed file;
/// `Error::Io` when the file cannot be read or written.
pub fn add_tenant(
    path: &Path,
    name: &str,
    rate: Option<Quota>,
    budget: Option<Quota>,
) -> Result<String> {
    add_tenant_with_role(path, name, rate, budget, false)
}

/// [`add_tenant`], for an admin tenant (may read `/metrics`) when `admin` is set.
///
/// # Errors
/// As [`add_tenant`].
pub fn add_tenant_with_role(
    path: &Path,
    name: &str,
    rate: Option<Quota>,
    budget: Option<Quota>,
    admin: bool,
) -> Result<String> {
    check_model_name(name).map_err(|_| {
        Error::Input(format!(
            "invalid tenant name {name:?}: use 1 to 64 ASCII letters, digits, `-`, `_` and `.`"
        ))
    })?;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let tenants =
        Tenants::parse(&existing).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    if tenants.by_hash.values().any(|t| t.name == name) {
        return Err(Error::Input(format!(
            "tenant {name} is already in {}",
            path.display()
        )));
    }
    let token = new_token();
    let tenant = Tenant {
        name: name.to_string(),
        token_hash: hash(&token),
        rate,
        budget,
        admin,
    };
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text += &tenant.line();
    text.push('\n');
    // Written aside, then renamed over: a reader never sees half a file.
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).map_err(io)?;
    std::fs::rename(&aside, path).map_err(io)?;
    Ok(token)
}

/// Parses a rate (`600/min`) as `fhe-ml token new --rate` takes it.
///
/// # Errors
/// `Error::Input` unless it is `N/s`, `N/min` or `N/hour` with N > 0.
pub fn parse_rate(text: &str) -> Result<Quota> {
    Quota::parse(text, &RATE_WINDOWS)
        .ok_or_else(|| Error::Input(format!("rate {text:?}: expected N/s, N/min or N/hour")))
}

/// Parses a budget (`10000/day`) as `fhe-ml token new --budget` takes it.
///
/// # Errors
/// `Error::Input` unless it is `N/hour` or `N/day` with N > 0.
pub fn parse_budget(text: &str) -> Result<Quota> {
    Quota::parse(text, &BUDGET_WINDOWS)
        .ok_or_else(|| Error::Input(format!("budget {text:?}: expected N/hour or N/day")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_round_trip_through_their_file() {
        let dir = std::env::temp_dir().join(format!("fhe-ml-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tenants");
        let _ = std::fs::remove_file(&path);
        let a = add_tenant(&path, "alice", Some(parse_rate("5/s").unwrap()), None).unwrap();
        let b = add_tenant(&path, "bob", None, Some(parse_budget("100/day").unwrap())).unwrap();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&a[TOKEN_PREFIX.len()..]),
            "the file holds no token"
        );
        let tenants = Tenants::load(&path).unwrap();
        assert_eq!(tenants.len(), 2);
        let alice = tenants.authenticate(&a).unwrap();
        assert_eq!(
            (alice.name.as_str(), alice.rate.unwrap().count),
            ("alice", 5)
        );
        assert_eq!(tenants.authenticate(&b).unwrap().budget.unwrap().count, 100);
        assert!(tenants.authenticate("fhe_wrong").is_none());
        assert!(add_tenant(&path, "alice", None, None).is_err());
        assert!(add_tenant(&path, "../x", None, None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_are_named() {
        let hash = "blake3:".to_string() + &"ab".repeat(32);
        for (text, needle) in [
            ("alice".to_string(), "line 1"),
            ("alice blake3:zz".to_string(), "64 hex"),
            (format!("alice {hash} rate=0/min"), "rate"),
            (format!("alice {hash} budget=5/min"), "budget"),
            (format!("alice {hash} colour=red"), "unknown field"),
            (format!("# c\nalice {hash}\nbob {hash}"), "line 3"),
            (
                format!("alice {hash}\nalice blake3:{}", "cd".repeat(32)),
                "twice",
            ),
        ] {
            let err = Tenants::parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
