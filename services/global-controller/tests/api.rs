//! global-controller integration tests: real `PostgreSQL` (fresh databases),
//! a real AC (ac-service in-process) for tokens and the JWKS, and meeting
//! controllers played by small tonic servers that check GC's token exactly
//! as an MC must.

// Test helpers outside #[test] fns: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::SecretString;
use common::grpc::with_bearer;
use common::jwks::JwksCache;
use common::jwt::{self, MeetingClaims, ServiceClaims, TokenUse};
use common::shutdown::{self, ShutdownTrigger};
use common::testing::{self, TcpProxy};
use ed25519_dalek::SigningKey;
use global_controller::startup::Application;
use proto::v1::{
    Capacity, HealthStatus, HeartbeatRequest, HostMeetingRequest, HostMeetingResponse, Load,
    LoadReportRequest, RegisterMcRequest, RegisterMhRequest,
};
use proto::{GlobalControllerServiceClient, MediaHandlerRegistryClient};
use serde_json::{Value, json};
use test_support::{
    Ac, FRONTEND_CLIENT, FRONTEND_SECRET, GC_CLIENT, MC_CLIENT, MC_SECRET, MH_CLIENT, MH_SECRET,
    gc_config, lazy_channel,
};
use tonic::transport::Channel;
use tower::ServiceExt as _;

const VIEWER_SECRET: &str = "vw-secret-0123456789abcdef";

/// A real AC on a fresh database, with the platform's clients registered.
async fn spawn_ac() -> Ac {
    Ac::spawn(
        "gc_test_ac",
        [11; 32],
        "test",
        &[
            GC_CLIENT,
            MC_CLIENT,
            MH_CLIENT,
            FRONTEND_CLIENT,
            ("viewer", VIEWER_SECRET, "meeting:join"),
        ],
    )
    .await
}

struct TestApp {
    base: String,
    grpc: Channel,
    router: axum::Router,
    http: reqwest::Client,
    ac: Ac,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    proxy: Option<TcpProxy>,
}

async fn start(
    ac: Ac,
    database_url: String,
    staleness: Duration,
    proxy: Option<TcpProxy>,
) -> TestApp {
    let config = gc_config(database_url, &ac.base, staleness);
    start_with(ac, config, proxy).await
}

async fn start_with(
    ac: Ac,
    config: global_controller::config::Config,
    proxy: Option<TcpProxy>,
) -> TestApp {
    let app = Application::build(config).await.unwrap();
    let base = format!("http://{}", app.http_addr().unwrap());
    let grpc = lazy_channel(app.grpc_addr().unwrap());
    let router = app.router();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(app.run(signal));
    let test_app = TestApp {
        base,
        grpc,
        router,
        http: reqwest::Client::new(),
        ac,
        trigger,
        task,
        proxy,
    };
    test_app.wait_ready().await;
    test_app
}

async fn spawn_app_with(staleness: Duration) -> TestApp {
    let ac = spawn_ac().await;
    let url = testing::fresh_database("gc_test").await;
    start(ac, url, staleness, None).await
}

async fn spawn_app() -> TestApp {
    spawn_app_with(Duration::from_secs(30)).await
}

impl TestApp {
    async fn wait_ready(&self) {
        test_support::wait_ready("GC", &self.base, Duration::from_secs(15)).await;
    }

    async fn token(&self, id: &str, secret: &str) -> String {
        test_support::service_token(&self.http, &self.ac.base, id, secret).await
    }

