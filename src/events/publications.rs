//! `Publications`: one resource's publications by entity-tag (RFC 3903), for every package —
//! presence's presentities and the other packages' resources keep theirs in one.
//!
//! Owns: the RFC 3903 §6 steps that depend on state — an unknown entity-tag gets 412, a
//! refresh keeps the body, a modify replaces it, every accepted PUBLISH gets a new
//! entity-tag — planned without changing anything (the actor commits the plan to the store
//! first) and applied once committed; the modification order that "newest first" means; each
//! publication's expiry timer handle. Must not: arm or cancel timers itself (the actor's
//! context does), talk to the store, or know what a body means.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::SpawnHandle;
use log::warn;

use crate::inspect::PublicationReport;
use crate::metrics::metrics;
use crate::presence::presentity::PublishAccepted;
use crate::presence::publication::{new_entity_tag, PublishKind};
use crate::sip::Reject;

/// A publication in the table.
#[derive(Debug)]
pub struct Published<B> {
    /// What was published (the package's form of it).
    pub body: B,
    /// Order of its last modification (higher is newer).
    pub seq: u64,
    /// Its expiry timer.
    timer: SpawnHandle,
    /// When it expires.
    pub expires_at: Instant,
}

/// What an accepted PUBLISH will do, once committed.
#[derive(Debug)]
pub enum Plan<B> {
    /// Store `body` under `etag`, replacing `old`.
    Put {
        /// The entity-tag it replaces (refresh or modify).
        old: Option<String>,
        /// Its new entity-tag.
        etag: String,
        /// The body: the new one, or the old one refreshed.
        body: B,
        /// Its modification order.
        seq: u64,
        /// Granted expiry, seconds.
        expires: u32,
        /// The body changed (initial or modify), not only the expiry.
        modified: bool,
    },
    /// Remove the publication `etag`.
    Remove {
        /// Its entity-tag.
        etag: String,
    },
}

/// The table.
#[derive(Debug)]
pub struct Publications<B> {
    entries: HashMap<String, Published<B>>,
    seq: u64,
    /// Live publications at most.
    cap: usize,
    /// Its event package (the metrics label).
    package: &'static str,
}

impl<B> Publications<B> {
    /// An empty table of `package` holding at most `cap` publications.
    pub fn new(package: &'static str, cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            seq: 0,
            cap,
            package,
        }
    }

    fn gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        metrics()
            .publications
            .get_or_create(&[("package", self.package)])
            .clone()
    }
}

impl<B> Drop for Publications<B> {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            self.gauge()
                .dec_by(i64::try_from(self.entries.len()).unwrap_or(i64::MAX));
        }
    }
}

impl<B> Plan<B> {
    /// What the 2xx says once the plan is committed: the new entity-tag and expiry, or none
    /// for a removal.
    pub fn accepted(&self) -> PublishAccepted {
        match self {
            Plan::Remove { .. } => PublishAccepted {
                etag: None,
                expires: 0,
            },
            Plan::Put { etag, expires, .. } => PublishAccepted {
                etag: Some(etag.clone()),
                expires: *expires,
            },
        }
    }
}

impl<B: Clone> Publications<B> {
    /// RFC 3903 §6 against the table: what a PUBLISH of `kind` (with `body` for initial and
    /// modify) to resource `aor` changes, without changing it.
    pub fn plan(
        &mut self,
        aor: &impl std::fmt::Display,
        kind: PublishKind,
        body: Option<B>,
        expires: u32,
    ) -> Result<Plan<B>, Reject> {
        self.seq += 1;
        let seq = self.seq;
        match kind {
            PublishKind::Initial if self.entries.len() >= self.cap => {
                warn!(
                    "{aor}: new publication refused, {} live already",
                    self.entries.len()
                );
                Err(Reject::with_reason(403, "Too Many Publications"))
            }
            PublishKind::Initial => Ok(Plan::Put {
                old: None,
                etag: new_entity_tag(),
                body: body.ok_or(Reject::new(400))?,
                seq,
                expires,
                modified: true,
            }),
            PublishKind::Refresh(old) | PublishKind::Modify(old) | PublishKind::Remove(old) => {
                // RFC 3903 §6 step 5: an unknown entity-tag gets 412.
                let Some(current) = self.entries.get(&old) else {
                    return Err(Reject::new(412));
                };
                if expires == 0 {
                    return Ok(Plan::Remove { etag: old });
                }
                let (body, seq, modified) = match body {
                    Some(b) => (b, seq, true),
                    None => (current.body.clone(), current.seq, false),
                };
                Ok(Plan::Put {
                    old: Some(old),
                    etag: new_entity_tag(),
                    body,
                    seq,
                    expires,
                    modified,
                })
            }
        }
    }
}

