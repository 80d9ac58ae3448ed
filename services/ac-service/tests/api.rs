//! ac-service integration tests against a real `PostgreSQL`
//! (`DT_TEST_DATABASE_URL`, see `common::testing`). Each test gets a fresh
//! database and an app on port 0.

// Test helpers outside #[test] fns: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ac_service::api::MEETING_TOKEN_SCOPE;
use ac_service::clients;
use ac_service::config::{Config, MasterKey};
use ac_service::keys::KeyStore;
use ac_service::startup::Application;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use common::SecretString;
use common::jwks::JwksCache;
use common::jwt::{self, MeetingClaims, ServiceClaims, TokenUse};
use common::shutdown::{self, ShutdownTrigger};
use common::testing::{self, TcpProxy};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sqlx::{PgPool, Row as _};
use test_support::{GC_CLIENT, GC_SECRET, MC_CLIENT, MC_SECRET};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

struct TestApp {
    base: String,
    pool: PgPool,
    keys: KeyStore,
    router: axum::Router,
    http: reqwest::Client,
    trigger: ShutdownTrigger,
    task: JoinHandle<std::io::Result<()>>,
    database_url: String,
    master_key: MasterKey,
    proxy: Option<TcpProxy>,
}

fn config(database_url: &str, master_key: MasterKey) -> Config {
    Config {
        database_url: SecretString::from(database_url.to_owned()),
        database_migration_url: SecretString::from(database_url.to_owned()),
        bind_address: "127.0.0.1:0".parse().unwrap(),
        master_key,
        cluster_name: "test".into(),
        bcrypt_cost: 4,
        drain: Duration::ZERO,
        log_filter: "warn".into(),
        clients_file: None,
    }
}

fn random_master_key() -> MasterKey {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    MasterKey::from_bytes(bytes)
}

async fn start(database_url: String, master_key: MasterKey, proxy: Option<TcpProxy>) -> TestApp {
    let app = Application::build(config(&database_url, master_key.clone()))
        .await
        .expect("app builds");
    let addr = app.local_addr().unwrap();
    let pool = app.pool();
    let keys = app.keys();
    let router = app.router();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(app.run(signal));
    // Clients used across tests: GC may ask for meeting tokens, MC may not.
    test_support::register_clients(&pool, &[GC_CLIENT, MC_CLIENT]).await;
    TestApp {
        base: format!("http://{addr}"),
        pool,
        keys,
        router,
        http: reqwest::Client::new(),
        trigger,
        task,
        database_url,
        master_key,
        proxy,
    }
}

async fn spawn_app() -> TestApp {
    let url = testing::fresh_database("ac_test").await;
    start(url, random_master_key(), None).await
}

/// The app reaches `PostgreSQL` through a proxy the test can cut.
async fn spawn_app_behind_proxy() -> TestApp {
    let url = testing::fresh_database("ac_test").await;
    let proxy = TcpProxy::start(testing::socket_addr_of(&url).await).await;
    let proxied = testing::with_host_port(&url, proxy.addr());
    start(proxied, random_master_key(), Some(proxy)).await
}

impl TestApp {
    async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/auth/service/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn service_token(&self, id: &str, secret: &str) -> String {
        test_support::service_token(&self.http, &self.base, id, secret).await
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn meeting_token(&self, bearer: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/api/v1/auth/internal/meeting-token", self.base))
            .json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }
}

#[tokio::test]
async fn health_and_ready_through_the_router() {
    let app = spawn_app().await;
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"OK");

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "database": "healthy", "signing_key": "available"})
    );
}