    async fn frontend(&self) -> String {
        self.token("frontend", FRONTEND_SECRET).await
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create_meeting(&self, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/meetings", self.base))
            .json(body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn new_meeting(&self) -> String {
        let token = self.frontend().await;
        let (status, body) = self
            .create_meeting(Some(&token), &json!({"name": "standup"}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["meeting_id"].as_str().unwrap().to_owned()
    }

    async fn join(&self, meeting_id: &str) -> (u16, Value) {
        let token = self.frontend().await;
        self.get(&format!("/api/v1/meetings/{meeting_id}"), Some(&token))
            .await
    }

    fn gc_client(&self) -> GlobalControllerServiceClient<Channel> {
        GlobalControllerServiceClient::new(self.grpc.clone())
    }

    fn mh_registry(&self) -> MediaHandlerRegistryClient<Channel> {
        MediaHandlerRegistryClient::new(self.grpc.clone())
    }

    async fn register_mc(&self, mc: &FakeMc, max_meetings: u32) {
        let token = SecretString::from(self.token("meeting-controller", MC_SECRET).await);
        let req = RegisterMcRequest {
            mc_id: mc.id.clone(),
            region: "test-region".into(),
            grpc_address: mc.addr.clone(),
            webtransport_address: format!("{}.example:4433", mc.id),
            capacity: Some(Capacity {
                max_meetings,
                max_participants: 100,
            }),
            version: "test".into(),
        };
        let resp = self
            .gc_client()
            .register_mc(with_bearer(req, &token).unwrap())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.gc_region, "test-region");
        assert!(resp.heartbeat_interval_seconds >= 1);
    }

    async fn mc_heartbeat(&self, mc_id: &str) -> Result<(), tonic::Status> {
        let token = SecretString::from(self.token("meeting-controller", MC_SECRET).await);
        let req = HeartbeatRequest {
            mc_id: mc_id.into(),
            load: Some(Load {
                current_meetings: 0,
                current_participants: 0,
            }),
            health: HealthStatus::Healthy as i32,
        };
        self.gc_client()
            .heartbeat(with_bearer(req, &token).unwrap())
            .await
            .map(|_| ())
    }

    async fn register_mh(&self, mh_id: &str) {
        let token = SecretString::from(self.token("media-handler", MH_SECRET).await);
        let req = RegisterMhRequest {
            mh_id: mh_id.into(),
            region: "test-region".into(),
            grpc_address: format!("{mh_id}.example:50053"),
            media_address: format!("{mh_id}.example:4434"),
            capacity: Some(Capacity {
                max_meetings: 10,
                max_participants: 100,
            }),
            version: "test".into(),
        };
        self.mh_registry()
            .register_mh(with_bearer(req, &token).unwrap())
            .await
            .unwrap();
    }
}

/// A meeting controller stand-in: a real tonic server that verifies GC's
/// token against AC's JWKS (scope `service.write.mc`), as MC will.
struct FakeMc {
    id: String,
    addr: String,
    hosted: Arc<Mutex<Vec<HostMeetingRequest>>>,
    _trigger: ShutdownTrigger,
}

#[derive(Clone)]
struct FakeMcService {
    id: String,
    jwks: Arc<JwksCache>,
    hosted: Arc<Mutex<Vec<HostMeetingRequest>>>,
    full: bool,
}

#[tonic::async_trait]
impl proto::MeetingControllerService for FakeMcService {
    async fn host_meeting(
        &self,
        request: tonic::Request<HostMeetingRequest>,
    ) -> Result<tonic::Response<HostMeetingResponse>, tonic::Status> {
        common::grpc::authorize(&self.jwks, request.metadata(), "service.write.mc").await?;
        if self.full {
            return Err(tonic::Status::resource_exhausted("full"));
        }
        self.hosted.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(HostMeetingResponse {
            mc_id: self.id.clone(),
            webtransport_url: format!("https://{}.example:4433/signaling", self.id),
        }))
    }
}

async fn fake_mc(app: &TestApp, id: &str, full: bool) -> FakeMc {
    let jwks = Arc::new(
        JwksCache::new(
            format!("{}/.well-known/jwks.json", app.ac.base),
            jwt::audience::MC,
            Duration::from_secs(1),
        )
        .unwrap(),
    );
    jwks.refresh().await.unwrap();
    let hosted = Arc::new(Mutex::new(Vec::new()));
    let service = FakeMcService {
        id: id.into(),
        jwks,
        hosted: hosted.clone(),
        full,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(proto::MeetingControllerServiceServer::new(service))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                signal.wait(),
            ),
    );
    FakeMc {
        id: id.into(),
        addr,
        hosted,
        _trigger: trigger,
    }
}

fn service_claims(scope: &str, iat: i64, exp: i64) -> ServiceClaims {
    ServiceClaims {
        iss: jwt::ISSUER.into(),
        sub: "frontend".into(),
        aud: jwt::audiences_for_scopes(scope),
        iat,
        nbf: iat,
        exp,
        jti: "t".into(),
        scope: scope.into(),
        service_type: "frontend".into(),
        token_use: TokenUse::Service,
    }
}

/// `url` with another user and password.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(Some(password)).unwrap();
    u.to_string()
}

/// What a transaction pooler forces: queries over `DATABASE_URL` (here a
/// role that may read and write the tables but create nothing), migrations
/// over `DATABASE_MIGRATION_URL` (the database's owner). GC must refuse to
/// start when both are the query role, and start and serve when the
/// migrations have their own URL.
#[tokio::test]
async fn migrations_take_the_migration_url_and_queries_the_other() {
    let owner = testing::fresh_database("gc_test_roles").await;
    let role = format!("dt_query_{}", uuid::Uuid::new_v4().simple());
    let password = "query-role-password";
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&owner)
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}"
        ),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    let query = as_user(&owner, &role, password);

    let ac = spawn_ac().await;
    let mut config = gc_config(query.clone(), &ac.base, Duration::from_secs(30));
    let refused = Application::build(config.clone()).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("database migration failed"),
        "{refused:#}"
    );

    config.database_migration_url = SecretString::from(owner.clone());
    let app = start_with(ac, config, None).await;
    let meeting = app.new_meeting().await;
    let (status, body) = app
        .get(
            &format!("/api/v1/meetings/{meeting}"),
            Some(&app.frontend().await),
        )
        .await;
    // No MC is registered: the meeting exists and is read back with the
    // query role, and placing it says there is no capacity.
    assert_eq!(status, 503, "{body}");
    let _ = sqlx::query(&format!("DROP OWNED BY {role}"))
        .execute(&mut conn)
        .await;
}