impl<B> Publications<B> {
    /// Applies a committed plan; `arm` starts the new publication's expiry timer. Returns the
    /// timers of the publications it ended (to cancel).
    pub fn apply(
        &mut self,
        plan: Plan<B>,
        arm: impl FnOnce(&str, u32) -> SpawnHandle,
    ) -> Vec<SpawnHandle> {
        match plan {
            Plan::Remove { etag } => self.remove(&etag).into_iter().collect(),
            Plan::Put {
                old,
                etag,
                body,
                seq,
                expires,
                ..
            } => {
                let ended = old.and_then(|o| self.remove(&o));
                let timer = arm(&etag, expires);
                self.insert(etag, body, seq, expires, timer);
                ended.into_iter().collect()
            }
        }
    }

    /// Puts a publication in (one restored from the store, or a planned one).
    pub fn insert(&mut self, etag: String, body: B, seq: u64, expires: u32, timer: SpawnHandle) {
        let expires_at = Instant::now() + Duration::from_secs(u64::from(expires));
        self.seq = self.seq.max(seq);
        if self
            .entries
            .insert(
                etag,
                Published {
                    body,
                    seq,
                    timer,
                    expires_at,
                },
            )
            .is_none()
        {
            self.gauge().inc();
        }
    }

    /// Takes a publication out (expired, removed or superseded): its timer, to cancel, or
    /// `None` when it was not there.
    pub fn remove(&mut self, etag: &str) -> Option<SpawnHandle> {
        let removed = self.entries.remove(etag)?;
        self.gauge().dec();
        Some(removed.timer)
    }

    /// Whether `etag` is in the table.
    pub fn contains(&self, etag: &str) -> bool {
        self.entries.contains_key(etag)
    }

    /// No publication is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live publications, by entity-tag, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Published<B>)> {
        self.entries.iter()
    }

    /// The live publications as the admin API shows them, by entity-tag; `content_type` says
    /// each one's media type.
    pub fn reports(&self, content_type: impl Fn(&B) -> String) -> Vec<PublicationReport> {
        let now = Instant::now();
        let mut out: Vec<PublicationReport> = self
            .entries
            .iter()
            .map(|(etag, p)| PublicationReport {
                package: self.package,
                etag: etag.clone(),
                content_type: content_type(&p.body),
                expires_in: p.expires_at.saturating_duration_since(now).as_secs(),
            })
            .collect();
        out.sort_by(|a, b| a.etag.cmp(&b.etag));
        out
    }

    /// The live publications with their entity-tags, newest modification first.
    pub fn newest_first(&self) -> Vec<(&str, &Published<B>)> {
        let mut live: Vec<(&str, &Published<B>)> =
            self.entries.iter().map(|(t, p)| (t.as_str(), p)).collect();
        live.sort_by_key(|(_, p)| std::cmp::Reverse(p.seq));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer() -> SpawnHandle {
        SpawnHandle::default()
    }

    #[test]
    fn entity_tags_follow_rfc_3903() {
        let mut t: Publications<&str> = Publications::new("x-test", 2);
        assert_eq!(
            t.plan(&"sip:a@b", PublishKind::Refresh("nope".into()), None, 60)
                .unwrap_err()
                .status,
            412
        );
        let plan = t
            .plan(&"sip:a@b", PublishKind::Initial, Some("a"), 60)
            .unwrap();
        let Plan::Put {
            etag: first,
            seq: first_seq,
            ..
        } = &plan
        else {
            panic!("{plan:?}")
        };
        let (first, first_seq) = (first.clone(), *first_seq);
        assert!(t.apply(plan, |_, _| timer()).is_empty());
        // A refresh keeps the body and its order, under a new entity-tag.
        let plan = t
            .plan(&"sip:a@b", PublishKind::Refresh(first.clone()), None, 60)
            .unwrap();
        let Plan::Put {
            etag: second,
            body,
            seq,
            modified,
            ..
        } = &plan
        else {
            panic!("{plan:?}")
        };
        assert_eq!((*body, *seq, *modified), ("a", first_seq, false));
        assert_ne!(*second, first);
        let second = second.clone();
        assert_eq!(t.apply(plan, |_, _| timer()).len(), 1, "the old timer ends");
        assert!(!t.contains(&first) && t.contains(&second));
        // A modify is newest; an expiry of 0 removes.
        let plan = t
            .plan(&"sip:a@b", PublishKind::Initial, Some("b"), 60)
            .unwrap();
        t.apply(plan, |_, _| timer());
        let full = t.plan(&"sip:a@b", PublishKind::Initial, Some("x"), 60);
        assert_eq!(full.unwrap_err().status, 403, "two live already");
        let plan = t
            .plan(
                &"sip:a@b",
                PublishKind::Modify(second.clone()),
                Some("c"),
                60,
            )
            .unwrap();
        t.apply(plan, |_, _| timer());
        let order: Vec<&str> = t.newest_first().iter().map(|(_, p)| p.body).collect();
        assert_eq!(order, ["c", "b"]);
        let (tag, _) = t.iter().find(|(_, p)| p.body == "c").unwrap();
        let plan = t
            .plan(&"sip:a@b", PublishKind::Remove(tag.clone()), None, 0)
            .unwrap();
        assert!(matches!(plan, Plan::Remove { .. }));
        t.apply(plan, |_, _| timer());
        assert_eq!(t.iter().count(), 1);
    }
}