#[tokio::test]
async fn first_start_creates_one_encrypted_key_and_restarts_reuse_it() {
    let app = spawn_app().await;
    let (status, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    let kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert!(kid.starts_with("test-"), "{kid}");

    // The private half is not stored in clear.
    let row = sqlx::query("SELECT private_key_ciphertext FROM signing_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let ciphertext: Vec<u8> = row.get(0);
    let seed = app.keys.active().unwrap().signing.to_bytes();
    assert!(!ciphertext.windows(32).any(|w| w == seed));

    // A second replica on the same database uses the same key.
    let second = start(app.database_url.clone(), app.master_key.clone(), None).await;
    let (_, jwks2) = second.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks2["keys"][0]["kid"], kid.as_str());
    let count: i64 = sqlx::query("SELECT count(*) FROM signing_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    // The wrong master key cannot start the service, and says why.
    let err = Application::build(config(&app.database_url, random_master_key()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("AC_MASTER_KEY cannot decrypt"),
        "{err}"
    );
}

#[tokio::test]
async fn client_credentials_issue_a_verifiable_eddsa_token() {
    let app = spawn_app().await;
    let r = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "meeting-controller"),
            ("client_secret", MC_SECRET),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "service.write.gc service.write.mh");
    let token = body["access_token"].as_str().unwrap();

    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], app.keys.active().unwrap().kid.as_str());

    // Verified the way GC/MC/MH verify: through the published JWKS.
    let cache = JwksCache::new(
        format!("{}/.well-known/jwks.json", app.base),
        jwt::audience::GC,
        Duration::from_secs(1),
    )
    .unwrap();
    let claims = cache
        .verify_service(token, "service.write.gc")
        .await
        .unwrap();
    assert_eq!(claims.sub, "meeting-controller");
    assert_eq!(claims.service_type, "meeting-controller");
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.iss, jwt::ISSUER);
    assert_eq!(claims.aud, [jwt::audience::GC, jwt::audience::MH]);
    assert_eq!(claims.nbf, claims.iat);
    // The same token is not for MC: MC's cache refuses it.
    let mc_cache = JwksCache::new(
        format!("{}/.well-known/jwks.json", app.base),
        jwt::audience::MC,
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(
        mc_cache.verify_service(token, "service.write.gc").await,
        Err(common::auth::AuthError::Invalid(
            jwt::JwtError::WrongAudience(jwt::audience::MC.into())
        ))
    );

    // HTTP Basic works too, and a narrower scope can be asked for.
    let r = app
        .http
        .post(format!("{}/api/v1/auth/service/token", app.base))
        .basic_auth("meeting-controller", Some(MC_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "service.write.mh"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["scope"],
        "service.write.mh"
    );
}

#[tokio::test]
async fn bad_credentials_are_invalid_client() {
    let app = spawn_app().await;
    for (id, secret) in [
        ("meeting-controller", "wrong-secret-0123456789"),
        ("nobody", MC_SECRET),
        ("meeting-controller", ""),
        ("bad id!", MC_SECRET),
    ] {
        let r = app
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .await;
        assert_eq!(r.status(), 401, "{id}");
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{id}");
    }
    let r = app.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(format!("{}/api/v1/auth/service/token", app.base))
        .basic_auth("meeting-controller", Some("nope-nope-nope-nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn malformed_token_requests_get_clear_4xx() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/auth/service/token", app.base);
    let creds = [
        ("client_id", "meeting-controller"),
        ("client_secret", MC_SECRET),
    ];

    let r = app.token(&creds).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    let mut form = vec![("grant_type", "password")];
    form.extend_from_slice(&creds);
    let r = app.token(&form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("scope", "meeting:create"),
    ];
    form.extend_from_slice(&creds);
    let r = app.token(&form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");

    let r = app
        .http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("x-www-form-urlencoded")
    );

    let r = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&pad={}",
            "x".repeat(20_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    let r = app
        .http
        .post(&url)
        .basic_auth("meeting-controller", Some(MC_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", MC_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "two authentication methods");
}

#[tokio::test]
async fn meeting_tokens_need_the_internal_scope() {
    let app = spawn_app().await;
    let gc = app.service_token("global-controller", GC_SECRET).await;
    let body = json!({"meeting_id": "3f2c6f0e-7f38-4c3e-9a51-0d4f2b9b8a11", "mc_id": "mc-0", "mh_ids": ["mh-0"]});
    let r = app.meeting_token(Some(&gc), &body).await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["token_type"], "Bearer");
    assert_eq!(out["expires_in"], 600);
    let token = out["token"].as_str().unwrap();
    let key = app.keys.active().unwrap().signing.verifying_key();
    let claims: MeetingClaims =
        jwt::verify(token, &key, jwt::now_unix(), jwt::audience::MC).unwrap();
    assert_eq!(claims.meeting_id, body["meeting_id"]);
    assert_eq!(claims.sub, out["participant_id"]);
    assert_eq!(claims.iss, jwt::ISSUER);
    assert_eq!(claims.aud, jwt::audience::MEETING);
    assert_eq!(claims.nbf, claims.iat);
    assert_eq!(claims.mc_id, "mc-0");
    assert_eq!(claims.mh_ids, vec!["mh-0"]);
    assert_eq!(claims.token_use, TokenUse::Meeting);

    // MC's token lacks the scope: 403.
    let mc = app.service_token("meeting-controller", MC_SECRET).await;
    let r = app.meeting_token(Some(&mc), &body).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );

    // No token: 401. A meeting token is meant for MC and MH, not AC: 403.
    let r = app.meeting_token(None, &body).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = app.meeting_token(Some(token), &body).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("not meant for ac-service")
    );

    // Malformed bodies.
    for bad in [
        json!({"meeting_id": ""}),
        json!({"meeting_id": "m", "surprise": 1}),
        json!({"meeting_id": "m", "ttl_seconds": 100_000}),
        json!({"meeting_id": "m", "participant_id": "has space"}),
        json!({"meeting": "m"}),
    ] {
        let r = app.meeting_token(Some(&gc), &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
    let r = app
        .http
        .post(format!("{}/api/v1/auth/internal/meeting-token", app.base))
        .bearer_auth(&gc)
        .body("meeting_id=m")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

fn forge(key: &SigningKey, kid: &str, iat: i64, exp: i64) -> String {
    jwt::encode(
        &ServiceClaims {
            iss: jwt::ISSUER.into(),
            sub: "global-controller".into(),
            aud: vec![jwt::audience::AC.into()],
            iat,
            nbf: iat,
            exp,
            jti: "forged".into(),
            scope: MEETING_TOKEN_SCOPE.into(),
            service_type: "global-controller".into(),
            token_use: TokenUse::Service,
        },
        kid,
        key,
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_oversized_tokens_are_refused() {
    let app = spawn_app().await;
    let active = app.keys.active().unwrap();
    let now = jwt::now_unix();
    let body = json!({"meeting_id": "m-1"});

    // Signed by another key under the real kid.
    let forged = forge(
        &SigningKey::from_bytes(&[42; 32]),
        &active.kid,
        now,
        now + 60,
    );
    let r = app.meeting_token(Some(&forged), &body).await;
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "invalid_token");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    // Signed with the real key but expired an hour ago.
    let expired = forge(&active.signing, &active.kid, now - 7200, now - 3600);
    let r = app.meeting_token(Some(&expired), &body).await;
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Unknown kid, alg none, oversized.
    let unknown = forge(&active.signing, "nope", now, now + 60);
    assert_eq!(app.meeting_token(Some(&unknown), &body).await.status(), 401);
    // alg none with the real kid and otherwise valid claims: no signature.
    let good_payload = forge(&active.signing, &active.kid, now, now + 60)
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let none = format!(
        "{}.{good_payload}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            active.kid
        ))
    );
    let r = app.meeting_token(Some(&none), &body).await;
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error_description"].as_str().unwrap().contains("none"),
        "{err}"
    );
    // Signed with the real key, but for another service, by another
    // issuer, or not valid for another hour.
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = serde_json::to_value(
            jwt::verify::<ServiceClaims>(
                &forge(&active.signing, &active.kid, now, now + 60),
                &active.signing.verifying_key(),
                now,
                jwt::audience::AC,
            )
            .unwrap(),
        )
        .unwrap();
        edit(&mut claims);
        jwt::encode(&claims, &active.kid, &active.signing).unwrap()
    };
    let for_gc = with(&|c| c["aud"] = json!([jwt::audience::GC]));
    let r = app.meeting_token(Some(&for_gc), &body).await;
    assert_eq!(r.status(), 403, "a genuine token for another service");
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("not meant for ac-service"),
        "{err}"
    );
    for (token, expected) in [
        (
            with(&|c| c["iss"] = json!("ac-service.elsewhere")),
            "not issued by",
        ),
        (with(&|c| c["nbf"] = json!(now + 3600)), "not valid yet"),
    ] {
        let r = app.meeting_token(Some(&token), &body).await;
        assert_eq!(r.status(), 401, "{expected}");
        let err: Value = r.json().await.unwrap();
        assert!(
            err["error_description"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{err}"
        );
    }
    let huge = "a".repeat(10_000);
    let r = app.meeting_token(Some(&huge), &body).await;
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error_description"].as_str().unwrap().contains("bytes"),
        "{err}"
    );

    // The genuine article works.
    let good = forge(&active.signing, &active.kid, now, now + 60);
    assert_eq!(app.meeting_token(Some(&good), &body).await.status(), 200);
}

#[tokio::test]
async fn database_outage_makes_ac_unready_and_it_recovers() {
    let app = spawn_app_behind_proxy().await;
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200);

    app.proxy.as_ref().unwrap().stop();
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["database"], "unreachable");
    assert_eq!(body["failing"], json!(["database"]));
    assert_eq!(body["signing_key"], "available");
    // Liveness does not depend on the database.
    let r = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "meeting-controller"),
            ("client_secret", MC_SECRET),
        ])
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );

    app.proxy.as_ref().unwrap().resume().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get_json("/ready").await;
        if status == 200 {
            assert_eq!(body["database"], "healthy");
            break;
        }
        assert!(Instant::now() < deadline, "AC did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.service_token("meeting-controller", MC_SECRET).await;
}

