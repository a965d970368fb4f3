//! The URLs of the UI's pages, for links and redirects. A leaf: it imports
//! nothing from the UI, so any page can link to any other (list to details,
//! details to logs and back) without the pages importing each other.

pub(crate) const LIST_PATH: &str = "/webhook/";

/// The user's settings (time zone, language).
pub(crate) const SETTINGS_PATH: &str = "/settings";

/// Switches the UI to `lang` (a cookie) and goes back to the page it came from.
pub(crate) fn language_path(code: &str) -> String {
    format!("/language/{code}")
}

pub(crate) fn details_path(id: i64) -> String {
    format!("/webhook/{id}")
}

pub(crate) fn logs_path(id: i64) -> String {
    format!("/webhook/{id}/logs")
}

/// Whether `path` is a path of this site to redirect to: never `//host` or
/// `/\host`, which browsers read as another host; visible ASCII only, as a
/// `Location` header needs (a real page's path is percent-encoded anyway).
pub(crate) fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The sign-in page's URL, coming back to `next` afterwards.
pub(crate) fn login_path(next: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    format!("/login?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_path_encodes_where_to_come_back_to() {
        assert_eq!(
            login_path("/webhook/5/logs?success=false&x=1"),
            "/login?next=%2Fwebhook%2F5%2Flogs%3Fsuccess%3Dfalse%26x%3D1"
        );
    }
}
