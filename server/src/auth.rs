//! `auth`: users (argon2), sessions (random tokens, stored hashed), the login rate limit,
//! and the CSRF rule. Role checks themselves happen in the service layer
//! (`state::Services`), on the [`Principal`] this module resolves for each request.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use app::api::{Principal, Role};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "bss_session";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {0} s")]
    RateLimited(u64),
    #[error("user name must be 1–64 letters, digits, '.', '-' or '_'")]
    BadName,
    #[error("password must be at least 12 characters")]
    WeakPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("no session {0:?}")]
    NoSuchSession(String),
    #[error("{0} is the last active admin: make another admin first")]
    LastAdmin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Store(StoreError::Query(e))
    }
}

/// Failed sign-ins allowed per (user name, client address) in [`LOGIN_WINDOW`].
const LOGIN_FAILURES: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// The most (name, address) pairs the lockout table tracks; past it, sign-ins from new
/// pairs are refused until old entries expire (bounded memory under a flood of names).
const LOGIN_TABLE_MAX: usize = 10_000;
/// Longer passwords are refused before hashing (Argon2's cost grows with the input).
const MAX_PASSWORD: usize = 1024;

pub struct Auth {
    store: Store,
    /// `false`: local mode, everyone is the local admin (only allowed on loopback).
    pub enabled: bool,
    pub session_ttl: Duration,
    failures: Mutex<HashMap<(String, Option<IpAddr>), Vec<Instant>>>,
    /// Password checks running at once: half the cores (at least one). Argon2 is built to
    /// eat CPU; unbounded, a burst of sign-ins took every core from the async workers and
    /// `/healthz` waited ~100 ms for one (p99, 300 parallel bad sign-ins, 2 cores). The
    /// rest wait for a permit without holding a thread.
    hashing: tokio::sync::Semaphore,
}

/// Hex digits of a session's token hash that name it on the Users page.
const SESSION_ID_LEN: usize = 16;

fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| AuthError::Hash(e.to_string()))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An Argon2 hash of a random password nobody knows, for timing-equal refusals.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let mut raw = [0u8; 32];
        let _ = getrandom::fill(&mut raw);
        let salt = SaltString::encode_b64(&raw[..16]).expect("16 bytes make a salt");
        Argon2::default().hash_password(&raw, &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl Auth {
    pub fn new(store: Store, enabled: bool, session_ttl: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { store, enabled, session_ttl, failures: Mutex::new(HashMap::new()), hashing: tokio::sync::Semaphore::new((cores / 2).max(1)) }
    }

    pub fn local_principal() -> Principal {
        Principal { user: "local".into(), role: Role::Admin, local_mode: true }
    }

    pub async fn add_user(&self, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
        if !valid_name(name) {
            return Err(AuthError::BadName);
        }
        if password.chars().count() < 12 {
            return Err(AuthError::WeakPassword);
        }
        if password.len() > MAX_PASSWORD {
            return Err(AuthError::BadCredentials);
        }
        let hash = hash_password(password)?;
        let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let r = sqlx::query("INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)")
            .bind(name)
            .bind(hash)
            .bind(role.as_str())
            .bind(at)
            .execute(self.store.pool())
            .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(AuthError::Exists(name.into())),
            r => r.map(|_| ()).map_err(AuthError::from),
        }
    }

    /// Every user with their open sessions, by name.
    pub async fn users(&self) -> Result<Vec<app::api::UserRow>, AuthError> {
        let users = sqlx::query("SELECT id, name, role, disabled, created_at FROM users ORDER BY name").fetch_all(self.store.pool()).await?;
        let sessions = sqlx::query("SELECT user_id, token_hash, created_at, expires_at FROM sessions WHERE expires_at > ? ORDER BY created_at")
            .bind(unix_now())
            .fetch_all(self.store.pool())
            .await?;
        Ok(users
            .iter()
            .map(|u| app::api::UserRow {
                name: u.get("name"),
                role: Role::parse(&u.get::<String, _>("role")).unwrap_or(Role::Viewer),
                disabled: u.get::<i64, _>("disabled") != 0,
                created_at: u.get("created_at"),
                sessions: sessions
                    .iter()
                    .filter(|s| s.get::<i64, _>("user_id") == u.get::<i64, _>("id"))
                    .map(|s| app::api::SessionRow {
                        id: s.get::<String, _>("token_hash")[..SESSION_ID_LEN].to_string(),
                        created_at: s.get("created_at"),
                        expires_at: s.get("expires_at"),
                    })
                    .collect(),
            })
            .collect())
    }

    /// Refuses a change that would leave no active admin (nobody could administer users
    /// from the UI any more).
    async fn keep_an_admin(&self, name: &str) -> Result<(), AuthError> {
        let others: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND name <> ?")
            .bind(name)
            .fetch_one(self.store.pool())
            .await?;
        let is_admin: bool = sqlx::query_scalar("SELECT count(*) > 0 FROM users WHERE name = ? AND role = 'admin' AND disabled = 0")
            .bind(name)
            .fetch_one(self.store.pool())
            .await?;
        if is_admin && others == 0 {
            return Err(AuthError::LastAdmin(name.into()));
        }
        Ok(())
    }

    async fn end_sessions(&self, name: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)").bind(name).execute(self.store.pool()).await?;
        Ok(())
    }

    fn exists(name: &str, changed: u64) -> Result<(), AuthError> {
        if changed == 0 {
            Err(AuthError::NoSuchUser(name.into()))
        } else {
            Ok(())
        }
    }

    pub async fn set_role(&self, name: &str, role: Role) -> Result<(), AuthError> {
        if role != Role::Admin {
            self.keep_an_admin(name).await?;
        }
        let r = sqlx::query("UPDATE users SET role = ? WHERE name = ?").bind(role.as_str()).bind(name).execute(self.store.pool()).await?;
        Self::exists(name, r.rows_affected())
    }

    /// Disabling ends the user's sessions at once; their name stays (the audit log names it).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AuthError> {
        if disabled {
            self.keep_an_admin(name).await?;
        }
        let r = sqlx::query("UPDATE users SET disabled = ? WHERE name = ?").bind(i64::from(disabled)).bind(name).execute(self.store.pool()).await?;
        Self::exists(name, r.rows_affected())?;
        if disabled {
            self.end_sessions(name).await?;
        }
        Ok(())
    }

    /// A new password ends the user's sessions (whoever had the old one is signed out).
    pub async fn reset_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        if password.chars().count() < 12 {
            return Err(AuthError::WeakPassword);
        }
        if password.len() > MAX_PASSWORD {
            return Err(AuthError::BadCredentials);
        }
        let hash = hash_password(password)?;
        let r = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?").bind(hash).bind(name).execute(self.store.pool()).await?;
        Self::exists(name, r.rows_affected())?;
        self.end_sessions(name).await
    }

    /// Ends the session whose id (see [`app::api::SessionRow`]) is `id`; returns its user.
    pub async fn revoke_session(&self, id: &str) -> Result<String, AuthError> {
        if id.len() != SESSION_ID_LEN || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AuthError::NoSuchSession(id.into()));
        }
        let user_id: Option<i64> = sqlx::query_scalar("DELETE FROM sessions WHERE substr(token_hash, 1, ?) = ? RETURNING user_id")
            .bind(SESSION_ID_LEN as i64)
            .bind(id.to_ascii_lowercase())
            .fetch_optional(self.store.pool())
            .await?;
        let user_id = user_id.ok_or_else(|| AuthError::NoSuchSession(id.into()))?;
        Ok(sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(user_id).fetch_one(self.store.pool()).await?)
    }

    pub async fn user_count(&self) -> Result<i64, AuthError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(self.store.pool()).await?)
    }

    /// Counts this attempt against `key` *before* the password is checked, so parallel
    /// guesses cannot all slip through while the first ones are still hashing; a success
    /// clears the entry. Refuses past [`LOGIN_FAILURES`], and new keys when the table is full.
    fn reserve_attempt(&self, key: &(String, Option<IpAddr>)) -> Result<(), AuthError> {
        let mut f = self.failures.lock().unwrap();
        if f.len() >= LOGIN_TABLE_MAX && !f.contains_key(key) {
            f.retain(|_, l| l.last().is_some_and(|t| t.elapsed() < LOGIN_WINDOW));
            if f.len() >= LOGIN_TABLE_MAX {
                return Err(AuthError::RateLimited(LOGIN_WINDOW.as_secs()));
            }
        }
        let list = f.entry(key.clone()).or_default();
        list.retain(|t| t.elapsed() < LOGIN_WINDOW);
        if list.len() >= LOGIN_FAILURES {
            let wait = LOGIN_WINDOW.saturating_sub(list[0].elapsed()).as_secs().max(1);
            return Err(AuthError::RateLimited(wait));
        }
        list.push(Instant::now());
        Ok(())
    }

    /// Checks the password and opens a session; returns the cookie token.
    pub async fn login(&self, name: &str, password: &str, client: Option<IpAddr>) -> Result<(String, Principal), AuthError> {
        // A name no user can have is refused at once (and never stored or hashed).
        if !valid_name(name) || password.len() > MAX_PASSWORD {
            return Err(AuthError::BadCredentials);
        }
        let key = (name.to_string(), client);
        self.reserve_attempt(&key)?;
        let row = sqlx::query("SELECT id, password_hash, role, disabled FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(self.store.pool())
            .await?;
        // Argon2 runs off the async workers (a burst of sign-ins must not stall SSE and the
        // API), and for unknown names too, against a fixed hash: the answer takes as long
        // whether the user exists or not.
        let stored = row.as_ref().map(|r| r.get::<String, _>("password_hash")).unwrap_or_else(|| dummy_hash().to_string());
        let password = password.to_string();
        let _permit = self.hashing.acquire().await.map_err(|e| AuthError::Hash(e.to_string()))?;
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false)
        })
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))?;
        // A disabled user gets the same answer as a wrong password, after the same work.
        let Some(row) = row.filter(|r| ok && r.get::<i64, _>("disabled") == 0) else {
            return Err(AuthError::BadCredentials);
        };
        self.failures.lock().unwrap().remove(&key);
        let token = self.new_session(row.get::<i64, _>("id"), self.session_ttl).await?;
        let role = Role::parse(&row.get::<String, _>("role")).unwrap_or(Role::Viewer);
        Ok((token, Principal { user: name.into(), role, local_mode: false }))
    }

    /// Opens a session for `user` without a password, for `ttl`: the requests a drill makes
    /// through Envoy act as the operator who started it (in shared mode the BSS API wants a
    /// session). The caller closes it with [`Auth::logout`].
    pub async fn open_session(&self, user: &str, ttl: Duration) -> Result<String, AuthError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = ? AND disabled = 0").bind(user).fetch_optional(self.store.pool()).await?;
        self.new_session(id.ok_or(AuthError::BadCredentials)?, ttl).await
    }

    /// A new session of user `id` for `ttl`; returns its token (only its hash is stored).
    async fn new_session(&self, id: i64, ttl: Duration) -> Result<String, AuthError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| AuthError::Hash(e.to_string()))?;
        let token = hex(&raw);
        let now = unix_now();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(hash_token(&token))
            .bind(id)
            .bind(now)
            .bind(now + ttl.as_secs() as i64)
            .execute(self.store.pool())
            .await?;
        Ok(token)
    }

    /// The signed-in user of a session token, if the session exists and has not expired.
    pub async fn principal(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let row = sqlx::query(
            "SELECT u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = 0",
        )
        .bind(hash_token(token))
        .bind(unix_now())
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row.map(|r| Principal {
            user: r.get("name"),
            role: Role::parse(&r.get::<String, _>("role")).unwrap_or(Role::Viewer),
            local_mode: false,
        }))
    }

    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ? OR expires_at <= ?")
            .bind(hash_token(token))
            .bind(unix_now())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Test hook: make every session of `user` expire now.
    pub async fn expire_sessions_of(&self, user: &str) -> Result<(), AuthError> {
        sqlx::query("UPDATE sessions SET expires_at = ? WHERE user_id = (SELECT id FROM users WHERE name = ?)")
            .bind(unix_now())
            .bind(user)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }
}

