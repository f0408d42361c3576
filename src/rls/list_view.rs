//! `ListView`: what a list subscription (RFC 4662) notifies — the state of every member of a
//! resource list, as `multipart/related` bodies with an RLMI root.
//!
//! Owns: the list's members and their latest documents, which members changed since the last
//! NOTIFY, throttling (`rls.min_notify_interval_ms`), spreading a state larger than
//! `rls.max_notify_bytes` over several NOTIFYs, and the body forms (RFC or liblinphone).
//! The `Watcher<ListView>` actor around it owns the dialog and sends. Members are watched
//! where their package keeps them (`ListMembers`: presentities, or a package's resources such
//! as the dialog lamps of a busy-lamp list), like any watcher.
//! Must not: reach into presentities or resources, or send SIP itself.
//!
//! ```text
//!  attach ──► wait for every member's first document ──► full state (fullState="true")
//!  member changes ──► remember ──► interval elapsed ──► partial (only the changed resources)
//!  state above max_notify_bytes ──► first NOTIFY ──► rest in the NOTIFYs right after it
//!  refresh / list replaced ──► full state again
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::list::{self, ListLimits, ListSource, Member};
use super::members::ListMembers;
use super::multipart::{self, Part, PartIdStyle};
use super::rlmi::{self, Instance, InstanceState, Resource, RLMI_CONTENT_TYPE};
use crate::presence::aor::Aor;
use crate::presence::directory::{is_phone, ResolvePhones, UserDirectory};
use crate::presence::document::{SharedDocument, PRESENCE_PACKAGE};
use crate::presence::presentity::PresenceChanged;
use crate::presence::view::{Due, NotifyContent, NotifyView, UpdateFuture};
use crate::sip::message::Request;
use crate::sip::Reject;
use crate::store::{ListResolver, ResolveList, SubscriptionRow};

/// Settings shared by every list subscription.
#[derive(Debug, Clone)]
pub struct ListSettings {
    /// Partial NOTIFYs are at least this far apart.
    pub min_notify_interval: Duration,
    /// Largest body before content coding.
    pub max_notify_bytes: usize,
    /// Limits on request-contained lists.
    pub limits: ListLimits,
    /// Retry-After of a 503 when a server-known list cannot be looked up, seconds.
    pub retry_after: u32,
    /// Look up initial SUBSCRIBEs without `Supported: eventlist` as well (`SubscribeRouter`).
    pub lookup_without_eventlist: bool,
}

/// What an in-dialog SUBSCRIBE does to the list.
#[derive(Debug)]
pub enum ListUpdate {
    /// The list stays as it is.
    Keep,
    /// The list is replaced by these members.
    Replace(Vec<Member>),
}

/// Who a list is looked up for, and where (server-known lists only).
#[derive(Clone)]
pub struct ServerLookup {
    /// The resolver running `rls.list_query`.
    pub resolver: Addr<ListResolver>,
    /// The subscriber's AOR (`:from`).
    pub subscriber: String,
}

/// The view of one list subscription.
pub struct ListView {
    list_uri: String,
    source: ListSource,
    members: Vec<Member>,
    /// Latest document of each watched member.
    docs: HashMap<Aor, SharedDocument>,
    /// Members whose first document has not arrived yet.
    awaiting: HashSet<Aor>,
    /// Members changed since the last NOTIFY.
    changed: HashSet<Aor>,
    /// When the first of those changes was made.
    first_change: Option<Instant>,
    /// Indices of members still to be sent in the NOTIFYs right after this one.
    spill: VecDeque<usize>,
    last_sent: Option<Instant>,
    /// Per member, a stable RLMI instance id.
    instance_ids: HashMap<Aor, String>,
    style: PartIdStyle,
    linphone: bool,
    settings: Arc<ListSettings>,
    /// Where the members are watched.
    members_at: ListMembers,
    /// For server-known lists: looked up again on refresh.
    lookup: Option<ServerLookup>,
    /// Resolves the list's phone numbers in one batch; none without a users database.
    directory: Option<Addr<UserDirectory>>,
}

