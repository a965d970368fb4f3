//! `GET /graphql` in a browser: GraphiQL, served whole from this process.
//!
//! async-graphql's GraphiQL and Playground pages load their scripts from a
//! CDN, and our pages depend on no outside host (a locked-down network, a
//! CDN outage or a compromised CDN must not break or subvert the admin
//! side), so GraphiQL's released files are vendored in `assets/` with their
//! licences and served here under a policy that allows only this origin.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Where the assets are served.
pub(crate) const ASSETS_PATH: &str = "/graphql/assets/{file}";

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>webhookd GraphQL</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>body { margin: 0; } #graphiql { height: 100vh; }</style>
</head>
<body>
<noscript>GraphiQL needs JavaScript. Without it, POST queries to /graphql (docs/API.md).</noscript>
<div id="graphiql"></div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script src="/graphql/assets/graphiql-init.js"></script>
</body>
</html>
"#;

/// Only this origin's scripts; GraphiQL sets inline styles and embeds its
/// fonts and icons as `data:` URLs.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(crate) fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) async fn serve_asset(Path(file): Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = match file.as_str() {
        "graphiql.min.js" => (JS, include_bytes!("assets/graphiql.min.js")),
        "graphiql.min.css" => (CSS, include_bytes!("assets/graphiql.min.css")),
        "react.production.min.js" => (JS, include_bytes!("assets/react.production.min.js")),
        "react-dom.production.min.js" => (JS, include_bytes!("assets/react-dom.production.min.js")),
        "graphiql-init.js" => (JS, include_bytes!("assets/graphiql-init.js")),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
