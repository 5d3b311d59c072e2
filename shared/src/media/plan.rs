//! What changed: the source listing and the previous snapshot, both in key order, merged one
//! key at a time. `classify` is pure and pinned by table-driven tests; `Merge` feeds it from the
//! two streams so that memory does not grow with the number of objects.

use std::collections::VecDeque;
use std::sync::Arc;

use super::snapshot::{Entry, SnapshotReader};
use crate::backup::glob;
use crate::error::Result;
use crate::keys;
use crate::store::{ObjectInfo, ObjectStore};

/// What to do with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// In the source only: copy it in.
    New(ObjectInfo),
    /// Same size and ETag (or last-modified where the source has no ETag): keep the entry.
    Unchanged(Entry),
    /// Changed in the source: keep the old version in the trash, copy the new one in.
    Modified(ObjectInfo, Entry),
    /// Gone from the source: move the mirror's copy to the trash.
    Deleted(Entry),
    /// Outside the include/exclude patterns: left as the last snapshot had it.
    Excluded(Entry),
}

/// Which head to take next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    New,
    Deleted,
    Same,
    Changed,
}

/// Decides from the two heads (`None` when that stream has ended).
pub fn classify(source: Option<&ObjectInfo>, old: Option<&Entry>) -> Option<Step> {
    match (source, old) {
        (None, None) => None,
        (Some(_), None) => Some(Step::New),
        (None, Some(_)) => Some(Step::Deleted),
        (Some(s), Some(o)) => Some(match s.key.as_str().cmp(o.key.as_str()) {
            std::cmp::Ordering::Less => Step::New,
            std::cmp::Ordering::Greater => Step::Deleted,
            std::cmp::Ordering::Equal if unchanged(s, o) => Step::Same,
            std::cmp::Ordering::Equal => Step::Changed,
        }),
    }
}

/// Same size and, by what the source offers, the same version: its ETag, else its
/// last-modified time. An entry adopted from a listing of the mirror (no snapshot) knows only
/// the mirror copy's ETag, which equals the source's for a server-side copy.
fn unchanged(s: &ObjectInfo, o: &Entry) -> bool {
    if s.size != o.size {
        return false;
    }
    match (&s.etag, &o.etag) {
        (Some(a), Some(b)) => a == b,
        (Some(a), None) => o.stored_etag.as_ref() == Some(a),
        (None, _) => s.last_modified.is_some() && s.last_modified == o.modified,
    }
}

/// Include/exclude glob patterns over source keys (`*` spans `/`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Filter {
    pub fn wants(&self, key: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob(p, key)))
            && !self.exclude.iter().any(|p| glob(p, key))
    }
}

/// The source, listed a page at a time; keys relative to its prefix.
#[derive(Debug)]
pub struct SourceListing {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    page: VecDeque<ObjectInfo>,
    after: Option<String>,
    done: bool,
    /// Objects listed so far (also those outside the filter).
    pub listed: u64,
}

impl SourceListing {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        SourceListing {
            store,
            prefix: prefix.to_owned(),
            page: VecDeque::new(),
            after: None,
            done: false,
            listed: 0,
        }
    }

    pub async fn next(&mut self) -> Result<Option<ObjectInfo>> {
        loop {
            if let Some(mut o) = self.page.pop_front() {
                self.listed += 1;
                o.key = o.key[self.prefix.len()..].to_owned();
                return Ok(Some(o));
            }
            if self.done {
                return Ok(None);
            }
            let page = self.store.list_page(&self.prefix, self.after.as_deref()).await?;
            self.done = !page.truncated || page.objects.is_empty();
            self.after = page.objects.last().map(|o| o.key.clone());
            self.page.extend(page.objects.into_iter().filter(|o| o.key.starts_with(&self.prefix)));
        }
    }
}

/// The previous state: a snapshot, or (none readable) a listing of the mirror, or nothing.
#[derive(Debug)]
pub enum Previous {
    Snapshot(Box<SnapshotReader>),
    /// Entries adopted from `media/current/`, as version `run_id`.
    Mirror {
        listing: SourceListing,
        run_id: String,
    },
    Empty,
}

impl Previous {
    /// Lists the mirror under `prefix` (the backup prefix) as the previous state.
    pub fn mirror(store: Arc<dyn ObjectStore>, prefix: &str, run_id: &str) -> Self {
        Previous::Mirror {
            listing: SourceListing::new(store, &keys::media_current_scope(prefix)),
            run_id: run_id.to_owned(),
        }
    }

    pub async fn next(&mut self) -> Result<Option<Entry>> {
        match self {
            Previous::Snapshot(r) => r.next().await,
            Previous::Mirror { listing, run_id } => Ok(listing.next().await?.map(|o| Entry {
                key: o.key,
                size: o.size,
                etag: None,
                modified: None,
                version: run_id.clone(),
                stored_etag: o.etag,
            })),
            Previous::Empty => Ok(None),
        }
    }
}

/// The two streams merged into [`Item`]s, in key order.
#[derive(Debug)]
pub struct Merge {
    pub source: SourceListing,
    previous: Previous,
    filter: Filter,
    source_head: Option<ObjectInfo>,
    old_head: Option<Entry>,
    started: bool,
}

impl Merge {
    pub fn new(source: SourceListing, previous: Previous, filter: Filter) -> Self {
        Merge { source, previous, filter, source_head: None, old_head: None, started: false }
    }