impl ListView {
    /// A view of `members` (not yet attached: `attach` does that).
    pub fn new(
        list_uri: String,
        source: ListSource,
        members: Vec<Member>,
        linphone: bool,
        settings: Arc<ListSettings>,
        members_at: ListMembers,
        lookup: Option<ServerLookup>,
    ) -> Self {
        Self {
            list_uri,
            source,
            members,
            docs: HashMap::new(),
            awaiting: HashSet::new(),
            changed: HashSet::new(),
            first_change: None,
            spill: VecDeque::new(),
            last_sent: None,
            instance_ids: HashMap::new(),
            style: if linphone {
                PartIdStyle::Linphone
            } else {
                PartIdStyle::Rfc
            },
            linphone,
            settings,
            members_at,
            lookup,
            directory: None,
        }
    }

    /// The list's phone numbers are resolved through `directory`.
    pub fn with_directory(mut self, directory: Option<Addr<UserDirectory>>) -> Self {
        self.directory = directory;
        self
    }

    /// The members that are phone numbers.
    fn phones(members: &[Member]) -> Vec<Aor> {
        Self::watched(members)
            .into_iter()
            .filter(is_phone)
            .collect()
    }

    /// Hands the list's numbers to the directory at once, so they cost one (chunked) query
    /// rather than one per member; `fresh` asks again what is cached (a refresh).
    fn resolve_phones(&self, fresh: bool) -> Vec<Aor> {
        if !self.members_at.resolves_phones() {
            return Vec::new();
        }
        let phones = Self::phones(&self.members);
        if let (Some(directory), false) = (&self.directory, phones.is_empty()) {
            // do_send: one per list subscription, refresh or list change.
            directory.do_send(ResolvePhones {
                phones: phones.clone(),
                fresh,
            });
        }
        phones
    }

    /// The watched members' AORs, without duplicates.
    fn watched(members: &[Member]) -> Vec<Aor> {
        let mut seen = HashSet::new();
        members
            .iter()
            .filter_map(|m| m.aor.clone())
            .filter(|a| seen.insert(a.clone()))
            .collect()
    }

    /// Attaches the view to its members' presentities; they answer with their documents.
    // DEVIATION: members in domains this server does not serve are watched at the local
    // presentity of their AOR too (RFC 4662 §4.4 would have the RLS subscribe to them with a
    // back-end SUBSCRIBE); a later issue adds back-end subscriptions.
    pub fn attach(&mut self, watcher_id: u64, watcher: Recipient<PresenceChanged>) {
        self.resolve_phones(false);
        let aors = Self::watched(&self.members);
        self.awaiting.extend(aors.iter().cloned());
        self.members_at.attach(watcher_id, aors, watcher);
    }

    fn instance_id(&mut self, aor: &Aor) -> String {
        let next = self.instance_ids.len();
        self.instance_ids
            .entry(aor.clone())
            .or_insert_with(|| format!("i{next}"))
            .clone()
    }

    /// The RLMI resource of member `i`, and its part if its state is known, for the list
    /// NOTIFY numbered `version`.
    fn resource(&mut self, i: usize, host: &str, version: u32) -> Option<(Resource, Option<Part>)> {
        let member = self.members.get(i)?.clone();
        let Some(aor) = &member.aor else {
            // Non-SIP URIs, <external> and <entry-ref> are never fetched: said so here.
            return Some((
                Resource {
                    uri: member.uri,
                    name: member.name,
                    instances: vec![Instance {
                        id: "x".into(),
                        state: InstanceState::Terminated {
                            reason: "noresource".into(),
                        },
                        cid: None,
                    }],
                },
                None,
            ));
        };
        let id = self.instance_id(aor);
        // A number is listed exactly as the subscriber wrote it: liblinphone matches the
        // resource to its friend byte for byte.
        let uri = if is_phone(aor) {
            member.uri.clone()
        } else {
            aor.to_string()
        };
        if self.docs.get(aor).is_some_and(|d| d.unowned_alias) {
            // A number no user owns: a resource with no instance (what liblinphone expects;
            // a part without a <contact> makes it abort).
            return Some((
                Resource {
                    uri,
                    name: member.name,
                    instances: Vec::new(),
                },
                None,
            ));
        }
        let (state, part) = match self.docs.get(aor) {
            Some(doc) => {
                let cid = multipart::new_content_id(host);
                (
                    (InstanceState::Active, Some(cid.clone())),
                    Some(Part {
                        content_id: cid,
                        content_type: self.members_at.part_type().into(),
                        body: self.members_at.part_body(&doc.body, version),
                    }),
                )
            }
            None => ((InstanceState::Pending, None), None),
        };
        Some((
            Resource {
                uri,
                name: member.name,
                instances: vec![Instance {
                    id,
                    state: state.0,
                    cid: state.1,
                }],
            },
            part,
        ))
    }

