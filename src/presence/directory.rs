//! `UserDirectory`: what the users database says about users and phone numbers, as the SIP
//! thread sees it.
//!
//! Owns: the answers of the users database, cached for `users.cache_ttl_s`; the lookups in
//! flight, so that a burst of questions about one user or number costs one query; batching of
//! the questions asked in one turn of the SIP thread (users in batches of `USERS_PER_BATCH`,
//! numbers in chunked runs of `phones_query`; a list's numbers are handed over at once with
//! [`ResolvePhones`]), so that a burst keeps few futures waiting here; and the database's health, logged once when it goes and once when
//! it comes back. Created by `app` when a users query is configured; lives as long as the
//! system. Runs on the SIP thread and never blocks: the queries run on the `UsersDb` pool.
//! Must not: build documents or decide what a watcher sees (presentities do).
//!
//! ```text
//!  LookupUser ─► cache? ─hit─► answer
//!                  └─miss─► in flight? ─yes─► wait with it
//!                                └─no──► queue ─► (next turn) FindUsers batches on the pool
//!                                                 ─► cache, answer all waiting
//!  ResolvePhones / LookupPhone ─► queue ─► (next turn) chunks of phones_per_query ─► pool
//!  owners found ─► numbers cached, and their owners cached as existing users
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info, warn};
use tokio::sync::oneshot;

use super::aor::Aor;
use crate::store::users::{FindPhoneOwners, FindUsers, PhoneOwnerRow, UsersDb};
use crate::store::StoreError;

/// Users asked about in one message to the pool: small enough that both of its threads share
/// a burst, large enough that a burst costs few messages.
const USERS_PER_BATCH: usize = 50;

/// What the users database says about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// The user exists.
    Exists,
    /// The database does not know the user.
    Absent,
    /// The database could not be asked (down, or the question timed out).
    Unavailable,
}

/// What the users database says about a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneStatus {
    /// The number belongs to this user.
    Owner(Aor),
    /// No user has it.
    NoOwner,
    /// The database could not be asked.
    Unavailable,
}

/// Does the user of `aor` exist?
#[derive(Message, Debug)]
#[rtype(result = "UserStatus")]
pub struct LookupUser(pub Aor);

/// Who owns the number of `aor` (a `user=phone` AOR)?
#[derive(Message, Debug)]
#[rtype(result = "PhoneStatus")]
pub struct LookupPhone(pub Aor);

/// Look these numbers up together (a list's members), ahead of their presentities' own
/// `LookupPhone`s, which then wait for this one run; `fresh` forgets cached answers first
/// (a list refresh resolves its numbers again).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResolvePhones {
    /// The numbers' AORs.
    pub phones: Vec<Aor>,
    /// Ask the database even where an answer is cached.
    pub fresh: bool,
}

/// Settings of the directory.
#[derive(Debug, Clone, Copy)]
pub struct DirectorySettings {
    /// `user_query` is configured.
    pub users: bool,
    /// `phones_query` is configured.
    pub phones: bool,
    /// How long an answer is reused.
    pub ttl: Duration,
    /// Most answers kept, of each kind.
    pub max_entries: usize,
    /// Most numbers per run of `phones_query`.
    pub phones_per_query: usize,
}

/// A cached answer.
struct Cached<T> {
    at: Instant,
    value: T,
}

/// The directory actor.
pub struct UserDirectory {
    settings: DirectorySettings,
    /// The pool running the queries.
    db: Addr<UsersDb>,
    users: HashMap<Aor, Cached<bool>>,
    phones: HashMap<Aor, Cached<Option<Aor>>>,
    /// Who waits for a user lookup in flight.
    user_waiters: HashMap<Aor, Vec<oneshot::Sender<UserStatus>>>,
    /// Who waits for a number in flight or queued (an entry exists for each).
    phone_waiters: HashMap<Aor, Vec<oneshot::Sender<PhoneStatus>>>,
    /// Numbers waiting for the next run of `phones_query`.
    phone_queue: Vec<Aor>,
    /// Users waiting for the next batch of `user_query` runs.
    user_queue: Vec<Aor>,
    /// A run of the queue is scheduled.
    flush_armed: bool,
    /// The last query failed (logged once until one succeeds).
    down: bool,
}