    async fn next_wanted_source(&mut self) -> Result<Option<ObjectInfo>> {
        while let Some(o) = self.source.next().await? {
            if self.filter.wants(&o.key) {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    pub async fn next(&mut self) -> Result<Option<Item>> {
        if !self.started {
            self.started = true;
            self.source_head = self.next_wanted_source().await?;
            self.old_head = self.previous.next().await?;
        }
        // Entries outside the filter are carried whatever the source says about them.
        if let Some(old) = self.old_head.take_if(|o| !self.filter.wants(&o.key)) {
            self.old_head = self.previous.next().await?;
            return Ok(Some(Item::Excluded(old)));
        }
        let item = match classify(self.source_head.as_ref(), self.old_head.as_ref()) {
            None => return Ok(None),
            Some(Step::New) => Item::New(self.source_head.take().expect("a source head")),
            Some(Step::Deleted) => Item::Deleted(self.old_head.take().expect("an old head")),
            Some(Step::Same) => {
                self.source_head = None;
                Item::Unchanged(self.old_head.take().expect("an old head"))
            }
            Some(Step::Changed) => Item::Modified(
                self.source_head.take().expect("a source head"),
                self.old_head.take().expect("an old head"),
            ),
        };
        if self.source_head.is_none() {
            self.source_head = self.next_wanted_source().await?;
        }
        if self.old_head.is_none() {
            self.old_head = self.previous.next().await?;
        }
        Ok(Some(item))
    }

    /// After a stop: the previous state's entries from the merge's position on (what the
    /// mirror still holds for keys not reached), and nothing more from the source.
    pub async fn next_previous(&mut self) -> Result<Option<Entry>> {
        if let Some(old) = self.old_head.take() {
            return Ok(Some(old));
        }
        if !self.started {
            self.started = true;
        }
        self.previous.next().await
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn src(key: &str, size: u64, etag: Option<&str>, modified: Option<i64>) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            etag: etag.map(Into::into),
            last_modified: modified.map(|s| jiff::Timestamp::from_second(s).unwrap()),
        }
    }

    fn old(key: &str, size: u64, etag: Option<&str>, modified: Option<i64>, stored: Option<&str>) -> Entry {
        Entry {
            key: key.into(),
            size,
            etag: etag.map(Into::into),
            modified: modified.map(|s| jiff::Timestamp::from_second(s).unwrap()),
            version: "r0".into(),
            stored_etag: stored.map(Into::into),
        }
    }

    #[rstest]
    #[case(Some(src("a", 1, Some("x"), None)), None, Some(Step::New))]
    #[case(None, Some(old("a", 1, Some("x"), None, None)), Some(Step::Deleted))]
    #[case(None, None, None)]
    #[case(Some(src("a", 1, Some("x"), None)), Some(old("b", 1, Some("x"), None, None)), Some(Step::New))]
    #[case(Some(src("b", 1, Some("x"), None)), Some(old("a", 1, Some("x"), None, None)), Some(Step::Deleted))]
    #[case(Some(src("a", 1, Some("x"), None)), Some(old("a", 1, Some("x"), None, None)), Some(Step::Same))]
    // Same ETag, other size; same size, other ETag.
    #[case(Some(src("a", 2, Some("x"), None)), Some(old("a", 1, Some("x"), None, None)), Some(Step::Changed))]
    #[case(Some(src("a", 1, Some("y"), None)), Some(old("a", 1, Some("x"), None, None)), Some(Step::Changed))]
    // A directory source: last-modified decides; unknown is a change.
    #[case(Some(src("a", 1, None, Some(10))), Some(old("a", 1, None, Some(10), None)), Some(Step::Same))]
    #[case(Some(src("a", 1, None, Some(11))), Some(old("a", 1, None, Some(10), None)), Some(Step::Changed))]
    #[case(Some(src("a", 1, None, None)), Some(old("a", 1, None, None, None)), Some(Step::Changed))]
    // Adopted from a mirror listing: the mirror copy's ETag stands in for the source's.
    #[case(Some(src("a", 1, Some("x"), None)), Some(old("a", 1, None, None, Some("x"))), Some(Step::Same))]
    #[case(Some(src("a", 1, Some("x"), None)), Some(old("a", 1, None, None, Some("z"))), Some(Step::Changed))]
    // Byte order, as S3 lists: "a-b" < "a/b" < "a0" < "é".
    #[case(Some(src("a/b", 1, None, None)), Some(old("a-b", 1, None, None, None)), Some(Step::Deleted))]
    #[case(Some(src("a0", 1, None, None)), Some(old("é", 1, None, None, None)), Some(Step::New))]
    fn classification(
        #[case] s: Option<ObjectInfo>,
        #[case] o: Option<Entry>,
        #[case] expected: Option<Step>,
    ) {
        assert_eq!(classify(s.as_ref(), o.as_ref()), expected);
    }

    #[rstest]
    #[case(&[], &[], "a/b.jpg", true)]
    #[case(&["*.jpg"], &[], "a/b.jpg", true)]
    #[case(&["*.jpg"], &[], "a/b.png", false)]
    #[case(&[], &["cache/*"], "cache/x/y", false)]
    #[case(&["uploads/*"], &["*.tmp"], "uploads/a.tmp", false)]
    fn filters(#[case] include: &[&str], #[case] exclude: &[&str], #[case] key: &str, #[case] wanted: bool) {
        let f = Filter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(f.wants(key), wanted);
    }
}