    /// Builds one body from the front of `spill`, as many resources as fit (at least one).
    fn build(&mut self, full_state: bool, version: u32) -> NotifyContent {
        let host = self
            .list_uri
            .rsplit_once('@')
            .map(|(_, h)| h.to_owned())
            .unwrap_or_else(|| "presenced".into());
        let boundary = multipart::new_boundary();
        let root_cid = multipart::new_content_id(&host);
        let root_type = format!("{RLMI_CONTENT_TYPE};charset=\"UTF-8\"");
        let empty_root = Part {
            content_id: root_cid.clone(),
            content_type: root_type.clone(),
            body: Bytes::new(),
        };
        let mut size = multipart::encode_part(&boundary, &empty_root, self.style).len()
            + multipart::closing(&boundary).len()
            + rlmi::document_overhead(&self.list_uri, version, full_state);
        let mut fragments = Vec::new();
        let mut parts = Vec::new();
        while let Some(&i) = self.spill.front() {
            let Some((resource, part)) = self.resource(i, &host, version) else {
                self.spill.pop_front();
                continue;
            };
            let fragment = rlmi::resource_xml(&resource);
            let cost = fragment.len()
                + part.as_ref().map_or(0, |p| {
                    multipart::encode_part(&boundary, p, self.style).len()
                });
            // At least one resource per NOTIFY, however large, so the list always progresses.
            if !fragments.is_empty() && size + cost > self.settings.max_notify_bytes {
                break;
            }
            size += cost;
            fragments.push(fragment);
            parts.extend(part);
            self.spill.pop_front();
        }
        let document = rlmi::document(&self.list_uri, version, full_state, &fragments);
        let root = Part {
            body: Bytes::from(document),
            ..empty_root
        };
        NotifyContent {
            content_type: multipart::content_type(&boundary, &root_type, &root_cid),
            body: multipart::body(&boundary, &root, &parts, self.style),
            changed_at: None,
        }
    }

    fn replace(
        &mut self,
        members: Vec<Member>,
        watcher_id: u64,
        watcher: Recipient<PresenceChanged>,
    ) {
        let old: HashSet<Aor> = Self::watched(&self.members).into_iter().collect();
        let new: HashSet<Aor> = Self::watched(&members).into_iter().collect();
        let added: Vec<Aor> = new.difference(&old).cloned().collect();
        let removed: Vec<Aor> = old.difference(&new).cloned().collect();
        for aor in &removed {
            self.docs.remove(aor);
            self.awaiting.remove(aor);
            self.changed.remove(aor);
        }
        self.members = members;
        self.spill.clear();
        if !removed.is_empty() {
            self.members_at.detach(watcher_id, removed);
        }
        if !added.is_empty() {
            self.awaiting.extend(added.iter().cloned());
            self.members_at.attach(watcher_id, added, watcher);
        }
    }
}

impl NotifyView for ListView {
    type Update = ListUpdate;

    fn changed(&mut self, doc: SharedDocument) {
        let aor = doc.aor.clone();
        // A document from a member removed meanwhile is dropped.
        if !self.awaiting.remove(&aor) && !self.docs.contains_key(&aor) {
            return;
        }
        self.first_change.get_or_insert(doc.changed_at);
        self.docs.insert(aor.clone(), doc);
        self.changed.insert(aor);
    }

