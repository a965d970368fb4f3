//! `/graphql`: POST for queries and mutations, GET for GraphiQL in a
//! browser or for subscriptions over WebSocket.

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::caller::{Caller, Refusal};
use super::graphiql;
use super::schema::{self, AppSchema};
use super::state::GraphqlState;
use super::ws::{self, SUBPROTOCOL};
use crate::api::auth::{authenticate, bearer_token};
use crate::api::error::ApiError;

/// Queries are small; anything bigger is a mistake or abuse.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct Served {
    schema: AppSchema,
    state: GraphqlState,
}

/// The GraphQL endpoint, to be merged next to `api::router`.
pub fn router(state: GraphqlState) -> Router {
    let schema = schema::build(state.clone());
    Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route(graphiql::ASSETS_PATH, get(graphiql::serve_asset))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Served { schema, state })
}

async fn post_graphql(
    State(served): State<Served>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let caller = match bearer_token(&headers) {
        Ok(token) => match authenticate(&served.state.api, token).await {
            Ok(user) => Caller::User(user),
            Err(ApiError::Storage(e)) => {
                tracing::error!(error = %e, "checking a GraphQL token failed on storage");
                Caller::Refused(Refusal::Unavailable)
            }
            Err(_) => Caller::Refused(Refusal::InvalidToken),
        },
        Err(ApiError::MissingToken) => Caller::Refused(Refusal::MissingToken),
        Err(_) => Caller::Refused(Refusal::InvalidToken),
    };
    served
        .schema
        .execute(request.into_inner().data(caller))
        .await
        .into()
}

async fn get_graphql(
    State(served): State<Served>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) if asks_for_upgrade(&headers) => return rejection.into_response(),
        Err(_) => return graphiql::page(),
    };
    if !offers_subprotocol(&headers) {
        return (
            StatusCode::BAD_REQUEST,
            "GraphQL subscriptions need the WebSocket subprotocol graphql-transport-ws",
        )
            .into_response();
    }
    let header_token = bearer_token(&headers).ok().map(str::to_owned);
    upgrade
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| ws::serve(socket, served.schema, served.state, header_token))
}

fn asks_for_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
}

fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}