#[tokio::test]
async fn metrics_are_prefixed_and_labelled_by_route_template() {
    let app = spawn_app().await;
    app.service_token("meeting-controller", MC_SECRET).await;
    let _ = app
        .http
        .get(format!("{}/no/such/path/123", app.base))
        .send()
        .await
        .unwrap();
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"ac_http_requests_total{method="POST",route="/api/v1/auth/service/token",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ac_tokens_issued_total{kind="service"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        !text.contains("/no/such/path"),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn shutdown_signal_stops_the_server() {
    let app = spawn_app().await;
    app.trigger.fire();
    tokio::time::timeout(Duration::from_secs(10), app.task)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

fn binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ac-service"))
}

fn register_cli(
    url: &str,
    key_b64: &str,
    id: &str,
    scopes: &str,
    secret: &str,
) -> std::process::Output {
    let mut cmd = binary();
    cmd.args(["register-client", "--client-id", id, "--scopes", scopes])
        .env_clear()
        .env("DATABASE_URL", url)
        .env("DATABASE_MIGRATION_URL", url)
        .env("AC_MASTER_KEY", key_b64)
        .env("CLUSTER_NAME", "test")
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "debug");
    with_secret_on_stdin(cmd, secret)
}

/// Runs `cmd` with `secret` and a newline on its stdin; captures the output.
fn with_secret_on_stdin(mut cmd: std::process::Command, secret: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn register_client_subcommand_is_idempotent_and_quiet_about_secrets() {
    let url = testing::fresh_database("ac_test").await;
    let key_b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let first_secret = "first-secret-0123456789";
    let out = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key_b64.clone());
        move || {
            register_cli(
                &url,
                &key,
                "frontend",
                "meeting:create meeting:join",
                first_secret,
            )
        }
    })
    .await
    .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("client frontend registered"), "{all}");
    assert!(!all.contains(first_secret), "secret leaked: {all}");

    let app = start(url.clone(), MasterKey::from_bytes([9u8; 32]), None).await;
    let token = app.service_token("frontend", first_secret).await;
    assert!(!token.is_empty());

    // Same id again: secret and scopes replaced.
    let second_secret = "second-secret-0123456789";
    let out = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key_b64.clone());
        move || register_cli(&url, &key, "frontend", "meeting:join", second_secret)
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("client frontend updated"));
    let r = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "frontend"),
            ("client_secret", first_secret),
        ])
        .await;
    assert_eq!(r.status(), 401, "old secret must stop working");
    let r = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "frontend"),
            ("client_secret", second_secret),
        ])
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "meeting:join");

    // Typos in scopes and short secrets are refused with a clear message.
    let out = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key_b64.clone());
        move || register_cli(&url, &key, "frontend", "meeting:crate", second_secret)
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope \"meeting:crate\""));
    let out = tokio::task::spawn_blocking(move || {
        register_cli(&url, &key_b64, "frontend", "meeting:join", "short")
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("16 to 72 bytes"));
}

