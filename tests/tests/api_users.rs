//! Users and their API tokens: `GET /me`, malformed, unknown, revoked and
//! rotated tokens, and how user ids are given out. The API is served by
//! `api::router` on a real port against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use webhookd_e2e::api::{ApiServer, User};
use webhookd_e2e::db::TestDb;
use webhookd_store::users;

#[tokio::test]
async fn me_answers_the_token_owners_id_name_and_admin_flag() {
    let api = ApiServer::spawn().await;
    let (alice, token) = users::create_user(&api.db.pool, "Алиса", Some(7), true)
        .await
        .unwrap();
    let me = api
        .get(
            &User {
                id: alice.id,
                token,
            },
            "/me",
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json,
        json!({"id": 7, "name": "Алиса", "is_admin": true, "can_publish": true})
    );
    api.stop().await;
}

#[tokio::test]
async fn a_malformed_unknown_or_other_scheme_token_is_refused() {
    let api = ApiServer::spawn().await;
    let unknown = users::generate_token();
    for token in ["garbage", "whk_", unknown.as_str()] {
        let reply = api.send(Method::GET, "/me", Some(token), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            reply.headers[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(reply.json["error"], "invalid or revoked token");
    }
    let basic = api
        .http
        .get(format!("{}/me", api.base))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_a_rotated_one_works() {
    let api = ApiServer::spawn().await;
    let bob = api.user("bob", false).await;
    let second = users::issue_token(&api.db.pool, bob.id).await.unwrap();
    assert_eq!(
        api.send(Method::GET, "/me", Some(&second), None)
            .await
            .status,
        StatusCode::OK
    );

    assert_eq!(users::revoke_tokens(&api.db.pool, bob.id).await.unwrap(), 2);
    for token in [&bob.token, &second] {
        let reply = api.send(Method::GET, "/me", Some(token), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.headers.contains_key(WWW_AUTHENTICATE));
    }

    let (fresh, revoked) = users::rotate_token(&api.db.pool, bob.id).await.unwrap();
    assert_eq!(revoked, 0);
    let me = api.send(Method::GET, "/me", Some(&fresh), None).await;
    assert_eq!(me.json["id"], bob.id);
    api.stop().await;
}

#[tokio::test]
async fn users_get_the_next_free_id_even_when_created_concurrently() {
    let db = TestDb::create().await;
    let (crm_user, _) = users::create_user(&db.pool, "from the CRM", Some(40), false)
        .await
        .unwrap();
    assert_eq!(crm_user.id, 40);
    let taken = users::create_user(&db.pool, "again", Some(40), false).await;
    assert!(
        matches!(taken, Err(webhookd_store::StorageError::Conflict(_))),
        "{taken:?}"
    );
    let creations = (0..8).map(|i| {
        let pool = db.pool.clone();
        tokio::spawn(async move { users::create_user(&pool, &format!("u{i}"), None, false).await })
    });
    let mut ids = Vec::new();
    for created in creations.collect::<Vec<_>>() {
        ids.push(created.await.unwrap().unwrap().0.id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (41..=48).collect::<Vec<i64>>());

    let listed = users::list_users(&db.pool).await.unwrap();
    assert_eq!(listed.len(), 9);
    assert!(listed.iter().all(|u| u.active_tokens == 1));
    users::revoke_tokens(&db.pool, 40).await.unwrap();
    let listed = users::list_users(&db.pool).await.unwrap();
    assert_eq!(listed[0].active_tokens, 0);
    db.drop_database().await;
}
