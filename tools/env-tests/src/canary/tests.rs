//! Unit tests of the canary without a cluster.
//!
//! The Kubernetes API server is mocked: `mock_client` builds a real
//! `kube::Client` on top of a `tower::service_fn` that records each request
//! and answers from a handler. That exercises our request building, status
//! handling and cleanup logic; what it cannot cover is the exec WebSocket
//! behind `can_reach`, which the live `NetworkPolicy` tests exercise.

use super::*;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus,
};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

fn mock_client<F>(handler: F) -> (Client, Log)
where
    F: Fn(&str, &str, usize) -> (u16, Value) + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let handler = Arc::new(handler);
    let seen = log.clone();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let seen = seen.clone();
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect_bytes().await?;
            let method = parts.method.to_string();
            let path = parts.uri.path().to_owned();
            let n = {
                let mut log = seen.lock().unwrap();
                log.push(Recorded {
                    method: method.clone(),
                    path: path.clone(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                log.iter()
                    .filter(|r| r.method == method && r.path == path)
                    .count()
            };
            let (code, value) = handler(&method, &path, n);
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(
                    serde_json::to_vec(&value).unwrap(),
                ))
                .unwrap();
            Ok::<_, kube::Error>(response)
        }
    });
    (Client::new(service, "default"), log)
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

fn pod_json(name: &str, phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "canary-test-aa"},
           "status": {"phase": phase, "podIP": "192.168.1.7"}})
}

fn requests(log: &Log, method: &str) -> Vec<Recorded> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == method)
        .cloned()
        .collect()
}

