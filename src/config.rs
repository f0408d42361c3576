//! Typed settings, read once at start-up.
//!
//! Owns: the `Settings` tree (one struct per config section), its defaults, the layering
//! defaults → TOML file → `PRESENCED__SECTION__KEY` environment variables, and `validate()`
//! of what the settings say among themselves. A leaf: what other modules must read (URLs,
//! SQL, CPU sets) `app::check` has them check. Must not: be read anywhere but start-up. Each
//! module receives its own section by value.
//!
//! Every key is documented, with its default and unit, in `config/presenced.toml`.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration could not be used. Every variant names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("config file {0} not found")]
    Missing(String),
    /// The file or an environment variable could not be read or has the wrong shape
    /// (unknown key, wrong type). The `config` crate's message names the key.
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    /// A value parsed but is not acceptable.
    #[error("invalid value for `{key}`: {problem}")]
    Invalid {
        /// Dotted key, e.g. `sip.listen[1]`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[sip]`: transports and protocol limits.
    pub sip: SipSettings,
    /// `[presence]`: subscription and publication lifetimes.
    pub presence: PresenceSettings,
    /// `[registrar]`: REGISTER bindings.
    pub registrar: RegistrarSettings,
    /// `[store]`: persistence (used by the persistence layer).
    pub store: StoreSettings,
    /// `[rls]`: resource list subscriptions (RFC 4662, RFC 5367).
    pub rls: RlsSettings,
    /// `[log]`: logging.
    pub log: LogSettings,
    /// `[affinity]`: the CPUs presenced's threads may run on.
    pub affinity: AffinitySettings,
    /// `[users]`: the service's users database (long-term presence, phone-number aliases).
    pub users: UsersSettings,
    /// `[http]`: health checks and metrics.
    pub http: HttpSettings,
}

/// `[http]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Listening sockets, `HOST:PORT` (IPv6 hosts in brackets); empty turns HTTP off.
    pub listen: Vec<String>,
    /// The admin API's bearer token; empty turns the admin API off.
    pub admin_token: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8060".into()],
            admin_token: String::new(),
        }
    }
}

impl HttpSettings {
    /// The parsed `listen` entries. `validate()` has checked that they parse.
    pub fn listen_addrs(&self) -> Result<Vec<std::net::SocketAddr>, ConfigError> {
        self.listen
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                entry.parse().map_err(|_| ConfigError::Invalid {
                    key: format!("http.listen[{i}]"),
                    problem: "not HOST:PORT".into(),
                })
            })
            .collect()
    }
}

/// `[sip]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipSettings {
    /// Listening sockets, `udp:HOST:PORT` or `tcp:HOST:PORT`; IPv6 hosts in brackets.
    pub listen: Vec<String>,
    /// Served domains; empty serves any domain.
    pub domains: Vec<String>,
    /// Largest accepted message, head and body, in bytes.
    pub max_message_bytes: usize,
    /// Seconds of silence after which a TCP connection is closed.
    pub tcp_idle_timeout_s: u64,
    /// Most TCP connections open at once; further ones are refused.
    pub max_tcp_connections: usize,
    /// RFC 3261 T1 (round-trip estimate), milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 T2 (longest retransmit interval for non-INVITE), milliseconds.
    pub t2_ms: u64,
    /// Value of the `Server` header and the OPTIONS `Server` header.
    pub server_name: String,
    /// Run TCP connections (framing, parsing, socket writes) on a thread of their own.
    pub tcp_io_thread: bool,
}

impl Default for SipSettings {
    fn default() -> Self {
        Self {
            listen: vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5060".into()],
            domains: Vec::new(),
            max_message_bytes: 65535,
            tcp_idle_timeout_s: 300,
            max_tcp_connections: 10000,
            t1_ms: 500,
            t2_ms: 4000,
            server_name: concat!("presenced/", env!("CARGO_PKG_VERSION")).into(),
            tcp_io_thread: false,
        }
    }
}

impl SipSettings {
    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    /// T2 as a duration.
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    /// The parsed `listen` entries. `validate()` has checked that they parse.
    pub fn listen_addrs(&self) -> Result<Vec<ListenAddr>, ConfigError> {
        self.listen
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                entry.parse().map_err(|problem| ConfigError::Invalid {
                    key: format!("sip.listen[{i}]"),
                    problem,
                })
            })
            .collect()
    }
}

