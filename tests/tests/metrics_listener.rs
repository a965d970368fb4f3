//! `/metrics` on a listener of its own [SPEC §15, issue #19 finding 7]: its
//! text names every tenant's receiver hosts, so with `http.metrics_listen`
//! set it is served only there and the public listener answers 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use webhookd_e2e::process::free_port;
use webhookd_e2e::TestApp;

#[tokio::test]
async fn with_metrics_listen_set_metrics_are_served_only_on_their_own_port() {
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let app = TestApp::spawn_with(&[("WEBHOOKD__HTTP__METRICS_LISTEN", &metrics_addr)]).await;

    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the rest stays public");

    let private = app
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), StatusCode::OK);
    let text = private.text().await.unwrap();
    assert!(
        text.contains("webhookd_deliveries_in_flight"),
        "the metrics text: {text}"
    );
    let other = app
        .http
        .get(format!("http://{metrics_addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only /metrics there");
    app.stop().await;
}

#[tokio::test]
async fn without_metrics_listen_metrics_stay_on_the_main_listener() {
    let app = TestApp::spawn().await;
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("webhookd_"));
    app.stop().await;
}