#[tokio::test]
async fn health_ready_and_grpc_health() {
    let app = spawn_app().await;
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = app.get("/ready", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "database": "healthy", "ac_jwks": "fetched"})
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.grpc.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: proto::service_names::GLOBAL_CONTROLLER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn create_meeting_contract_and_auth() {
    let app = spawn_app().await;
    let token = app.frontend().await;
    let (status, body) = app
        .create_meeting(Some(&token), &json!({"name": "  Weekly sync  "}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "Weekly sync");
    uuid::Uuid::parse_str(body["meeting_id"].as_str().unwrap()).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2);

    // Scope, missing, forged and expired tokens.
    let viewer = app.token("viewer", VIEWER_SECRET).await;
    let (status, body) = app
        .create_meeting(Some(&viewer), &json!({"name": "x"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "insufficient_scope");
    let (status, _) = app.create_meeting(None, &json!({"name": "x"})).await;
    assert_eq!(status, 401);
    let active = app.ac.keys.active().unwrap();
    let now = jwt::now_unix();
    let forged = jwt::encode(
        &service_claims("meeting:create", now, now + 60),
        &active.kid,
        &SigningKey::from_bytes(&[66; 32]),
    )
    .unwrap();
    let (status, body) = app
        .create_meeting(Some(&forged), &json!({"name": "x"}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let expired = jwt::encode(
        &service_claims("meeting:create", now - 7200, now - 3600),
        &active.kid,
        &active.signing,
    )
    .unwrap();
    let (status, body) = app
        .create_meeting(Some(&expired), &json!({"name": "x"}))
        .await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let unknown_kid = jwt::encode(
        &service_claims("meeting:create", now, now + 60),
        "rotated-away",
        &active.signing,
    )
    .unwrap();
    let (status, _) = app
        .create_meeting(Some(&unknown_kid), &json!({"name": "x"}))
        .await;
    assert_eq!(status, 401);
    let huge = "x".repeat(9000);
    let (status, _) = app.create_meeting(Some(&huge), &json!({"name": "x"})).await;
    assert_eq!(status, 401);

    // Malformed bodies.
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "a".repeat(201)}),
        json!({"name": "x", "extra": true}),
        json!({"name": 5}),
        json!({"name": "bell\u{7}"}),
    ] {
        let (status, body) = app.create_meeting(Some(&token), &bad).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let r = app
        .http
        .post(format!("{}/api/v1/meetings", app.base))
        .bearer_auth(&token)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = app
        .http
        .post(format!("{}/api/v1/meetings", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "a".repeat(20_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn join_places_the_meeting_on_a_healthy_mc_and_returns_a_meeting_token() {
    let app = spawn_app().await;
    let meeting_id = app.new_meeting().await;

    // Nothing registered yet: 503.
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "no_capacity");

    app.register_mh("mh-0").await;
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 503);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("meeting controller")
    );

    let mc = fake_mc(&app, "mc-0", false).await;
    app.register_mc(&mc, 10).await;
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meeting_id"], meeting_id.as_str());
    assert_eq!(body["mc"]["mc_id"], "mc-0");
    assert_eq!(
        body["mc"]["webtransport_url"],
        "https://mc-0.example:4433/signaling"
    );
    assert_eq!(
        body["mh"],
        json!([{"mh_id": "mh-0", "endpoint": "mh-0.example:4434"}])
    );
    assert!(body["expires_in"].as_u64().unwrap() > 0);

    // The MC was asked to host it, with the MH assignment.
    {
        let hosted = mc.hosted.lock().unwrap();
        assert_eq!(hosted.len(), 1);
        assert_eq!(hosted[0].meeting_id, meeting_id);
        assert_eq!(hosted[0].meeting_name, "standup");
        assert_eq!(hosted[0].media_handlers[0].mh_id, "mh-0");
        assert_eq!(
            hosted[0].media_handlers[0].media_address,
            "mh-0.example:4434"
        );
    }

    // The token is a meeting token for this meeting, MC and MH.
    let key = app.ac.keys.active().unwrap().signing.verifying_key();
    let claims: MeetingClaims = jwt::verify(
        body["token"].as_str().unwrap(),
        &key,
        jwt::now_unix(),
        jwt::audience::MC,
    )
    .unwrap();
    assert_eq!(claims.meeting_id, meeting_id);
    assert_eq!(claims.mc_id, "mc-0");
    assert_eq!(claims.mh_ids, vec!["mh-0"]);
    assert_eq!(claims.token_use, TokenUse::Meeting);

    // A second participant lands on the same MC and MH, as someone else.
    let other = fake_mc(&app, "mc-1", false).await;
    app.register_mc(&other, 10).await;
    let (status, second) = app.join(&meeting_id).await;
    assert_eq!(status, 200);
    assert_eq!(second["mc"]["mc_id"], "mc-0");
    assert_eq!(second["mh"][0]["mh_id"], "mh-0");
    let claims2: MeetingClaims = jwt::verify(
        second["token"].as_str().unwrap(),
        &key,
        jwt::now_unix(),
        jwt::audience::MC,
    )
    .unwrap();
    assert_ne!(claims.sub, claims2.sub, "participants are distinct");

    // Unknown and malformed meeting ids; join needs meeting:join.
    let (status, _) = app.join(&uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
    let (status, _) = app.join("not-a-uuid").await;
    assert_eq!(status, 400);
    let mc_token = app.token("meeting-controller", MC_SECRET).await;
    let (status, _) = app
        .get(&format!("/api/v1/meetings/{meeting_id}"), Some(&mc_token))
        .await;
    assert_eq!(status, 403);
    let viewer = app.token("viewer", VIEWER_SECRET).await;
    let (status, _) = app
        .get(&format!("/api/v1/meetings/{meeting_id}"), Some(&viewer))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_full_mc_is_skipped() {
    let app = spawn_app().await;
    app.register_mh("mh-0").await;
    let full = fake_mc(&app, "mc-full", true).await;
    app.register_mc(&full, 10).await;
    let meeting_id = app.new_meeting().await;
    let (status, _) = app.join(&meeting_id).await;
    assert_eq!(status, 503, "the only MC refuses");
    let ok = fake_mc(&app, "mc-ok", false).await;
    app.register_mc(&ok, 10).await;
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mc"]["mc_id"], "mc-ok");
}

#[tokio::test]
async fn grpc_calls_need_a_service_token_with_the_gc_scope() {
    let app = spawn_app().await;
    let req = || RegisterMcRequest {
        mc_id: "mc-x".into(),
        region: "test-region".into(),
        grpc_address: "127.0.0.1:50052".into(),
        webtransport_address: "mc-x.example:4433".into(),
        capacity: Some(Capacity {
            max_meetings: 1,
            max_participants: 1,
        }),
        version: String::new(),
    };
    let err = app.gc_client().register_mc(req()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let frontend = SecretString::from(app.frontend().await);
    let err = app
        .gc_client()
        .register_mc(with_bearer(req(), &frontend).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    let active = app.ac.keys.active().unwrap();
    let now = jwt::now_unix();
    let mut claims = service_claims("service.write.gc", now, now + 60);
    claims.sub = "meeting-controller".into();
    let forged = SecretString::from(
        jwt::encode(&claims, &active.kid, &SigningKey::from_bytes(&[77; 32])).unwrap(),
    );
    let err = app
        .gc_client()
        .register_mc(with_bearer(req(), &forged).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    claims.iat = now - 7200;
    claims.exp = now - 3600;
    let expired = SecretString::from(jwt::encode(&claims, &active.kid, &active.signing).unwrap());
    let err = app
        .mh_registry()
        .load_report(with_bearer(LoadReportRequest::default(), &expired).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let mc = SecretString::from(app.token("meeting-controller", MC_SECRET).await);
    let mut bad = req();
    bad.grpc_address = "http://mc-x:50052".into();
    let err = app
        .gc_client()
        .register_mc(with_bearer(bad, &mc).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("grpc_address"));
    let err = app.mc_heartbeat("never-registered").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let mh = SecretString::from(app.token("media-handler", MH_SECRET).await);
    let report = LoadReportRequest {
        mh_id: "nobody".into(),
        load: None,
        health: 0,
        bandwidth_utilization: 2.0,
    };
    let err = app
        .mh_registry()
        .load_report(with_bearer(report, &mh).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn stale_controllers_get_no_meetings_and_are_forgotten() {
    let app = spawn_app_with(Duration::from_secs(1)).await;
    app.register_mh("mh-0").await;
    let a = fake_mc(&app, "mc-a", false).await;
    app.register_mc(&a, 10).await;
    let meeting_id = app.new_meeting().await;
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mc"]["mc_id"], "mc-a");

    // mc-a and mh-0 go silent; only mc-b and mh-1 keep heartbeating.
    let b = fake_mc(&app, "mc-b", false).await;
    app.register_mc(&b, 10).await;
    app.register_mh("mh-1").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.mc_heartbeat("mc-b").await.unwrap();
    app.register_mh("mh-1").await;
    let (status, body) = app.join(&meeting_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["mc"]["mc_id"], "mc-b",
        "the meeting moves off the stale MC"
    );
    assert_eq!(body["mh"][0]["mh_id"], "mh-1");

    // Everyone silent: no capacity.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let fresh = app.new_meeting().await;
    let (status, _) = app.join(&fresh).await;
    assert_eq!(status, 503);

    // After FORGET_AFTER_THRESHOLDS (4) silent thresholds GC forgets a
    // controller (the sweep runs every threshold), and its next heartbeat
    // gets NOT_FOUND: register again.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let err = app.mc_heartbeat("mc-b").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    app.register_mc(&b, 10).await;
    app.mc_heartbeat("mc-b").await.unwrap();
}

#[tokio::test]
async fn database_outage_makes_gc_unready_and_it_recovers() {
    let ac = spawn_ac().await;
    let url = testing::fresh_database("gc_test").await;
    let proxy = TcpProxy::start(testing::socket_addr_of(&url).await).await;
    let proxied = testing::with_host_port(&url, proxy.addr());
    let app = start(ac, proxied, Duration::from_secs(30), Some(proxy)).await;

    app.proxy.as_ref().unwrap().stop();
    let (status, body) = app.get("/ready", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unreachable");
    assert_eq!(body["failing"], json!(["database"]));
    assert_eq!(body["ac_jwks"], "fetched");
    let token = app.frontend().await;
    let (status, body) = app
        .create_meeting(Some(&token), &json!({"name": "during outage"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");

    app.proxy.as_ref().unwrap().resume().await;
    app.wait_ready().await;
    app.new_meeting().await;
}

#[tokio::test]
async fn without_ac_jwks_gc_is_not_ready() {
    let ac = spawn_ac().await;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_base = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let url = testing::fresh_database("gc_test").await;
    let app = Application::build(gc_config(url, &dead_base, Duration::from_secs(30)))
        .await
        .unwrap();
    let router = app.router();
    let response = router
        .clone()
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["ac_jwks"], "not_fetched");
    assert_eq!(body["failing"], json!(["ac_jwks"]));

    // A genuine token cannot be checked yet: 503, not 401.
    let token = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/service/token", ac.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "frontend"),
            ("client_secret", FRONTEND_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = router
        .oneshot(
            Request::post("/api/v1/meetings")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"name":"x"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_use_the_gc_prefix_and_route_templates() {
    let app = spawn_app().await;
    let meeting_id = app.new_meeting().await;
    let _ = app.join(&meeting_id).await;
    let _ = app.mc_heartbeat("nobody").await;
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
        text.contains(r#"gc_http_requests_total{method="GET",route="/api/v1/meetings/{meeting_id}",status="503"} 1"#),
        "{text}"
    );
    assert!(text.contains("gc_meetings_created_total 1"), "{text}");
    assert!(
        text.contains(r#"gc_meeting_joins_total{outcome="no_capacity"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gc_grpc_requests_total{code="not_found",method="Heartbeat"} 1"#),
        "{text}"
    );
    assert!(!text.contains(&meeting_id), "ids must not become labels");
}

#[tokio::test]
async fn shutdown_stops_http_and_grpc() {
    let app = spawn_app().await;
    app.trigger.fire();
    tokio::time::timeout(Duration::from_secs(10), app.task)
        .await
        .expect("servers stop")
        .unwrap()
        .unwrap();
}