impl UserDirectory {
    /// A directory asking `db`.
    pub fn new(settings: DirectorySettings, db: Addr<UsersDb>) -> Self {
        Self {
            settings,
            db,
            users: HashMap::new(),
            phones: HashMap::new(),
            user_waiters: HashMap::new(),
            phone_waiters: HashMap::new(),
            phone_queue: Vec::new(),
            user_queue: Vec::new(),
            flush_armed: false,
            down: false,
        }
    }

    fn fresh<T>(&self, c: &Cached<T>, now: Instant) -> bool {
        now.duration_since(c.at) < self.settings.ttl
    }

    /// Notes the database's health after a query; logs a change once.
    fn health(&mut self, result: Result<(), &StoreError>) {
        match result {
            Ok(()) if self.down => {
                self.down = false;
                info!("users database reachable again");
            }
            Err(e) if !self.down => {
                self.down = true;
                warn!("users database unavailable ({e}): lookups answer unknown until it is back");
            }
            _ => {}
        }
    }

    /// Caches `value`; past the limit, expired answers go first, and a full cache of live
    /// answers takes no more (the next lookup asks again).
    fn remember<T>(
        map: &mut HashMap<Aor, Cached<T>>,
        settings: &DirectorySettings,
        key: Aor,
        value: T,
        now: Instant,
    ) {
        if map.len() >= settings.max_entries && !map.contains_key(&key) {
            map.retain(|_, c| now.duration_since(c.at) < settings.ttl);
            if map.len() >= settings.max_entries {
                return;
            }
        }
        map.insert(key, Cached { at: now, value });
    }

    fn user_answered(&mut self, aor: &Aor, status: UserStatus) {
        if status != UserStatus::Unavailable {
            let now = Instant::now();
            Self::remember(
                &mut self.users,
                &self.settings,
                aor.clone(),
                status == UserStatus::Exists,
                now,
            );
        }
        for w in self.user_waiters.remove(aor).into_iter().flatten() {
            let _ = w.send(status);
        }
    }

    /// Queues `phone` for the next run, unless it is already queued or in flight.
    fn queue_phone(&mut self, phone: Aor, ctx: &mut Context<Self>) {
        if self.phone_waiters.contains_key(&phone) {
            return;
        }
        self.phone_waiters.insert(phone.clone(), Vec::new());
        self.phone_queue.push(phone);
        self.arm_flush(ctx);
    }

