//! `Batch`: what one group commit does to each row, worked out from its changes in order.
//!
//! Owns: folding a batch's changes into at most one write per row (a publication's entity-tag,
//! a subscription's id, an AOR's bindings), so that each backend can write every kind of row
//! in one statement, in any order, and PostgreSQL can write the whole batch in one statement.
//! Must not: touch a connection.

use std::collections::HashMap;

use super::models::{BindingRow, PublicationRow, SubscriptionRow};
use super::Change;

/// The last state of one subscription in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionWrite {
    /// Created in this batch (its id is new), written whole.
    Create(SubscriptionRow),
    /// Written whole (refreshed); an existing row keeps the higher CSeq mark.
    Put(SubscriptionRow),
    /// Only its NOTIFY CSeq mark moves up (never down).
    Mark(i64),
    /// Deleted.
    Gone,
}

/// A batch's net effect, each row once.
#[derive(Debug, Default, PartialEq)]
pub struct Batch<'a> {
    /// Entity-tags to delete (none of them is also in `publications_new`).
    pub publications_gone: Vec<&'a str>,
    /// Publications to insert (their entity-tags are new).
    pub publications_new: Vec<&'a PublicationRow>,
    /// Subscriptions by id, in the order first seen.
    pub subscriptions: Vec<(&'a str, SubscriptionWrite)>,
    /// Every binding of each AOR, replacing what is stored; in the order first seen.
    pub bindings: Vec<(&'a str, &'a [BindingRow])>,
    /// The latest activity of each AOR, in the order first seen.
    pub activity: Vec<(&'a str, i64)>,
}

impl<'a> Batch<'a> {
    /// Folds `changes`, applied in order, into one write per row.
    pub fn of(changes: &'a [Change]) -> Self {
        let mut batch = Batch::default();
        let mut new_at: HashMap<&str, usize> = HashMap::new();
        let mut sub_at: HashMap<&str, usize> = HashMap::new();
        let mut aor_at: HashMap<&str, usize> = HashMap::new();
        let mut active_at: HashMap<&str, usize> = HashMap::new();
        let mut fresh: Vec<Option<&PublicationRow>> = Vec::new();
        for change in changes {
            match change {
                Change::PublicationSaved { row, replaces } => {
                    if let Some(old) = replaces {
                        batch.drop_publication(old, &mut new_at, &mut fresh);
                    }
                    new_at.insert(&row.etag, fresh.len());
                    fresh.push(Some(row));
                }
                Change::PublicationRemoved(etag) => {
                    batch.drop_publication(etag, &mut new_at, &mut fresh)
                }
                Change::SubscriptionCreated(row) => {
                    batch.subscription(&row.id, &mut sub_at, |_| {
                        SubscriptionWrite::Create(row.as_ref().clone())
                    });
                }
                Change::SubscriptionSaved(row) => {
                    batch.subscription(&row.id, &mut sub_at, |before| {
                        let row = row.as_ref().clone();
                        match before {
                            Some(SubscriptionWrite::Create(_)) => SubscriptionWrite::Create(row),
                            _ => SubscriptionWrite::Put(row),
                        }
                    });
                }
                Change::NotifyCSeqMark { id, mark } => {
                    let mark = *mark;
                    batch.subscription(id, &mut sub_at, |before| match before {
                        Some(SubscriptionWrite::Create(row)) => {
                            let mut row = row.clone();
                            raise_mark(&mut row, mark);
                            SubscriptionWrite::Create(row)
                        }
                        Some(SubscriptionWrite::Put(row)) => {
                            let mut row = row.clone();
                            raise_mark(&mut row, mark);
                            SubscriptionWrite::Put(row)
                        }
                        Some(SubscriptionWrite::Mark(m)) => SubscriptionWrite::Mark(mark.max(*m)),
                        Some(SubscriptionWrite::Gone) => SubscriptionWrite::Gone,
                        None => SubscriptionWrite::Mark(mark),
                    });
                }
                Change::SubscriptionRemoved(id) => {
                    batch.subscription(id, &mut sub_at, |_| SubscriptionWrite::Gone);
                }
                Change::BindingsReplaced { aor, rows } => match aor_at.get(aor.as_str()) {
                    Some(&i) => batch.bindings[i].1 = rows,
                    None => {
                        aor_at.insert(aor, batch.bindings.len());
                        batch.bindings.push((aor, rows));
                    }
                },
                Change::LastActive { aor, at } => match active_at.get(aor.as_str()) {
                    Some(&i) => batch.activity[i].1 = batch.activity[i].1.max(*at),
                    None => {
                        active_at.insert(aor, batch.activity.len());
                        batch.activity.push((aor, *at));
                    }
                },
            }
        }
        batch.publications_new = fresh.into_iter().flatten().collect();
        batch
    }

    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.publications_gone.is_empty()
            && self.publications_new.is_empty()
            && self.subscriptions.is_empty()
            && self.bindings.is_empty()
            && self.activity.is_empty()
    }

    /// A publication inserted earlier in the batch is simply not inserted; any other is
    /// deleted. Entity-tags are never reused, so a deleted one is not inserted again.
    fn drop_publication(
        &mut self,
        etag: &'a str,
        new_at: &mut HashMap<&'a str, usize>,
        fresh: &mut [Option<&'a PublicationRow>],
    ) {
        match new_at.remove(etag) {
            Some(i) => fresh[i] = None,
            None => self.publications_gone.push(etag),
        }
    }

    fn subscription(
        &mut self,
        id: &'a str,
        at: &mut HashMap<&'a str, usize>,
        next: impl FnOnce(Option<&SubscriptionWrite>) -> SubscriptionWrite,
    ) {
        match at.get(id) {
            Some(&i) => {
                let write = next(Some(&self.subscriptions[i].1));
                // A whole row written after a mark, or after another whole row, keeps the
                // higher mark: the refresh that wrote it knew only the committed one.
                let earlier_mark = match &self.subscriptions[i].1 {
                    SubscriptionWrite::Mark(m) => Some(*m),
                    SubscriptionWrite::Create(row) | SubscriptionWrite::Put(row) => {
                        Some(row.notify_cseq_mark)
                    }
                    SubscriptionWrite::Gone => None,
                };
                let write = match (earlier_mark, write) {
                    (Some(m), SubscriptionWrite::Put(mut row)) => {
                        raise_mark(&mut row, m);
                        SubscriptionWrite::Put(row)
                    }
                    (Some(m), SubscriptionWrite::Create(mut row)) => {
                        raise_mark(&mut row, m);
                        SubscriptionWrite::Create(row)
                    }
                    (_, write) => write,
                };
                self.subscriptions[i].1 = write;
            }
            None => {
                at.insert(id, self.subscriptions.len());
                self.subscriptions.push((id, next(None)));
            }
        }
    }

    /// The ids of subscriptions deleted.
    pub fn subscriptions_gone(&self) -> Vec<&'a str> {
        self.subscriptions
            .iter()
            .filter(|(_, w)| matches!(w, SubscriptionWrite::Gone))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The subscriptions written whole, created or not.
    pub fn subscriptions_put(&self) -> Vec<&SubscriptionRow> {
        self.subscriptions
            .iter()
            .filter_map(|(_, w)| match w {
                SubscriptionWrite::Create(row) | SubscriptionWrite::Put(row) => Some(row),
                _ => None,
            })
            .collect()
    }

    /// The subscriptions created in this batch (`created`) or else written whole.
    pub fn subscriptions_written(&self, created: bool) -> Vec<&SubscriptionRow> {
        self.subscriptions
            .iter()
            .filter_map(|(_, w)| match (w, created) {
                (SubscriptionWrite::Create(row), true) | (SubscriptionWrite::Put(row), false) => {
                    Some(row)
                }
                _ => None,
            })
            .collect()
    }

    /// The subscriptions whose mark alone moves.
    pub fn marks(&self) -> Vec<(&'a str, i64)> {
        self.subscriptions
            .iter()
            .filter_map(|(id, w)| match w {
                SubscriptionWrite::Mark(m) => Some((*id, *m)),
                _ => None,
            })
            .collect()
    }
}

/// Moves a row's mark (and the RLMI version bound, mark − 1) up to `mark` if it is higher.
fn raise_mark(row: &mut SubscriptionRow, mark: i64) {
    if mark > row.notify_cseq_mark {
        row.notify_cseq_mark = mark;
        row.document_version = mark - 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn publication(etag: &str) -> PublicationRow {
        PublicationRow {
            etag: etag.into(),
            aor: "sip:a@b".into(),
            body: Vec::new(),
            content_type: "application/pidf+xml".into(),
            expires_at: 1,
            seq: 1,
            event: "presence".into(),
        }
    }

    pub(crate) fn subscription(id: &str, mark: i64) -> SubscriptionRow {
        SubscriptionRow {
            id: id.into(),
            aor: "sip:a@b".into(),
            call_id: "c".into(),
            local_tag: "l".into(),
            remote_tag: "r".into(),
            event_id: None,
            accept: None,
            local_uri: "<sip:a@b>".into(),
            remote_uri: "<sip:w@b>".into(),
            remote_target: "sip:w@1.2.3.4".into(),
            route_set: String::new(),
            remote_cseq: 1,
            notify_cseq_mark: mark,
            state: "active".into(),
            document_version: mark - 1,
            expires_at: 1,
            transport: "UDP".into(),
            local_addr: "127.0.0.1:5060".into(),
            peer_addr: "127.0.0.1:5070".into(),
            accept_encoding: None,
            list_source: None,
            list_members: None,
            linphone_compat: false,
            mark_epoch: 0,
            event: "presence".into(),
        }
    }

    /// A binding of sip:a@b to `contact`.
    pub(crate) fn binding(contact: &str) -> BindingRow {
        BindingRow {
            aor: "sip:a@b".into(),
            contact: contact.into(),
            q_value: None,
            expires_at: 1,
            call_id: "c".into(),
            cseq: 1,
            linphone_specs: None,
            params: None,
        }
    }

    fn saved(etag: &str, replaces: Option<&str>) -> Change {
        Change::PublicationSaved {
            row: publication(etag),
            replaces: replaces.map(str::to_owned),
        }
    }

    #[test]
    fn a_publication_inserted_and_replaced_in_one_batch_is_written_once() {
        let changes = [
            saved("a", None),
            saved("b", Some("a")),
            saved("c", Some("old")),
            Change::PublicationRemoved("c".into()),
            Change::PublicationRemoved("gone".into()),
        ];
        let batch = Batch::of(&changes);
        assert_eq!(batch.publications_gone, ["old", "gone"]);
        let new: Vec<&str> = batch
            .publications_new
            .iter()
            .map(|r| r.etag.as_str())
            .collect();
        assert_eq!(new, ["b"]);
    }

    #[test]
    fn each_subscription_gets_its_last_state_and_marks_only_go_up() {
        let changes = [
            Change::SubscriptionCreated(Box::new(subscription("s1", 1000))),
            Change::NotifyCSeqMark {
                id: "s1".into(),
                mark: 2000,
            },
            // A refresh written from the committed mark: the raise is kept.
            Change::SubscriptionSaved(Box::new(subscription("s1", 1000))),
            Change::NotifyCSeqMark {
                id: "s2".into(),
                mark: 3000,
            },
            Change::NotifyCSeqMark {
                id: "s2".into(),
                mark: 2500,
            },
            Change::NotifyCSeqMark {
                id: "s3".into(),
                mark: 10,
            },
            Change::SubscriptionRemoved("s3".into()),
            Change::NotifyCSeqMark {
                id: "s3".into(),
                mark: 20,
            },
            Change::NotifyCSeqMark {
                id: "s4".into(),
                mark: 5000,
            },
            Change::SubscriptionSaved(Box::new(subscription("s4", 1000))),
        ];
        let batch = Batch::of(&changes);
        let put = batch.subscriptions_put();
        assert_eq!(put.len(), 2);
        assert_eq!(batch.subscriptions_written(true)[0].id, "s1");
        assert_eq!(batch.subscriptions_written(false)[0].id, "s4");
        assert_eq!((put[0].id.as_str(), put[0].notify_cseq_mark), ("s1", 2000));
        assert_eq!(put[0].document_version, 1999);
        assert_eq!((put[1].id.as_str(), put[1].notify_cseq_mark), ("s4", 5000));
        assert_eq!(batch.marks(), [("s2", 3000)]);
        assert_eq!(batch.subscriptions_gone(), ["s3"]);
    }

    #[test]
    fn the_last_replacement_of_an_aors_bindings_wins() {
        let row = binding;
        let changes = [
            Change::BindingsReplaced {
                aor: "sip:a@b".into(),
                rows: vec![row("sip:1")],
            },
            Change::BindingsReplaced {
                aor: "sip:z@b".into(),
                rows: Vec::new(),
            },
            Change::BindingsReplaced {
                aor: "sip:a@b".into(),
                rows: vec![row("sip:2"), row("sip:3")],
            },
        ];
        let batch = Batch::of(&changes);
        assert_eq!(batch.bindings.len(), 2);
        assert_eq!(batch.bindings[0].0, "sip:a@b");
        assert_eq!(batch.bindings[0].1.len(), 2);
        assert_eq!(batch.bindings[1], ("sip:z@b", &[][..]));
        assert!(!batch.is_empty());
        assert!(Batch::of(&[]).is_empty());
    }
}