fn pod_with(phase: Option<&str>, waiting: Option<&str>) -> Pod {
    Pod {
        status: Some(PodStatus {
            phase: phase.map(str::to_owned),
            container_statuses: waiting.map(|reason| {
                vec![ContainerStatus {
                    name: CONTAINER.to_owned(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.to_owned()),
                            message: Some("details".to_owned()),
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]
            }),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

// ---- names, labels, guard -------------------------------------------------

#[test]
fn canary_names_are_unique_dns_labels_with_eight_hex_digits() {
    let a = canary_name();
    let b = canary_name();
    assert_ne!(a, b);
    let suffix = a.strip_prefix("canary-").unwrap();
    assert_eq!(suffix.len(), 8, "{a}");
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{a}"
    );
}

#[test]
fn generated_test_namespaces_pass_the_guard() {
    let ns = test_namespace_name();
    assert!(ns.starts_with(TEST_NAMESPACE_PREFIX), "{ns}");
    assert!(is_test_namespace(&ns), "{ns}");
}

#[test]
fn guard_only_accepts_canary_test_namespaces() {
    for protected in [
        "dark-tower",
        "kube-system",
        "default",
        "flux-system",
        "canary-test-",
        "canary-testing",
        "canary-test",
        "Canary-test-abc",
        "canary-test-abc-",
        "canary-test-ab_c",
        "x-canary-test-abc",
    ] {
        assert!(
            !is_test_namespace(protected),
            "{protected} must be protected"
        );
    }
    for ok in ["canary-test-ab12cd34", "canary-test-np-1"] {
        assert!(is_test_namespace(ok), "{ok}");
    }
    assert!(!is_test_namespace(&format!(
        "canary-test-{}",
        "a".repeat(60)
    )));
}

#[test]
fn labels_identify_the_canary_and_its_test() {
    let labels = canary_labels("network_policy::ac_is_isolated");
    assert_eq!(
        labels,
        BTreeMap::from([
            ("app".to_owned(), "canary".to_owned()),
            (
                "test".to_owned(),
                "network-policy--ac-is-isolated".to_owned()
            ),
            ("created-by".to_owned(), "env-tests".to_owned()),
        ])
    );
}

#[test]
fn label_values_are_valid_whatever_the_test_name() {
    assert_eq!(sanitize_label_value("__"), "unnamed");
    assert_eq!(sanitize_label_value("-a.b_c-"), "a.b-c");
    let long = sanitize_label_value(&"x".repeat(100));
    assert_eq!(long.len(), 63);
    let cut = sanitize_label_value(&format!("{}_tail", "y".repeat(62)));
    assert!(cut.len() <= 63 && cut.ends_with('y'), "{cut}");
}

// ---- pod spec ---------------------------------------------------------------

#[test]
fn pod_is_bare_pinned_labelled_and_hardened() {
    let pod = canary_pod(
        "canary-0123abcd",
        "canary-test-x1",
        "np",
        &["sleep", "3600"],
    );
    assert_eq!(pod.metadata.name.as_deref(), Some("canary-0123abcd"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("canary-test-x1"));
    assert_eq!(pod.metadata.labels, Some(canary_labels("np")));
    assert!(
        pod.metadata.owner_references.is_none(),
        "a bare pod has no owner"
    );

    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    let psc = spec.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");

    assert_eq!(spec.containers.len(), 1);
    let c = &spec.containers[0];
    let image = c.image.as_deref().unwrap();
    assert_eq!(image, CANARY_IMAGE);
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap();
    assert!(
        tag != "latest" && tag.split('.').count() == 3,
        "image must be pinned: {image}"
    );
    assert_eq!(
        c.command.as_deref(),
        Some(&["sleep".to_owned(), "3600".to_owned()][..])
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0].mount_path, "/tmp");
    assert!(spec.volumes.unwrap()[0].empty_dir.is_some());
}

#[test]
fn probe_is_wget_spider_with_a_five_second_timeout() {
    assert_eq!(
        probe_command("http://ac-service.dark-tower.svc.cluster.local:8082/health"),
        [
            "wget",
            "--spider",
            "-q",
            "-T",
            "5",
            "http://ac-service.dark-tower.svc.cluster.local:8082/health"
        ]
    );
}

#[test]
fn urls_that_could_smuggle_arguments_are_refused() {
    for bad in ["ac-service:8082", "http://a b", "-O/tmp/x", "ftp://x", ""] {
        assert!(
            matches!(check_url(bad), Err(CanaryError::BadUrl(_))),
            "{bad}"
        );
    }
    assert!(check_url("http://10.0.0.1:8080/health").is_ok());
}

// ---- phases -----------------------------------------------------------------

#[test]
fn phases_decide_whether_to_wait() {
    assert_eq!(
        classify_pod(&pod_with(Some("Running"), None)),
        PhaseDecision::Running
    );
    assert_eq!(
        classify_pod(&pod_with(Some("Pending"), None)),
        PhaseDecision::Wait("Pending".into())
    );
    assert_eq!(
        classify_pod(&pod_with(Some("Pending"), Some("ContainerCreating"))),
        PhaseDecision::Wait("Pending".into())
    );
    assert_eq!(
        classify_pod(&Pod::default()),
        PhaseDecision::Wait("Unknown".into())
    );
    assert!(
        matches!(classify_pod(&pod_with(Some("Failed"), None)), PhaseDecision::Failed(r) if r.contains("Failed"))
    );
    assert!(matches!(
        classify_pod(&pod_with(Some("Succeeded"), None)),
        PhaseDecision::Failed(_)
    ));
    for hopeless in ["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"] {
        assert!(
            matches!(classify_pod(&pod_with(Some("Pending"), Some(hopeless))), PhaseDecision::Failed(r) if r.starts_with(hopeless)),
            "{hopeless}"
        );
    }
}

// ---- API behaviour against the mock ------------------------------------------

#[tokio::test]
async fn namespace_already_existing_at_create_is_success() {
    let (client, log) = mock_client(|method, _, _| match method {
        "GET" => (404, status(404, "NotFound")),
        _ => (409, status(409, "AlreadyExists")),
    });
    ensure_namespace(&client, "canary-test-race1")
        .await
        .unwrap();
    let posts = requests(&log, "POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/api/v1/namespaces");
    assert!(
        posts[0].body.contains("\"canary-test-race1\""),
        "{}",
        posts[0].body
    );
}

#[tokio::test]
async fn existing_namespace_is_not_created_again() {
    let (client, log) = mock_client(|_, _, _| {
        (
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dark-tower"}}),
        )
    });
    ensure_namespace(&client, "dark-tower").await.unwrap();
    assert!(requests(&log, "POST").is_empty());
}

#[tokio::test]
async fn other_namespace_errors_are_reported() {
    let (client, _) = mock_client(|method, _, _| match method {
        "GET" => (404, status(404, "NotFound")),
        _ => (403, status(403, "Forbidden")),
    });
    let err = ensure_namespace(&client, "canary-test-x")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("creating namespace canary-test-x"),
        "{err}"
    );
}

#[tokio::test]
async fn protected_namespaces_are_never_deleted() {
    let (client, log) = mock_client(|_, _, _| (200, json!({})));
    for ns in ["dark-tower", "kube-system", "canary-test-"] {
        let err = delete_test_namespace(&client, ns).await.unwrap_err();
        assert!(
            matches!(err, CanaryError::ProtectedNamespace(ref n) if n == ns),
            "{err}"
        );
    }
    assert!(
        log.lock().unwrap().is_empty(),
        "no API call may be made for a protected namespace"
    );
}

#[tokio::test]
async fn test_namespace_delete_is_idempotent() {
    let (client, log) = mock_client(|_, _, _| (404, status(404, "NotFound")));
    delete_test_namespace(&client, "canary-test-gone1")
        .await
        .unwrap();
    let deletes = requests(&log, "DELETE");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, "/api/v1/namespaces/canary-test-gone1");
}

fn pod_lifecycle(phases: &'static [&'static str]) -> impl Fn(&str, &str, usize) -> (u16, Value) {
    move |method, path, n| {
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        match method {
            "POST" => (
                201,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "created"}}),
            ),
            "GET" => (200, pod_json(&name, phases[(n - 1).min(phases.len() - 1)])),
            "DELETE" => (200, pod_json(&name, "Running")),
            _ => (405, status(405, "MethodNotAllowed")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_waits_for_running_and_cleanup_force_deletes_once() {
    let (client, log) = mock_client(pod_lifecycle(&["Pending", "Pending", "Running"]));
    let canary = CanaryPod::deploy_with(
        &client,
        None,
        "canary-test-aa",
        "unit",
        &["sleep", "3600"],
        Duration::from_secs(5),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    assert!(canary.name().starts_with("canary-"));
    assert_eq!(canary.namespace(), "canary-test-aa");
    assert_eq!(canary.ip(), Some("192.168.1.7"));
    assert_eq!(requests(&log, "GET").len(), 3);

    let posts = requests(&log, "POST");
    assert_eq!(posts[0].path, "/api/v1/namespaces/canary-test-aa/pods");
    let created: Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(created["metadata"]["labels"]["app"], "canary");
    assert_eq!(created["spec"]["containers"][0]["image"], CANARY_IMAGE);

    canary.cleanup().await.unwrap();
    canary.cleanup().await.unwrap();
    drop(canary);
    let deletes = requests(&log, "DELETE");
    assert_eq!(
        deletes.len(),
        1,
        "cleanup, cleanup again and Drop must delete exactly once"
    );
    let body: Value = serde_json::from_str(&deletes[0].body).unwrap();
    assert_eq!(body["gracePeriodSeconds"], 0, "force delete: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_deletes_a_canary_that_was_not_cleaned_up() {
    let (client, log) = mock_client(pod_lifecycle(&["Running"]));
    let canary = CanaryPod::deploy_with(
        &client,
        None,
        "canary-test-aa",
        "unit",
        &["sleep", "1"],
        Duration::from_secs(5),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    let name = canary.name().to_owned();
    drop(canary);
    let deletes = requests(&log, "DELETE");
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0].path,
        format!("/api/v1/namespaces/canary-test-aa/pods/{name}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pod_fails_fast_and_is_still_deleted() {
    let (client, log) = mock_client(pod_lifecycle(&["Pending", "Failed"]));
    let started = Instant::now();
    let err = CanaryPod::deploy_with(
        &client,
        None,
        "canary-test-aa",
        "unit",
        &["false"],
        Duration::from_secs(30),
        Duration::from_millis(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CanaryError::PodFailed { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "must not wait for the timeout"
    );
    assert_eq!(
        requests(&log, "DELETE").len(),
        1,
        "the pod was created, so it must be removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_stays_pending_times_out_with_its_last_phase() {
    let (client, log) = mock_client(pod_lifecycle(&["Pending"]));
    let err = CanaryPod::deploy_with(
        &client,
        None,
        "canary-test-aa",
        "unit",
        &["sleep", "1"],
        Duration::from_millis(60),
        Duration::from_millis(10),
    )
    .await
    .unwrap_err();
    match err {
        CanaryError::Timeout { phase, .. } => assert_eq!(phase, "Pending"),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(requests(&log, "DELETE").len(), 1);
}

#[tokio::test]
async fn can_reach_refuses_bad_urls_before_calling_the_api() {
    let (client, log) = mock_client(|_, _, _| (500, status(500, "InternalError")));
    let pods: Api<Pod> = Api::namespaced(client, "canary-test-aa");
    let canary = CanaryPod {
        name: "canary-00000000".into(),
        namespace: "canary-test-aa".into(),
        pods,
        drop_config: None,
        ip: None,
        // Already cleaned up: dropping it must not call the API either.
        cleaned_up: AtomicBool::new(true),
    };
    let err = canary.can_reach("not a url").await.unwrap_err();
    assert!(matches!(err, CanaryError::BadUrl(_)), "{err}");
    drop(canary);
    assert!(log.lock().unwrap().is_empty());
}
