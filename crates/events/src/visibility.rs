//! Who may see an event: the privacy rule of §5, in one place for code that
//! decides in Rust (the GraphQL event stream). The fan-out applies the same
//! rule in SQL (`webhookd_store::fanout`: `ev.user_id IS NULL OR
//! w.user_id = ev.user_id OR u.is_admin`); the tests below pin the two
//! together case by case.

/// Whether an event carrying `event_user` (its `user_id`) reaches a viewer:
/// an event without a user goes to everyone, one with a user only to that
/// user and to admins.
pub fn is_visible_to(event_user: Option<i64>, viewer_id: i64, viewer_is_admin: bool) -> bool {
    match event_user {
        None => true,
        Some(owner) => owner == viewer_id || viewer_is_admin,
    }
}

#[cfg(test)]
mod tests {
    use super::is_visible_to;

    #[test]
    fn an_event_without_a_user_is_everyones() {
        assert!(is_visible_to(None, 7, false));
        assert!(is_visible_to(None, 7, true));
    }

    #[test]
    fn an_event_with_a_user_is_that_users_and_admins_only() {
        assert!(is_visible_to(Some(7), 7, false));
        assert!(!is_visible_to(Some(7), 8, false));
        assert!(is_visible_to(Some(7), 8, true));
    }
}
