//! Live: AC issues service tokens and publishes the keys that verify them.
//! Skipped (with a printed reason) unless a cluster is configured and answers.

// Helpers outside #[test] fns panic on purpose: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use env_tests::cluster::cluster_or_skip;
use env_tests::services::{self, ClientCredentials, Endpoints};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_ed25519_keys() {
    let Some(_cluster) = cluster_or_skip("jwks_publishes_ed25519_keys")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let endpoints = Endpoints::from_env(env);
    let http = services::http_client().unwrap();
    let got = services::jwks(&http, &endpoints.ac).await.unwrap();
    assert_eq!(got.status, 200, "{}", got.json);
    let keys = got.json["keys"].as_array().expect("JWKS has no keys array");
    assert!(!keys.is_empty(), "AC publishes no signing key");
    for key in keys {
        assert_eq!(key["kty"], "OKP", "{key}");
        assert_eq!(key["crv"], "Ed25519", "{key}");
        assert!(key["kid"].is_string() && key["x"].is_string(), "{key}");
        assert!(
            key.get("d").is_none(),
            "the JWKS leaks a private key: {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_yield_an_eddsa_token_signed_by_a_published_key() {
    let Some(cluster) = cluster_or_skip("client_credentials_yield_an_eddsa_token")
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
    assert_eq!(token.token_type, "Bearer");
    assert!(token.expires_in > 0);

    let header = services::jwt_segment(&token.access_token, 0).unwrap();
    assert_eq!(header["alg"], "EdDSA", "{header}");
    assert_eq!(header["typ"], "JWT", "{header}");
    let claims = services::jwt_segment(&token.access_token, 1).unwrap();
    assert_eq!(claims["sub"], credentials.id.as_str(), "{claims}");
    for scope in ["meeting:create", "meeting:join"] {
        assert!(
            claims["scope"]
                .as_str()
                .unwrap_or_default()
                .split(' ')
                .any(|s| s == scope),
            "{claims}"
        );
    }

    let jwks = services::jwks(&http, &endpoints.ac).await.unwrap();
    let kids: Vec<&str> = jwks.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&header["kid"].as_str().unwrap_or_default()),
        "kid {} not in JWKS {kids:?}",
        header["kid"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_invalid_client() {
    let Some(cluster) = cluster_or_skip("a_wrong_secret_is_invalid_client")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let endpoints = Endpoints::from_env(env);
    let http = services::http_client().unwrap();
    let real = services::env_tests_credentials(&cluster.client, env)
        .await
        .unwrap();
    let wrong = ClientCredentials {
        id: real.id,
        secret: format!("{}-wrong", real.secret),
    };
    let got = services::request_token(&http, &endpoints.ac, &wrong, None)
        .await
        .unwrap();
    assert_eq!(got.status, 401, "{}", got.json);
    assert_eq!(got.json["error"], "invalid_client");
}