    /// The questions asked in this turn of the SIP thread go out together: one message (and
    /// one future waiting here) per batch, not per question.
    fn arm_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_armed {
            self.flush_armed = true;
            ctx.run_later(Duration::ZERO, |act, ctx| act.flush(ctx));
        }
    }

    /// Sends the queued users and numbers to the pool in batches.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_armed = false;
        let users = std::mem::take(&mut self.user_queue);
        for chunk in users.chunks(USERS_PER_BATCH) {
            let chunk = chunk.to_vec();
            let accounts = chunk.iter().map(split_aor).collect();
            let run = self.db.send(FindUsers { accounts });
            ctx.spawn(run.into_actor(self).map(move |res, act, _| {
                let found = match res {
                    Ok(Ok(found)) => {
                        act.health(Ok(()));
                        Some(found)
                    }
                    Ok(Err(e)) => {
                        act.health(Err(&e));
                        None
                    }
                    Err(_) => None,
                };
                for (i, aor) in chunk.iter().enumerate() {
                    let status = match found.as_ref().and_then(|f| f.get(i)) {
                        Some(true) => UserStatus::Exists,
                        Some(false) => UserStatus::Absent,
                        None => UserStatus::Unavailable,
                    };
                    act.user_answered(aor, status);
                }
            }));
        }
        let queue = std::mem::take(&mut self.phone_queue);
        for chunk in queue.chunks(self.settings.phones_per_query) {
            let chunk = chunk.to_vec();
            let numbers = chunk.iter().map(phone_number).collect();
            let run = self.db.send(FindPhoneOwners { phones: numbers });
            ctx.spawn(run.into_actor(self).map(move |res, act, _| {
                let rows = match res {
                    Ok(Ok(rows)) => {
                        act.health(Ok(()));
                        Some(rows)
                    }
                    Ok(Err(e)) => {
                        act.health(Err(&e));
                        None
                    }
                    Err(_) => {
                        act.health(Err(&StoreError::Gone));
                        None
                    }
                };
                act.phones_answered(chunk, rows);
            }));
        }
    }

    fn phones_answered(&mut self, chunk: Vec<Aor>, rows: Option<Vec<PhoneOwnerRow>>) {
        let now = Instant::now();
        let owners: Option<HashMap<String, Vec<Aor>>> = rows.map(|rows| {
            let mut owners: HashMap<String, Vec<Aor>> = HashMap::new();
            for row in rows {
                match Aor::parse(&format!("sip:{}@{}", row.username, row.domain)) {
                    Some(owner) => owners.entry(row.phone).or_default().push(owner),
                    None => warn!(
                        "users: phones_query gave an unusable owner {}@{} for {}",
                        row.username, row.domain, row.phone
                    ),
                }
            }
            owners
        });
        for phone in chunk {
            let status = match &owners {
                None => PhoneStatus::Unavailable,
                Some(owners) => {
                    let number = phone_number(&phone);
                    match owners.get(&number).and_then(|o| pick_owner(&phone, o)) {
                        Some(owner) => PhoneStatus::Owner(owner),
                        None => PhoneStatus::NoOwner,
                    }
                }
            };
            match &status {
                PhoneStatus::Owner(owner) => {
                    // A number's owner is a user of the service: no second query for them.
                    Self::remember(&mut self.users, &self.settings, owner.clone(), true, now);
                    Self::remember(
                        &mut self.phones,
                        &self.settings,
                        phone.clone(),
                        Some(owner.clone()),
                        now,
                    );
                }
                PhoneStatus::NoOwner => {
                    Self::remember(&mut self.phones, &self.settings, phone.clone(), None, now)
                }
                PhoneStatus::Unavailable => {}
            }
            debug!("users: {phone} -> {status:?}");
            for w in self.phone_waiters.remove(&phone).into_iter().flatten() {
                let _ = w.send(status.clone());
            }
        }
    }
}

/// The number a `user=phone` AOR names: its user part.
pub fn phone_number(phone: &Aor) -> String {
    let s = phone.as_str();
    let user = s.strip_prefix("sip:").unwrap_or(s);
    user.split('@').next().unwrap_or("").to_owned()
}

/// Whether `aor` names a telephone number (`;user=phone`, kept by AOR normalisation).
pub fn is_phone(aor: &Aor) -> bool {
    aor.as_str().ends_with(";user=phone")
}

/// The owner in the number's own domain if there is one, else the first.
fn pick_owner(phone: &Aor, owners: &[Aor]) -> Option<Aor> {
    let domain = phone
        .as_str()
        .split_once('@')
        .map(|(_, d)| d.trim_end_matches(";user=phone"))
        .unwrap_or("");
    owners
        .iter()
        .find(|o| o.as_str().ends_with(&format!("@{domain}")))
        .or_else(|| owners.first())
        .cloned()
}

impl Actor for UserDirectory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Expired answers are dropped now and then, so the cache holds only live ones.
        let every = self.settings.ttl.max(Duration::from_secs(1));
        ctx.run_interval(every, |act, _| {
            let now = Instant::now();
            let ttl = act.settings.ttl;
            act.users.retain(|_, c| now.duration_since(c.at) < ttl);
            act.phones.retain(|_, c| now.duration_since(c.at) < ttl);
        });
    }
}