#[tokio::test]
async fn binary_logs_json_without_secrets_and_exits_cleanly_on_sigterm() {
    use std::io::{BufRead as _, BufReader};
    let url = testing::fresh_database("ac_test").await;
    let key_b64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let mut child = binary()
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("DATABASE_MIGRATION_URL", &url)
        .env("AC_MASTER_KEY", &key_b64)
        .env("CLUSTER_NAME", "test")
        .env("BIND_ADDRESS", "127.0.0.1:0")
        .env("BCRYPT_COST", "4")
        .env("AC_DRAIN_SECONDS", "1")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut logs = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("ac-service logs its address");
        let parsed: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        logs.push(line);
        if parsed["message"] == "ac-service listening" {
            break parsed["addr"].as_str().unwrap().to_owned();
        }
    };
    let base = format!("http://{addr}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let secret = "binary-secret-0123456789";
    clients::register(
        &pool,
        "meeting-controller",
        secret,
        &["service.write.gc".to_owned()],
        "meeting-controller",
        4,
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    for s in [secret, "wrong-secret-0123456789"] {
        let _ = http
            .post(format!("{base}/api/v1/auth/service/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "meeting-controller"),
                ("client_secret", s),
            ])
            .send()
            .await
            .unwrap();
    }
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // During the drain the service answers, but not ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        logs.push(line);
    }
    let all = logs.join("\n");
    for line in &logs {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(all.contains("SIGTERM received"), "{all}");
    assert!(all.contains("ac-service stopped"), "{all}");
    assert!(all.contains("token request refused"), "{all}");
    for leaked in [
        secret,
        "wrong-secret-0123456789",
        key_b64.as_str(),
        url.as_str(),
    ] {
        assert!(!all.contains(leaked), "a secret leaked into the logs");
    }
}

/// `ac-service hash-secret` prints a bcrypt hash of the secret on stdin.
fn hash_secret_cli(secret: &str) -> String {
    let mut cmd = binary();
    cmd.args(["hash-secret", "--cost", "4"]).env_clear();
    let out = with_secret_on_stdin(cmd, secret);
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert!(!hash.contains(secret));
    hash
}

#[tokio::test]
async fn declared_clients_are_applied_at_start_idempotently() {
    use ac_service::declared::{self, Applied};
    let url = testing::fresh_database("ac_test").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.toml");
    let gc_hash = hash_secret_cli("declared-gc-secret-0123");
    let prober_hash = hash_secret_cli("declared-prober-secret-0123");
    std::fs::write(
        &file,
        format!(
            "[[client]]\nid = \"global-controller\"\nscopes = \"internal:meeting-token service.write.mc\"\nsecret_hash = \"{gc_hash}\"\n\n[[client]]\nid = \"synthetic-prober\"\nscopes = \"meeting:create meeting:join\"\nsecret_hash = \"{prober_hash}\"\n"
        ),
    )
    .unwrap();
    let mut cfg = config(&url, random_master_key());
    cfg.clients_file = Some(file.clone());

    // The server applies the file at start: both clients get tokens.
    let app = Application::build(cfg.clone()).await.expect("app builds");
    let addr = app.local_addr().unwrap();
    let pool = app.pool();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(app.run(signal));
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let token = test_support::service_token(
        &http,
        &base,
        "synthetic-prober",
        "declared-prober-secret-0123",
    )
    .await;
    assert!(!token.is_empty());
    test_support::service_token(&http, &base, "global-controller", "declared-gc-secret-0123").await;
    let wrong = http
        .post(format!("{base}/api/v1/auth/service/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "global-controller"),
            ("client_secret", "declared-prober-secret-0123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // Applying the same file again changes nothing; a changed scope list updates.
    let clients = declared::read_file(&file).unwrap();
    let again = declared::apply(&pool, &clients).await.unwrap();
    assert!(
        again.iter().all(|(_, a)| *a == Applied::Unchanged),
        "{again:?}"
    );
    let mut changed = clients.clone();
    changed[0].scopes = vec!["service.write.mc".to_owned()];
    let applied = declared::apply(&pool, &changed).await.unwrap();
    assert_eq!(
        applied[0],
        ("global-controller".to_owned(), Applied::Updated)
    );
    assert_eq!(applied[1].1, Applied::Unchanged);

    trigger.fire();
    task.await.unwrap().unwrap();

    // A broken file stops the start-up, naming the file and the client.
    std::fs::write(
        &file,
        "[[client]]\nid = \"gc\"\nscopes = \"admin\"\nsecret_hash = \"x\"\n",
    )
    .unwrap();
    let err = Application::build(cfg).await.unwrap_err().to_string();
    assert!(
        err.contains("clients.toml: client 1 (\"gc\"): unknown scope"),
        "{err}"
    );
}
