//! Live: a meeting is created and joined through GC, which places it on a
//! registered MC and hands out MH endpoints and a meeting token. (The
//! WebTransport and QUIC legs are exercised by the services' end-to-end test.)
//! Skipped (with a printed reason) unless a cluster is configured and answers.

// Helpers outside #[test] fns panic on purpose: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use env_tests::cluster::cluster_or_skip;
use env_tests::services::{self, Endpoints};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_join_returns_mc_mh_and_a_token() {
    let Some(cluster) = cluster_or_skip("create_then_join_returns_mc_mh_and_a_token")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let endpoints = Endpoints::from_env(env);
    let http = services::http_client().unwrap();
    let credentials = services::env_tests_credentials(&cluster.client, env)
        .await
        .unwrap();
    let token = services::token(&http, &endpoints.ac, &credentials, None)
        .await
        .unwrap();

    let name = format!("env-tests-{}", uuid::Uuid::new_v4().simple());
    let created = services::create_meeting(&http, &endpoints.gc, Some(&token.access_token), &name)
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["name"], name.as_str());
    let id = created.json["meeting_id"]
        .as_str()
        .expect("no meeting_id")
        .to_owned();

    let joined = services::join_meeting(&http, &endpoints.gc, Some(&token.access_token), &id)
        .await
        .unwrap();
    assert_eq!(joined.status, 200, "{}", joined.json);
    assert_eq!(joined.json["meeting_id"], id.as_str());
    let url = joined.json["mc"]["webtransport_url"]
        .as_str()
        .unwrap_or_default();
    assert!(
        url.starts_with("https://") && url.ends_with("/signaling"),
        "webtransport_url {url:?}"
    );
    assert!(joined.json["mc"]["mc_id"].is_string(), "{}", joined.json);
    let mh = joined.json["mh"].as_array().expect("no mh list");
    assert!(
        !mh.is_empty()
            && mh
                .iter()
                .all(|m| m["mh_id"].is_string() && m["endpoint"].is_string()),
        "{}",
        joined.json
    );
    let meeting_token = joined.json["token"].as_str().unwrap_or_default();
    assert_eq!(
        services::jwt_segment(meeting_token, 0).unwrap()["alg"],
        "EdDSA"
    );
    assert!(joined.json["expires_in"].as_u64().unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_need_a_token() {
    let Some(_cluster) = cluster_or_skip("meetings_need_a_token")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let endpoints = Endpoints::from_env(env);
    let http = services::http_client().unwrap();
    let created = services::create_meeting(&http, &endpoints.gc, None, "no-token")
        .await
        .unwrap();
    assert_eq!(created.status, 401, "{}", created.json);
    let forged = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJ4Iiwic2NvcGUiOiJtZWV0aW5nOmpvaW4ifQ.c2ln";
    let joined = services::join_meeting(
        &http,
        &endpoints.gc,
        Some(forged),
        "00000000-0000-0000-0000-000000000000",
    )
    .await
    .unwrap();
    assert_eq!(joined.status, 401, "{}", joined.json);
}
