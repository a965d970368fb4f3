//! The sizes a filter may reach, in a module of their own so that both the
//! compiler and its error messages read them (`Filter`'s associated
//! constants re-export them).

pub(super) const ROOTS: &[&str] = &["id", "event", "timestamp", "user_id", "data"];
pub(super) const MAX_DEPTH: usize = 8;
pub(super) const MAX_CONDITIONS: usize = 200;
pub(super) const MAX_VALUES: usize = 1000;
pub(super) const MAX_PATH_BYTES: usize = 200;
pub(super) const MAX_PATH_SEGMENTS: usize = 16;
pub(super) const MAX_STRING_BYTES: usize = 1024;