/// `[presence]` section. Seconds throughout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceSettings {
    /// SUBSCRIBE without Expires gets this.
    pub default_expires: u32,
    /// SUBSCRIBE below this (and not 0) gets 423.
    pub min_expires: u32,
    /// SUBSCRIBE above this is clamped.
    pub max_expires: u32,
    /// PUBLISH without Expires gets this.
    pub publish_default_expires: u32,
    /// PUBLISH above this is clamped.
    pub publish_max_expires: u32,
    /// PUBLISH below this (and not 0) gets 423.
    pub publish_min_expires: u32,
    /// With nothing published or registered, NOTIFY says `closed` rather than an empty document.
    pub closed_when_unknown: bool,
    /// Keep a subscription when its NOTIFY gets 408 (otherwise any non-2xx ends it).
    pub keep_subscription_on_408: bool,
    /// Largest PIDF body accepted in a PUBLISH, bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Live publications one resource (a presentity, a lamp, a mailbox) holds at most; a new
    /// one beyond gets 403.
    pub max_publications_per_resource: usize,
    /// Deepest XML nesting accepted in a PIDF body; deeper gets 400.
    pub max_xml_depth: usize,
    /// NOTIFY bodies of at least this many bytes go out deflated when the SUBSCRIBE's
    /// Accept-Encoding allows deflate; 0 never deflates.
    pub deflate_min_bytes: usize,
    /// Whether registrar bindings stand for presence: only without a live publication
    /// (`fallback`), always (`always`), or never (`off`).
    pub registration_state: RegistrationState,
}

/// When registrar bindings give a presentity `open` tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationState {
    /// Only while the AOR has no live publication (repro's rule): a device that publishes
    /// `closed` is closed, whatever its registration says.
    Fallback,
    /// Beside every publication.
    Always,
    /// Never.
    Off,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86400,
            publish_default_expires: 3600,
            publish_max_expires: 86400,
            publish_min_expires: 60,
            closed_when_unknown: true,
            keep_subscription_on_408: false,
            max_body_bytes: 65536,
            max_publications_per_resource: 64,
            max_xml_depth: 32,
            deflate_min_bytes: 1024,
            registration_state: RegistrationState::Fallback,
        }
    }
}

/// `[registrar]` section. Seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSettings {
    /// REGISTER without any expiry gets this.
    pub default_expires: u32,
    /// Below this (and not 0): 423.
    pub min_expires: u32,
    /// Above this: clamped.
    pub max_expires: u32,
    /// Tuple priority (0.0–1.0) for bindings without `q`; absent: no priority.
    pub priority: Option<f32>,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86400,
            priority: None,
        }
    }
}

/// `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Database URL, `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Retry-After (seconds) of the 503 sent when a change cannot be committed.
    pub retry_after_s: u32,
    /// How long a SQLite write waits for a lock before it fails, milliseconds.
    pub sqlite_busy_timeout_ms: u32,
    /// fsync every SQLite commit (survives power loss), not only WAL writes (survive kill -9).
    pub sqlite_fsync_every_commit: bool,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://var/presenced.db".into(),
            retry_after_s: 5,
            sqlite_busy_timeout_ms: 5000,
            sqlite_fsync_every_commit: false,
        }
    }
}

/// How list NOTIFYs are written for liblinphone, whose parser differs from RFC 4662.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinphoneCompat {
    /// RFC forms for every watcher.
    Off,
    /// liblinphone's forms for every watcher.
    On,
    /// liblinphone's forms for watchers that look like liblinphone, RFC forms for the rest.
    Auto,
}

/// `[rls]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlsSettings {
    /// Most resources in one list; a larger request-contained list gets 413.
    pub max_resources: usize,
    /// List NOTIFYs after the first coalesce member changes for this long, ms.
    pub min_notify_interval_ms: u64,
    /// Largest list NOTIFY body before content coding, bytes; larger state is spread over
    /// several NOTIFYs.
    pub max_notify_bytes: usize,
    /// Largest request-contained list after inflating, bytes.
    pub max_list_body_bytes: usize,
    /// Largest inflated/deflated size ratio accepted for a request-contained list.
    pub max_inflate_ratio: usize,
    /// SQL giving the members of a server-known list: `:to` is the list URI, `:from` the
    /// subscriber's AOR; returns columns `uri` and `name` (NULL allowed). Empty disables
    /// server-known lists.
    pub list_query: String,
    /// Database the list query runs on; empty means the store's.
    pub list_db_url: String,
    /// Run the list query for initial SUBSCRIBEs without `Supported: eventlist` too (a list
    /// URI then gets 421); off, they are plain subscriptions with no lookup.
    pub lookup_without_eventlist: bool,
    /// `off`, `on` or `auto`: write list NOTIFYs the way liblinphone needs.
    pub linphone_compat: LinphoneCompat,
}

