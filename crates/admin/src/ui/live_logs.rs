//! `/webhook/{id}/logs/live`: the webhook's attempts as they are recorded,
//! as server-sent events, for the logs page's script (the page itself works
//! without it). Fed by the same attempt feed as the GraphQL
//! `deliveryAttempts` subscription, so it sees attempts from every worker.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::error::UiError;
use super::layout::{millis, visible_controls};
use super::logs::{error_beside_status, outcome_text};
use super::paths::logs_path;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use crate::graphql::LiveAttempts;
use webhookd_store::webhooks::find_webhook;

/// A comment line now and then, so proxies keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub(crate) struct LiveLogs {
    pub(crate) ui: UiState,
    pub(crate) attempts: LiveAttempts,
}

pub(crate) async fn stream_logs(State(live): State<LiveLogs>, request: Request) -> Response {
    match stream(live, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn stream(live: LiveLogs, request: Request) -> Result<Response, UiError> {
    let (mut parts, _) = request.into_parts();
    let session = Session::from_request_parts(&mut parts, &live.ui).await?;
    let WebhookPath(id) = WebhookPath::from_request_parts(&mut parts, &live.ui).await?;
    find_webhook(&live.ui.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    // A page too slow to keep up is cut off (EventSource reconnects), and
    // every page is on shutdown.
    let cut_off = live.attempts.stopping().child_token();
    let feed = live
        .attempts
        .watch(id, session.user.id, cut_off.clone())
        .await?;
    let base = logs_path(id);
    let tr = session.tr;
    let events = feed
        .map(move |a| {
            // The texts are made here, in the viewer's language and zone,
            // as the server-rendered rows are: the script only places them.
            let data = json!({
                "time_text": tr.local_time(a.created_at),
                "time_title": tr.t_with("time-utc-hint", &[("utc", tr.utc_time(a.created_at).into())]),
                "outcome_text": outcome_text(&tr, a.status_code),
                "took_text": millis(&tr, Some(f64::from(a.response_time_ms))),
                "error_text": error_beside_status(a.error_message.as_deref(), a.status_code)
                    .map(|e| visible_controls(e).into_owned()),
                "id": a.id,
                "event": a.event,
                "attempt": a.attempt,
                "status_code": a.status_code,
                "is_success": a.is_success,
                "response_time_ms": a.response_time_ms,
                "error_message": a.error_message,
                "created_at": a.created_at.to_rfc3339(),
                "url": format!("{base}/{}", a.id),
            });
            Ok::<_, Infallible>(Event::default().event("attempt").data(data.to_string()))
        })
        .take_until(cut_off.cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