/// CSRF rule for state-changing requests. A browser always sends `Origin` on a cross-site
/// POST (and `Sec-Fetch-Site`); both must say "this site". Requests with neither come from
/// non-browser clients, which cannot ride a victim's cookies.
pub fn same_origin(host: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (origin, host) {
        (Some("null"), _) => false,
        (Some(o), Some(h)) => o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")) == Some(h),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        (dir, Auth::new(store, true, Duration::from_secs(3600)))
    }

    #[tokio::test]
    async fn login_opens_a_session_and_logout_closes_it() {
        let (_d, a) = auth().await;
        a.add_user("alice", Role::Operator, "correct horse battery").await.unwrap();
        let (token, p) = a.login("alice", "correct horse battery", None).await.unwrap();
        assert_eq!((p.user.as_str(), p.role), ("alice", Role::Operator));
        assert_eq!(a.principal(&token).await.unwrap().unwrap().role, Role::Operator);
        a.logout(&token).await.unwrap();
        assert!(a.principal(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_look_the_same() {
        let (_d, a) = auth().await;
        a.add_user("alice", Role::Viewer, "correct horse battery").await.unwrap();
        let e1 = a.login("alice", "nope", None).await.unwrap_err().to_string();
        let e2 = a.login("mallory", "nope", None).await.unwrap_err().to_string();
        assert_eq!(e1, e2);
    }

    #[tokio::test]
    async fn login_is_rate_limited_after_five_failures() {
        let (_d, a) = auth().await;
        a.add_user("alice", Role::Viewer, "correct horse battery").await.unwrap();
        for _ in 0..5 {
            assert!(matches!(a.login("alice", "bad", None).await, Err(AuthError::BadCredentials)));
        }
        // Even the right password is refused until the window passes.
        assert!(matches!(a.login("alice", "correct horse battery", None).await, Err(AuthError::RateLimited(_))));
    }

    #[tokio::test]
    async fn expired_session_is_refused() {
        let (_d, a) = auth().await;
        a.add_user("bob", Role::Admin, "correct horse battery").await.unwrap();
        let (token, _) = a.login("bob", "correct horse battery", None).await.unwrap();
        a.expire_sessions_of("bob").await.unwrap();
        assert!(a.principal(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn weak_passwords_bad_names_and_duplicates_are_refused() {
        let (_d, a) = auth().await;
        assert!(matches!(a.add_user("x", Role::Viewer, "short").await, Err(AuthError::WeakPassword)));
        assert!(matches!(a.add_user("a b", Role::Viewer, "long enough password").await, Err(AuthError::BadName)));
        a.add_user("x", Role::Viewer, "long enough password").await.unwrap();
        assert!(matches!(a.add_user("x", Role::Viewer, "long enough password").await, Err(AuthError::Exists(_))));
        let stored: String = sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(a.store.pool()).await.unwrap();
        assert!(stored.starts_with("$argon2"), "{stored}");
    }

    #[test]
    fn csrf_rule() {
        assert!(same_origin(Some("127.0.0.1:3000"), Some("http://127.0.0.1:3000"), Some("same-origin")));
        assert!(same_origin(Some("127.0.0.1:3000"), None, None), "non-browser client");
        assert!(!same_origin(Some("127.0.0.1:3000"), Some("http://evil.example"), Some("cross-site")));
        assert!(!same_origin(Some("127.0.0.1:3000"), Some("http://evil.example"), None));
        assert!(!same_origin(Some("127.0.0.1:3000"), None, Some("cross-site")));
        assert!(!same_origin(Some("127.0.0.1:3000"), Some("null"), None));
    }
}

/// What the Audit page asks: the log, filtered.
#[async_trait::async_trait]
impl app::backend::AuditApi for crate::state::Services {
    async fn audit_log(
        &self,
        who: &Principal,
        actor: Option<String>,
        action: Option<String>,
        limit: i64,
    ) -> Result<Vec<app::api::AuditEntry>, app::error::AppError> {
        crate::state::require(who, Role::Viewer, "reading the audit log")?;
        Ok(self.store.audit_filtered(actor.as_deref(), action.as_deref(), limit.clamp(1, 10_000)).await?)
    }
}

impl From<AuthError> for app::error::AppError {
    fn from(e: AuthError) -> Self {
        use app::error::AppError;
        match e {
            AuthError::BadName | AuthError::WeakPassword | AuthError::Exists(_) | AuthError::LastAdmin(_) | AuthError::BadCredentials => AppError::Invalid(e.to_string()),
            AuthError::NoSuchUser(_) | AuthError::NoSuchSession(_) => AppError::NotFound(e.to_string()),
            AuthError::RateLimited(_) => AppError::Busy(e.to_string()),
            AuthError::Store(_) | AuthError::Hash(_) => AppError::Internal(e.to_string()),
        }
    }
}

/// What the Users page asks (admin only, every change audited through `guarded`).
#[async_trait::async_trait]
impl app::backend::UsersApi for crate::state::Services {
    async fn users(&self, who: &Principal) -> Result<Vec<app::api::UserRow>, app::error::AppError> {
        crate::state::require(who, Role::Admin, "administering users")?;
        Ok(self.auth.users().await?)
    }

    async fn add_user(&self, who: &Principal, name: &str, role: &str, password: &str) -> Result<String, app::error::AppError> {
        let target = format!("{name} ({role})");
        let act = crate::state::Act { role: Role::Admin, what: "administering users", lock: "users", verb: "add user", audit: "user.add", target: &target };
        self.guarded(who, act, |_guard| async move {
            let role = Role::parse(role).ok_or_else(|| app::error::AppError::Invalid(format!("role must be viewer, operator or admin, not {role:?}")))?;
            self.auth.add_user(name, role, password).await?;
            Ok(format!("user {name} added as {}", role.as_str()))
        })
        .await
    }

    async fn update_user(&self, who: &Principal, name: &str, verb: &str, value: &str) -> Result<String, app::error::AppError> {
        let audit = match verb {
            "role" => "user.role",
            "disable" => "user.disable",
            "enable" => "user.enable",
            "password" => "user.password",
            _ => "user.update",
        };
        // The audit target never carries a password.
        let target = if verb == "role" { format!("{name} → {value}") } else { name.to_string() };
        let act = crate::state::Act { role: Role::Admin, what: "administering users", lock: "users", verb: audit, audit, target: &target };
        self.guarded(who, act, |_guard| async move {
            match verb {
                "role" => {
                    let role = Role::parse(value).ok_or_else(|| app::error::AppError::Invalid(format!("role must be viewer, operator or admin, not {value:?}")))?;
                    self.auth.set_role(name, role).await?;
                    Ok(format!("{name} is now {}", role.as_str()))
                }
                "disable" => {
                    self.auth.set_disabled(name, true).await?;
                    Ok(format!("{name} disabled; their sessions ended"))
                }
                "enable" => {
                    self.auth.set_disabled(name, false).await?;
                    Ok(format!("{name} enabled"))
                }
                "password" => {
                    self.auth.reset_password(name, value).await?;
                    Ok(format!("password of {name} reset; their sessions ended"))
                }
                _ => Err(app::error::AppError::Invalid(format!("unknown change {verb:?} (role, disable, enable or password)"))),
            }
        })
        .await
    }

    async fn revoke_session(&self, who: &Principal, id: &str) -> Result<String, app::error::AppError> {
        let act = crate::state::Act { role: Role::Admin, what: "administering users", lock: "users", verb: "end session", audit: "user.session_end", target: id };
        self.guarded(who, act, |_guard| async move {
            let user = self.auth.revoke_session(id).await?;
            Ok(format!("session {id} of {user} ended"))
        })
        .await
    }
}
