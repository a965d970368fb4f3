//! GraphQL errors: the API's one error type, told apart by
//! `extensions.code` (and `extensions.field` for invalid input, named as in
//! the GraphQL schema), with the same messages as the JSON API.
//!
//! `async_graphql::Error` converts from anything `Display`, which would drop
//! the code; resolvers therefore convert with [`Gql::gql`], never with a
//! bare `?` on an `ApiError`.

use async_graphql::{Error, ErrorExtensions};

use crate::api::error::ApiError;

/// The `extensions.code` values.
pub(crate) const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub(crate) const NOT_FOUND: &str = "NOT_FOUND";
pub(crate) const VALIDATION: &str = "VALIDATION";
pub(crate) const CONFLICT: &str = "CONFLICT";
pub(crate) const BAD_REQUEST: &str = "BAD_REQUEST";
pub(crate) const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
pub(crate) const UNAVAILABLE: &str = "UNAVAILABLE";
pub(crate) const INTERNAL: &str = "INTERNAL";
/// A per-user bound of the API's is reached for now (`api/quotas.rs`).
pub(crate) const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";

/// An error with a code and no field.
pub(crate) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

pub(crate) fn to_graphql(error: ApiError) -> Error {
    let code = match &error {
        ApiError::MissingToken | ApiError::InvalidToken => UNAUTHENTICATED,
        ApiError::NotFound(_) => NOT_FOUND,
        ApiError::Invalid { .. } => VALIDATION,
        ApiError::Conflict(_) => CONFLICT,
        ApiError::Busy { .. } => TOO_MANY_REQUESTS,
        ApiError::Forbidden(_) => BAD_REQUEST,
        ApiError::Unavailable { .. } => UNAVAILABLE,
        ApiError::BadBody { .. } | ApiError::MethodNotAllowed => BAD_REQUEST,
        ApiError::Storage(e) => {
            // The client gets a generic message; the cause goes to the log.
            tracing::error!(error = %e, "GraphQL request failed on storage");
            INTERNAL
        }
    };
    let field = match &error {
        ApiError::Invalid {
            field: Some(field), ..
        } => Some(graphql_name(field)),
        _ => None,
    };
    Error::new(error.to_string()).extend_with(|_, e| {
        e.set("code", code);
        if let Some(field) = &field {
            e.set("field", field.as_str());
        }
    })
}

/// A JSON API field name (`timeout_ms`) as the GraphQL schema spells it
/// (`timeoutMs`).
pub(crate) fn graphql_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `.gql()`: a result with the API's error as a GraphQL one.
pub(crate) trait Gql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> Gql<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_field_names_become_schema_names() {
        for (api, graphql) in [
            ("name", "name"),
            ("timeout_ms", "timeoutMs"),
            ("grace_period_secs", "gracePeriodSecs"),
            ("user_id", "userId"),
        ] {
            assert_eq!(graphql_name(api), graphql);
        }
    }

    #[test]
    fn invalid_input_carries_its_code_and_field() {
        let error = to_graphql(ApiError::invalid("timeout_ms", "too long"));
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from(VALIDATION))
        );
        assert_eq!(
            extensions.get("field"),
            Some(&async_graphql::Value::from("timeoutMs"))
        );
        assert_eq!(error.message, "too long");
    }
}
