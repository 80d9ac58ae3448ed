//! Live: the network policies admit exactly the edges of the SPEC matrix, as
//! seen by a `CanaryPod` in a throwaway `canary-test-*` namespace (which has
//! no policies of its own, so only the targets' ingress rules decide).
//! Skipped (with a printed reason) unless a cluster is configured and answers.

// Helpers outside #[test] fns panic on purpose: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use env_tests::DARK_TOWER_NAMESPACE;
use env_tests::canary::{self, CANARY_HTTP_PORT, CanaryPod};
use env_tests::cluster::{Cluster, cluster_or_skip};

fn svc(name: &str, port: u16, path: &str) -> String {
    format!("http://{name}.{DARK_TOWER_NAMESPACE}.svc.cluster.local:{port}{path}")
}

/// Runs `body` with a fresh test namespace that is removed afterwards, also
/// when an assertion fails.
async fn with_test_namespace<F, Fut>(cluster: &Cluster, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let ns = canary::test_namespace_name();
    canary::ensure_namespace(&cluster.client, &ns)
        .await
        .unwrap();
    let outcome = tokio::spawn(body(ns.clone())).await;
    canary::delete_test_namespace(&cluster.client, &ns)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_pods_reach_gc_but_not_the_internal_services() {
    let Some(cluster) = cluster_or_skip("outside_pods_reach_gc_but_not_the_internal_services")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let c = cluster.clone();
    with_test_namespace(&cluster, move |ns| async move {
        let test = "network-policy";
        let server = CanaryPod::deploy_http_server(&c.client, Some(c.config.clone()), &ns, test)
            .await
            .unwrap();
        let probe = CanaryPod::deploy(&c.client, Some(c.config.clone()), &ns, test)
            .await
            .unwrap();

        // Positive control: the probe works at all (DNS-free, pod to pod).
        let ip = server.ip().expect("server canary has no IP");
        let control = format!("http://{ip}:{CANARY_HTTP_PORT}/");
        assert!(
            probe.can_reach(&control).await.unwrap(),
            "canary cannot reach another canary at {control}: the probe is broken, not the policies"
        );

        // "outside" may reach GC's HTTP API.
        let gc = svc("global-controller", 8080, "/health");
        assert!(
            probe.can_reach(&gc).await.unwrap(),
            "{gc} must be reachable from outside the namespace"
        );

        // Nothing else is open to outside pods.
        for (url, why) in [
            (
                svc("ac-service", 8082, "/health"),
                "AC accepts only GC, MC and MH",
            ),
            (
                svc("meeting-controller", 8081, "/health"),
                "MC health is for Prometheus only",
            ),
            (
                svc("media-handler", 8083, "/health"),
                "MH health is for Prometheus only",
            ),
            (
                svc("global-controller", 50051, "/"),
                "GC gRPC accepts only MC and MH",
            ),
        ] {
            assert!(
                !probe.can_reach(&url).await.unwrap(),
                "{url} is reachable from a canary but must not be: {why}"
            );
        }

        probe.cleanup().await.unwrap();
        server.cleanup().await.unwrap();
    })
    .await;
}
