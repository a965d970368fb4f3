//! Secrets at rest (SPEC §15) against the real daemon, Postgres and HTTP
//! receivers: with `secrets.encryption_keys` set, no signing secret or
//! receiver password reads in clear from the database, yet deliveries (and
//! test deliveries) are signed and authenticated as before; a daemon lacking
//! a key the database uses refuses to start naming it; `webhookd secrets
//! reencrypt` moves every secret to the first key; without keys the daemon
//! warns that secrets are stored in clear.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use webhookd_e2e::app::webhook_body;
use webhookd_e2e::process::{task_created, webhookd_command, Daemon, Deployment, DAEMON_LIMIT};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_events::webhook_secrets::seal_signing;
use webhookd_events::{ReceiverAuth, SecretKeys, StoredAuth};
use webhookd_store::webhooks::{create_webhook, NewWebhook};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PASSWORD: &str = "pa55word";
/// base64 of `alice:pa55word`.
const BASIC: &str = "Basic YWxpY2U6cGE1NXdvcmQ=";
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE=";
const KEYS: &str = "WEBHOOKD__SECRETS__ENCRYPTION_KEYS";
const WAIT: Duration = Duration::from_secs(20);

/// Every stored secret value: signing secrets and `auth`'s secret fields.
async fn stored_secrets(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT v FROM (SELECT secret AS v FROM webhooks
                        UNION ALL SELECT previous_secret FROM webhooks
                        UNION ALL SELECT auth->>'password' FROM webhooks) s
         WHERE v IS NOT NULL ORDER BY v",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn with_a_key_no_secret_reads_in_clear_and_deliveries_still_sign_and_authenticate() {
    let app = TestApp::spawn_with(&[(KEYS, K1)]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let mut body = webhook_body(&receiver.url(), json!(["task.created"]), SECRET);
    body["auth"] = json!({"type": "basic", "username": "alice", "password": PASSWORD});
    let created = app.create_webhook(&token, body).await;
    let hook = created["id"].as_i64().unwrap();
    assert_eq!(
        created["secret"], SECRET,
        "the answer shows the clear secret"
    );

    let (secret, auth): (String, String) =
        sqlx::query_as("SELECT secret, auth::text FROM webhooks WHERE id = $1")
            .bind(hook)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(secret.starts_with("enc:v1:k1:"), "{secret}");
    assert!(!secret.contains(SECRET));
    assert!(!auth.contains(PASSWORD), "{auth}");
    assert!(auth.contains("\"password\": \"enc:v1:k1:"), "{auth}");
    assert!(auth.contains("\"username\": \"alice\""), "{auth}");

    app.publisher.publish(&task_created(1)).await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    assert!(received[0].seed_signature_valid && received[0].standard_signature_valid);
    assert_eq!(received[0].header("authorization"), BASIC);

    // A test delivery opens the secrets too.
    let (status, answer) = app
        .api(
            &token,
            Method::POST,
            &format!("/api/v1/webhooks/{hook}/test"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_success"], true, "{answer}");
    let tested = receiver.wait_for(2, WAIT).await;
    assert!(tested[1].standard_signature_valid);
    assert_eq!(tested[1].header("authorization"), BASIC);

    // An edit keeping the password keeps it sealed; the reads never show it.
    let (status, edited) = app
        .api(
            &token,
            Method::PATCH,
            &format!("/api/v1/webhooks/{hook}"),
            json!({"auth": {"type": "basic", "username": "alice"}, "name": "renamed"}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert!(!edited.to_string().contains("enc:v1"), "{edited}");
    for value in stored_secrets(&app.db.pool).await {
        assert!(value.starts_with("enc:v1:k1:"), "{value}");
    }
    app.publisher.publish(&task_created(2)).await.unwrap();
    let again = receiver.wait_for(3, WAIT).await;
    assert!(again[2].standard_signature_valid);
    assert_eq!(again[2].header("authorization"), BASIC);
    app.stop().await;
}

/// A webhook to `url` written straight to the database, its secrets sealed
/// with `keys`.
async fn webhook_sealed_with(deployment: &Deployment, keys: &SecretKeys, url: &str) -> i64 {
    let auth = ReceiverAuth::from_stored(&StoredAuth::new(
        json!({"type": "basic", "username": "alice", "password": PASSWORD}),
    ))
    .unwrap()
    .to_stored();
    let new = NewWebhook {
        user_id: 1,
        name: format!("hook {url}"),
        url: url.to_owned(),
        events: vec!["*".to_owned()],
        secret: SECRET.to_owned(),
        is_active: true,
        timeout_ms: None,
        headers: Default::default(),
        template: None,
        batch_max_events: None,
        batch_max_wait_ms: 1000,
        filter: None,
        retry_schedule: None,
        ordering: Default::default(),
        auth: Some(auth),
        rate_limit_per_s: None,
    };
    create_webhook(&deployment.db.pool, &new, keys)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// `webhookd ARGS` run to its end: exit success, stdout, stderr.
async fn webhookd(args: &[&str], env: &[(String, String)]) -> (bool, String, String) {
    let mut command = webhookd_command(args, env);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the command ends")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_missing_key_stops_start_up_by_name_and_reencrypt_moves_every_secret_to_the_first_key() {
    let deployment = Deployment::new().await;
    let sealed_receiver = Receiver::start(SECRET).await;
    let clear_receiver = Receiver::start(SECRET).await;
    let k1 = SecretKeys::parse([K1]).unwrap();
    webhook_sealed_with(&deployment, &k1, &sealed_receiver.url()).await;
    // One written before keys were configured: in clear.
    webhook_sealed_with(&deployment, &SecretKeys::none(), &clear_receiver.url()).await;

    // Only the new key: the database holds values under k1.
    let mut refused = Daemon::spawn(&["run", "--role", "worker"], &deployment.env(&[(KEYS, K2)]));
    let status = refused.wait_exit(DAEMON_LIMIT).await;
    assert!(!status.success(), "{}", refused.logs());
    assert!(
        refused.logs().contains("key id `k1`"),
        "the error names the key:\n{}",
        refused.logs()
    );

    let (ok, _, stderr) = webhookd(&["secrets", "reencrypt"], &deployment.env(&[])).await;
    assert!(!ok, "reencrypt refuses without keys");
    assert!(
        stderr.contains("secrets.encryption_keys is empty"),
        "{stderr}"
    );

    let both = format!("{K2},{K1}");
    let (ok, stdout, stderr) =
        webhookd(&["secrets", "reencrypt"], &deployment.env(&[(KEYS, &both)])).await;
    assert!(ok, "{stderr}");
    // Two secrets and two passwords, one pair sealed under k1, one in clear.
    assert!(
        stdout.contains("rewrote 4 secret values under key `k2`"),
        "{stdout}"
    );
    let stored = stored_secrets(&deployment.db.pool).await;
    assert_eq!(stored.len(), 4);
    for value in &stored {
        assert!(value.starts_with("enc:v1:k2:"), "{value}");
    }
    let (ok, stdout, stderr) =
        webhookd(&["secrets", "reencrypt"], &deployment.env(&[(KEYS, &both)])).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("rewrote 0 secret values"),
        "idempotent: {stdout}"
    );

    // k1 can go now: a worker with k2 alone starts and delivers.
    let worker = deployment.worker(&[(KEYS, K2)]).await;
    deployment.publish(1).await;
    for receiver in [&sealed_receiver, &clear_receiver] {
        let received = receiver.wait_for(1, WAIT).await;
        assert!(
            received[0].seed_signature_valid && received[0].standard_signature_valid,
            "{}",
            worker.logs()
        );
        assert_eq!(received[0].header("authorization"), BASIC);
    }
    worker.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn without_keys_the_daemon_warns_that_secrets_are_stored_in_clear() {
    let deployment = Deployment::new().await;
    let worker = deployment.worker(&[]).await;
    let logs = worker.logs();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("stored in clear"), "{logs}");
    worker.terminate().await;

    let with_key = deployment.worker(&[(KEYS, K1)]).await;
    assert!(
        !with_key.logs().contains("stored in clear"),
        "{}",
        with_key.logs()
    );
    with_key.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn a_secret_no_configured_key_opens_fails_its_delivery_naming_the_key_and_nothing_else() {
    let app = TestApp::spawn_with(&[(KEYS, K1)]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let broken_receiver = Receiver::start(SECRET).await;
    let healthy_receiver = Receiver::start(SECRET).await;
    let events = json!(["task.created"]);
    let broken = app
        .create_webhook_to(&token, &broken_receiver.url(), events.clone(), SECRET)
        .await;
    app.create_webhook_to(&token, &healthy_receiver.url(), events, SECRET)
        .await;
    // Sealed under a key this daemon does not have (a replica configured
    // differently, or a key dropped too early).
    let k2 = SecretKeys::parse([K2]).unwrap();
    sqlx::query("UPDATE webhooks SET secret = $2 WHERE id = $1")
        .bind(broken)
        .bind(seal_signing(&k2, broken, SECRET).unwrap())
        .execute(&app.db.pool)
        .await
        .unwrap();

    app.publisher.publish(&task_created(1)).await.unwrap();
    let received = healthy_receiver.wait_for(1, WAIT).await;
    assert!(received[0].standard_signature_valid);
    let error: String = eventually(WAIT, "the broken webhook's attempt", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT error_message FROM webhook_logs WHERE webhook_id = $1 LIMIT 1",
        )
        .bind(broken)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
        .flatten()
    })
    .await;
    assert!(error.contains("unreadable secret"), "{error}");
    assert!(error.contains("key id `k2`"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
    assert_eq!(broken_receiver.count(), 0, "nothing unsigned was sent");
    app.stop().await;
}