impl Handler<LookupUser> for UserDirectory {
    type Result = ResponseFuture<UserStatus>;

    fn handle(&mut self, msg: LookupUser, ctx: &mut Self::Context) -> Self::Result {
        let aor = msg.0;
        if !self.settings.users {
            return Box::pin(std::future::ready(UserStatus::Absent));
        }
        let now = Instant::now();
        if let Some(c) = self.users.get(&aor).filter(|c| self.fresh(c, now)) {
            let status = if c.value {
                UserStatus::Exists
            } else {
                UserStatus::Absent
            };
            return Box::pin(std::future::ready(status));
        }
        let (tx, rx) = oneshot::channel();
        let waiting = self.user_waiters.entry(aor.clone()).or_default();
        waiting.push(tx);
        if waiting.len() == 1 {
            self.user_queue.push(aor);
            self.arm_flush(ctx);
        }
        Box::pin(async move { rx.await.unwrap_or(UserStatus::Unavailable) })
    }
}

impl Handler<LookupPhone> for UserDirectory {
    type Result = ResponseFuture<PhoneStatus>;

    fn handle(&mut self, msg: LookupPhone, ctx: &mut Self::Context) -> Self::Result {
        let phone = msg.0;
        if !self.settings.phones {
            return Box::pin(std::future::ready(PhoneStatus::NoOwner));
        }
        let now = Instant::now();
        let cached = self.phones.get(&phone).filter(|c| self.fresh(c, now));
        if let (Some(c), false) = (cached, self.phone_waiters.contains_key(&phone)) {
            let status = match &c.value {
                Some(owner) => PhoneStatus::Owner(owner.clone()),
                None => PhoneStatus::NoOwner,
            };
            return Box::pin(std::future::ready(status));
        }
        self.queue_phone(phone.clone(), ctx);
        let (tx, rx) = oneshot::channel();
        if let Some(w) = self.phone_waiters.get_mut(&phone) {
            w.push(tx);
        }
        Box::pin(async move { rx.await.unwrap_or(PhoneStatus::Unavailable) })
    }
}

impl Handler<ResolvePhones> for UserDirectory {
    type Result = ();

    fn handle(&mut self, msg: ResolvePhones, ctx: &mut Self::Context) {
        if !self.settings.phones {
            return;
        }
        let now = Instant::now();
        for phone in msg.phones {
            if msg.fresh {
                self.phones.remove(&phone);
            } else if self.phones.get(&phone).is_some_and(|c| self.fresh(c, now)) {
                continue;
            }
            self.queue_phone(phone, ctx);
        }
    }
}

/// The user and host parts of an AOR (`sip:user@host`).
fn split_aor(aor: &Aor) -> (String, String) {
    let s = aor.as_str();
    let s = s.strip_prefix("sip:").unwrap_or(s);
    let s = s.split(';').next().unwrap_or(s);
    match s.rsplit_once('@') {
        Some((u, d)) => (u.to_owned(), d.to_owned()),
        None => (s.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aor(s: &str) -> Aor {
        Aor::parse(s).unwrap()
    }

    #[test]
    fn numbers_and_accounts_are_read_from_aors() {
        let phone = aor("sip:+33123456789@example.org;user=phone");
        assert!(is_phone(&phone));
        assert!(!is_phone(&aor("sip:alice@example.org")));
        assert_eq!(phone_number(&phone), "+33123456789");
        assert_eq!(
            split_aor(&aor("sip:alice@example.org")),
            ("alice".into(), "example.org".into())
        );
    }

    #[test]
    fn the_owner_in_the_numbers_domain_is_preferred() {
        let phone = aor("sip:+331@example.org;user=phone");
        let owners = [aor("sip:a@other.net"), aor("sip:b@example.org")];
        assert_eq!(pick_owner(&phone, &owners), Some(aor("sip:b@example.org")));
        assert_eq!(
            pick_owner(&phone, &owners[..1]),
            Some(aor("sip:a@other.net"))
        );
        assert_eq!(pick_owner(&phone, &[]), None);
    }
}
