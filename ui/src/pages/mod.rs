//! One module per page. Each handler reads through `Master::service()`
//! (the typed service layer every API uses), builds a plain struct for its
//! template, and renders it; forms post to handlers that call the same
//! service writes as the REST API.

pub mod caches;
pub mod database;
pub mod databases;
pub mod deployments;
pub mod elbs;
pub mod framework_forms;
pub mod hosts;
pub mod hosts_map;
pub mod job;
pub mod job_waiting;
pub mod jobs;
pub mod new_job;
pub mod overview;
pub mod pdl;
pub mod task;
pub mod tickets;
pub mod tree;

use axum::response::Redirect;
use ocean_master::service::ReadOptions;
use ocean_master::Master;
use serde::Deserialize;

/// What every page shows around its content: which master answered, as
/// which role, and the state version the page reflects.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The nav entry to mark as current.
    pub nav: &'static str,
    pub master_id: u64,
    pub role: &'static str,
    pub term: u64,
    /// The state version the page was rendered at (the lowest of its reads).
    pub version: u64,
    /// A write the page follows (`?v=` after a form): shown as committed.
    pub committed: Option<u64>,
    /// The browser's CSRF token, put into every form (`csrf`).
    pub csrf: String,
}

impl Frame {
    pub(crate) fn new(m: &Master, nav: &'static str, version: u64, q: &Seen) -> Self {
        let s = m.service().status();
        Frame {
            nav,
            master_id: s.id,
            role: s.role,
            term: s.term,
            version,
            committed: q.v,
            csrf: String::new(),
        }
    }

    /// The frame of a page with forms: they carry the browser's token.
    pub(crate) fn with_csrf(mut self, token: &crate::csrf::CsrfToken) -> Self {
        self.csrf = token.0.clone();
        self
    }
}

/// `?v=VERSION`: a write a form just made; the page waits (bounded) until
/// this master has applied it, so the user sees what they did.
#[derive(Debug, Default, Deserialize)]
pub struct Seen {
    pub v: Option<u64>,
}

/// What a page shows after a form succeeded: the write to follow
/// (`?v=`) and which notice (`?done=`, looked up in the page's own table).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    pub v: Option<u64>,
    pub done: Option<String>,
}

impl Done {
    /// The notice `notices` gives for `?done=`, if any.
    pub fn notice(&self, notices: &[(&str, &'static str)]) -> Option<&'static str> {
        let done = self.done.as_deref()?;
        notices.iter().find(|(k, _)| *k == done).map(|(_, n)| *n)
    }

    /// The write to follow.
    pub fn seen(&self) -> Seen {
        Seen { v: self.v }
    }
}

impl Seen {
    pub(crate) fn options(&self) -> ReadOptions {
        ReadOptions {
            min_version: self.v,
            consistent: false,
        }
    }
}

/// `s` as one URL path segment: ids are service-tree names (letters,
/// digits, `.`, `_`, `-`), anything else is percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// After a committed write: back to `path`, at the write's version.
pub(crate) fn see_other(path: &str, version: u64) -> Redirect {
    Redirect::to(&format!("{path}?v={version}"))
}

/// Pages of a list: which rows to show and the links around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    pub pages: usize,
    pub total: usize,
    pub first_row: usize,
    pub last_row: usize,
}

impl Paging {
    /// Page `page` of `total` rows, `per_page` each (a page past the end
    /// shows the last one).
    pub fn new(total: usize, per_page: usize, page: usize) -> Self {
        let pages = total.div_ceil(per_page).max(1);
        let page = page.clamp(1, pages);
        let first = (page - 1) * per_page;
        let last = (first + per_page).min(total);
        Paging {
            page,
            pages,
            total,
            first_row: first,
            last_row: last,
        }
    }

    /// The row range to show.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.first_row..self.last_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_clamps_to_the_rows_there_are() {
        let p = Paging::new(120, 50, 3);
        assert_eq!((p.page, p.pages, p.range()), (3, 3, 100..120));
        let p = Paging::new(0, 50, 9);
        assert_eq!((p.page, p.pages, p.range()), (1, 1, 0..0));
        let p = Paging::new(120, 50, 0);
        assert_eq!(p.range(), 0..50);
    }

    #[test]
    fn path_segments_keep_tree_names_and_encode_the_rest() {
        assert_eq!(path_segment("cop.a_owt.b_job.c-1"), "cop.a_owt.b_job.c-1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