    fn due(&self, full_state: bool, now: Instant) -> Due {
        if !self.awaiting.is_empty() {
            return Due::Nothing;
        }
        if full_state || !self.spill.is_empty() {
            return Due::Now;
        }
        if self.changed.is_empty() {
            return Due::Nothing;
        }
        match self.last_sent {
            // RFC 4662 §5.3 leaves the rate to the server: partial NOTIFYs are throttled.
            Some(last) if now < last + self.settings.min_notify_interval => {
                Due::At(last + self.settings.min_notify_interval)
            }
            _ => Due::Now,
        }
    }

    fn next(&mut self, full_state: bool, version: u32, now: Instant) -> NotifyContent {
        if full_state {
            self.changed.clear();
            self.spill = (0..self.members.len()).collect();
        } else if self.spill.is_empty() {
            let changed = std::mem::take(&mut self.changed);
            self.spill = self
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.aor.as_ref().is_some_and(|a| changed.contains(a)))
                .map(|(i, _)| i)
                .collect();
        }
        self.last_sent = Some(now);
        let first_change = self.first_change.take();
        let mut content = self.build(full_state, version);
        content.changed_at = first_change.filter(|_| !full_state);
        content
    }

    fn check_update(&self, request: &Request) -> UpdateFuture<ListUpdate> {
        match (self.source, &self.lookup) {
            (ListSource::Request, _) => {
                let update = list::request_list(request, &self.settings.limits)
                    .map(|m| m.map_or(ListUpdate::Keep, ListUpdate::Replace));
                Box::pin(std::future::ready(update))
            }
            (ListSource::Server, Some(lookup)) => {
                let lookup = lookup.clone();
                let list_uri = self.list_uri.clone();
                let retry_after = self.settings.retry_after.to_string();
                Box::pin(async move {
                    let rows = lookup
                        .resolver
                        .send(ResolveList {
                            list_uri,
                            subscriber: lookup.subscriber,
                        })
                        .await;
                    match rows {
                        // The list as it is now; a list that vanished keeps its last members
                        // until the subscription ends.
                        Ok(Ok(rows)) if !rows.is_empty() => {
                            Ok(ListUpdate::Replace(list::server_list(rows)))
                        }
                        Ok(Ok(_)) => Ok(ListUpdate::Keep),
                        _ => Err(Reject::new(503).header("Retry-After", retry_after)),
                    }
                })
            }
            (ListSource::Server, None) => Box::pin(std::future::ready(Ok(ListUpdate::Keep))),
        }
    }

    fn fill_row(&self, update: Option<&ListUpdate>, row: &mut SubscriptionRow) {
        let members = match update {
            Some(ListUpdate::Replace(m)) => m,
            _ => &self.members,
        };
        row.list_source = Some(self.source.as_str().to_owned());
        row.list_members = Some(list::to_text(members));
        row.linphone_compat = self.linphone;
    }

    fn apply_update(
        &mut self,
        update: ListUpdate,
        watcher_id: u64,
        watcher: Recipient<PresenceChanged>,
    ) {
        if let ListUpdate::Replace(members) = update {
            if members != self.members {
                self.replace(members, watcher_id, watcher);
            }
        }
        // A refresh resolves the numbers again: one that became a user's appears, one that
        // left the service disappears.
        let phones = self.resolve_phones(true);
        if !phones.is_empty() {
            self.members_at.reresolve(phones);
        }
    }

    fn detach(&mut self, watcher_id: u64) {
        self.members_at
            .detach(watcher_id, Self::watched(&self.members));
    }

    fn package(&self) -> &'static str {
        self.members_at.package()
    }

    fn kind(&self) -> &'static str {
        "list"
    }

    fn event_package(&self) -> &'static str {
        match self.members_at.package() {
            // liblinphone drops list NOTIFYs whose Event is not exactly `Presence`.
            PRESENCE_PACKAGE if self.linphone => "Presence",
            package => package,
        }
    }

    fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        // RFC 4662 §5.1: list NOTIFYs (and the 200) carry Require: eventlist.
        &[("Require", "eventlist")]
    }
}