/// The shipped query, on the shipped `resource_list_members` table.
pub const DEFAULT_LIST_QUERY: &str = "SELECT member_uri AS uri, display_name AS name \
     FROM resource_list_members WHERE list_uri = :to AND (owner = :from OR owner = '*') \
     ORDER BY position, member_uri";

impl Default for RlsSettings {
    fn default() -> Self {
        Self {
            max_resources: 1000,
            min_notify_interval_ms: 1000,
            max_notify_bytes: 60_000,
            max_list_body_bytes: 1 << 20,
            max_inflate_ratio: 100,
            list_query: DEFAULT_LIST_QUERY.into(),
            list_db_url: String::new(),
            lookup_without_eventlist: false,
            linphone_compat: LinphoneCompat::Auto,
        }
    }
}

/// What a watcher of a user the users database does not know is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UnknownUser {
    /// A PIDF document with no tuple and a note (Flexisip's).
    #[serde(rename = "note")]
    Note,
    /// The SUBSCRIBE gets 404 (repro's).
    #[serde(rename = "404")]
    NotFound,
}

/// `[users]` section: the service's users database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersSettings {
    /// `sqlite://…`, `postgres://…` or `mysql://…` (feature `mysql`); empty means the store's.
    pub db_url: String,
    /// Does this user exist? (`:user`, `:domain`); a row means yes. Empty: long-term presence
    /// off.
    pub user_query: String,
    /// Which users have these numbers? (`:phones`, a list); rows `username`, `domain`,
    /// `phone`. Empty: phone-number aliases off.
    pub phones_query: String,
    /// The user's password or HA1 (`:user`, `:domain`); column `password`. Empty: off.
    pub password_query: String,
    /// How long a lookup's answer is reused, seconds.
    pub cache_ttl_s: u64,
    /// Most answers kept in the cache (users and numbers each).
    pub cache_max_entries: usize,
    /// `note` or `404`: what a watcher of an unknown user gets.
    pub unknown: UnknownUser,
    /// How long a new watcher's first NOTIFY waits for the users database, ms.
    pub first_notify_wait_ms: u64,
    /// Threads (each with its own connection) running lookups.
    pub pool_size: usize,
    /// Most numbers in one run of `phones_query`; longer lists are sent in chunks.
    pub phones_per_query: usize,
}

impl Default for UsersSettings {
    fn default() -> Self {
        Self {
            db_url: String::new(),
            user_query: String::new(),
            phones_query: String::new(),
            password_query: String::new(),
            cache_ttl_s: 60,
            cache_max_entries: 200_000,
            unknown: UnknownUser::Note,
            first_notify_wait_ms: 300,
            pool_size: 2,
            phones_per_query: 500,
        }
    }
}

impl UsersSettings {
    /// Whether any users query is configured (the users database is used at all).
    pub fn enabled(&self) -> bool {
        [&self.user_query, &self.phones_query, &self.password_query]
            .iter()
            .any(|q| !q.trim().is_empty())
    }
}

/// `[affinity]` section: CPU indices, as the kernel numbers them; an empty list leaves those
/// threads to the scheduler (the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AffinitySettings {
    /// CPUs of the SIP thread: transports, dispatcher, presentities, watchers, lists.
    pub sip_thread: Vec<usize>,
    /// CPUs of every other thread: the store's writer and WAL checkpointer, the list resolver,
    /// the TCP I/O thread (`sip.tcp_io_thread`).
    pub other_threads: Vec<usize>,
}

/// `[log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// env_logger filter, e.g. `info` or `presenced::sip=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// Transport of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTransport {
    /// Datagrams.
    Udp,
    /// Streams.
    Tcp,
}

/// One parsed `sip.listen` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// udp or tcp.
    pub transport: ListenTransport,
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not `udp:HOST:PORT` or `tcp:HOST:PORT`"))?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "udp" => ListenTransport::Udp,
            "tcp" => ListenTransport::Tcp,
            other => return Err(format!("unknown transport `{other}` (udp or tcp)")),
        };
        let addr = rest.parse::<SocketAddr>().map_err(|_| {
            format!("`{rest}` is not an IP address and port (IPv6 goes in brackets: [::1]:5060)")
        })?;
        Ok(Self { transport, addr })
    }
}

