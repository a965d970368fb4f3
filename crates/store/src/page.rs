//! Keyset pagination for newest-first listings (logs, deliveries).
//!
//! A page ends at a row; the next page starts strictly after that row's sort
//! key `(created_at, id)`. Unlike `OFFSET`, no row is skipped or shown twice
//! when rows are added while a client pages, and every page is an index range
//! scan however deep it is.

use chrono::{DateTime, Utc};

/// The sort key of the last row of a page: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After<K> {
    pub created_at: DateTime<Utc>,
    pub id: K,
}

/// One page of rows, newest first, and where the next one starts (`None`
/// on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next: Option<After<K>>,
}

impl<T, K> Page<T, K> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra
    /// row only tells that there is a next page.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> After<K>) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Page { items: rows, next }
    }

    /// A page of `rows` that more rows follow, whatever their count.
    pub(crate) fn from_rows_more(rows: Vec<T>, key: impl Fn(&T) -> After<K>) -> Self {
        let next = rows.last().map(key);
        Page { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &i64) -> After<i64> {
        After {
            created_at: DateTime::UNIX_EPOCH,
            id: *n,
        }
    }

    #[test]
    fn an_extra_row_means_a_next_page_that_starts_after_the_last_row_kept() {
        let page = Page::from_rows(vec![5, 4, 3], 2, key);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next.map(|a| a.id), Some(4));
        let last = Page::from_rows(vec![2, 1], 2, key);
        assert_eq!(last.items, vec![2, 1]);
        assert!(last.next.is_none());
        assert!(Page::from_rows(Vec::new(), 2, key).next.is_none());
    }
}