impl Settings {
    /// Reads defaults, then the file, then `PRESENCED__SECTION__KEY` variables, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("PRESENCED")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks relations between values that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        };
        if self.sip.listen.is_empty() {
            return Err(invalid("sip.listen", "at least one socket is needed"));
        }
        self.sip.listen_addrs()?;
        self.http.listen_addrs()?;
        if self.sip.max_message_bytes < 1024 {
            return Err(invalid("sip.max_message_bytes", "must be at least 1024"));
        }
        if self.sip.max_message_bytes > 16 * 1024 * 1024 {
            return Err(invalid("sip.max_message_bytes", "must be at most 16 MiB"));
        }
        if self.sip.tcp_idle_timeout_s == 0 {
            return Err(invalid("sip.tcp_idle_timeout_s", "must be positive"));
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err(invalid("sip.t2_ms", "need 0 < sip.t1_ms <= sip.t2_ms"));
        }
        if self.sip.t1_ms > 60_000 || self.sip.t2_ms > 600_000 {
            return Err(invalid(
                "sip.t1_ms",
                "at most 60000 (and sip.t2_ms at most 600000)",
            ));
        }
        if self.sip.tcp_idle_timeout_s > 86_400 * 7 {
            return Err(invalid("sip.tcp_idle_timeout_s", "at most one week"));
        }
        const YEAR: u32 = 365 * 86_400;
        for (key, value) in [
            ("presence.max_expires", self.presence.max_expires),
            (
                "presence.publish_max_expires",
                self.presence.publish_max_expires,
            ),
            ("registrar.max_expires", self.registrar.max_expires),
        ] {
            if value > YEAR {
                return Err(invalid(key, "at most one year (31536000 s)"));
            }
        }
        let p = &self.presence;
        if p.min_expires > p.max_expires {
            return Err(invalid(
                "presence.min_expires",
                "must not exceed presence.max_expires",
            ));
        }
        if p.default_expires < p.min_expires || p.default_expires > p.max_expires {
            return Err(invalid(
                "presence.default_expires",
                "must lie between presence.min_expires and presence.max_expires",
            ));
        }
        if p.publish_default_expires == 0 || p.publish_default_expires > p.publish_max_expires {
            return Err(invalid(
                "presence.publish_default_expires",
                "must be positive and not exceed presence.publish_max_expires",
            ));
        }
        if p.publish_min_expires > p.publish_max_expires {
            return Err(invalid(
                "presence.publish_min_expires",
                "must not exceed presence.publish_max_expires",
            ));
        }
        if p.max_publications_per_resource == 0 {
            return Err(invalid(
                "presence.max_publications_per_resource",
                "must be positive",
            ));
        }
        if p.max_body_bytes == 0 || p.max_xml_depth == 0 {
            return Err(invalid(
                "presence.max_body_bytes",
                "limits must be positive",
            ));
        }
        let r = &self.registrar;
        if r.min_expires > r.max_expires || r.default_expires == 0 {
            return Err(invalid(
                "registrar.min_expires",
                "need registrar.min_expires <= registrar.max_expires and a positive default",
            ));
        }
        if r.priority.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
            return Err(invalid(
                "registrar.priority",
                "must lie between 0.0 and 1.0",
            ));
        }
        let l = &self.rls;
        if l.max_resources == 0 || l.max_list_body_bytes == 0 || l.max_inflate_ratio == 0 {
            return Err(invalid("rls.max_resources", "limits must be positive"));
        }
        // Room for the RLMI of one resource and one PIDF part at least.
        if l.max_notify_bytes < 4096 {
            return Err(invalid("rls.max_notify_bytes", "must be at least 4096"));
        }
        let u = &self.users;
        if u.pool_size == 0 || u.pool_size > 64 {
            return Err(invalid("users.pool_size", "must lie between 1 and 64"));
        }
        if u.phones_per_query == 0 || u.phones_per_query > 5000 {
            return Err(invalid(
                "users.phones_per_query",
                "must lie between 1 and 5000",
            ));
        }
        if u.first_notify_wait_ms > 10_000 {
            return Err(invalid("users.first_notify_wait_ms", "at most 10000"));
        }
        Ok(())
    }
}

impl AffinitySettings {
    /// Each set with its key, for errors that name it.
    pub fn keyed(&self) -> [(&'static str, &[usize]); 2] {
        [
            ("affinity.sip_thread", &self.sip_thread),
            ("affinity.other_threads", &self.other_threads),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_entries_parse_ipv4_and_bracketed_ipv6() {
        let v4: ListenAddr = "udp:127.0.0.1:5060".parse().unwrap();
        assert_eq!(v4.transport, ListenTransport::Udp);
        let v6: ListenAddr = "tcp:[::1]:5070".parse().unwrap();
        assert_eq!(v6.addr.port(), 5070);
        assert!("sctp:127.0.0.1:5060".parse::<ListenAddr>().is_err());
        assert!("udp:localhost".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn defaults_validate() {
        Settings::default().validate().unwrap();
    }
}
