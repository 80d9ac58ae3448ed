//! Generated repositories for benchmarks: `n` services, seven files each plus
//! a kustomization, about one in ten with a planted defect.

#![allow(clippy::cast_precision_loss)] // MB figures for a report

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

fn labels(name: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}app.kubernetes.io/name: {name}\n{pad}app.kubernetes.io/instance: {name}-production\n{pad}app.kubernetes.io/version: \"1.4.2\"\n{pad}app.kubernetes.io/component: backend\n{pad}app.kubernetes.io/part-of: dark-tower\n{pad}app.kubernetes.io/managed-by: flux\n"
    )
}

/// Write one service's files into `dir`. `defect` picks one planted mistake.
fn service(dir: &Path, i: usize, defect: Option<usize>) -> Result<()> {
    let name = format!("svc-{i:05}");
    std::fs::create_dir_all(dir)?;
    let l4 = labels(&name, 4);
    let l8 = labels(&name, 8);
    let tag = if defect == Some(0) { "latest" } else { "1.4.2" };
    let run_as = if defect == Some(1) { "0" } else { "65532" };
    let probe_port = if defect == Some(2) { "htp" } else { "http" };
    let cm_key = if defect == Some(3) { "REGON" } else { "REGION" };
    let mut deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n{l4}spec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n      app.kubernetes.io/instance: {name}-production\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n  template:\n    metadata:\n      labels:\n{l8}    spec:\n      automountServiceAccountToken: false\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: {run_as}\n        seccompProfile:\n          type: RuntimeDefault\n      containers:\n        - name: {name}\n          image: ghcr.io/dark-tower/dark-tower/{name}:{tag}\n          ports:\n            - name: http\n              containerPort: 8080\n            - name: grpc\n              containerPort: 50051\n          env:\n            - name: REGION\n              valueFrom:\n                configMapKeyRef:\n                  name: {name}-config\n                  key: {cm_key}\n            - name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n                  name: {name}-secrets\n                  key: DATABASE_URL\n          livenessProbe:\n            httpGet:\n              path: /health\n              port: http\n            initialDelaySeconds: 10\n            periodSeconds: 10\n            timeoutSeconds: 5\n            failureThreshold: 3\n          readinessProbe:\n            httpGet:\n              path: /ready\n              port: {probe_port}\n            initialDelaySeconds: 5\n            periodSeconds: 5\n            timeoutSeconds: 3\n            failureThreshold: 3\n          resources:\n            requests:\n              cpu: 500m\n              memory: 1Gi\n            limits:\n              cpu: 2000m\n              memory: 2Gi\n          securityContext:\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n            capabilities:\n              drop: [ALL]\n          volumeMounts:\n            - name: tmp\n              mountPath: /tmp\n      volumes:\n        - name: tmp\n          emptyDir: {{}}\n"
    );
    if defect == Some(4) {
        deployment = deployment.replace("      maxUnavailable: 0\n", "      maxUnavailable: 1\n");
    }
    let svc_selector = if defect == Some(5) {
        format!("{name}-typo")
    } else {
        name.clone()
    };
    let files = [
        ("deployment.yaml", deployment),
        ("service.yaml", format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  labels:\n{l4}spec:\n  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: {svc_selector}\n    app.kubernetes.io/instance: {name}-production\n  ports:\n    - name: http\n      port: 8080\n      targetPort: http\n    - name: grpc\n      port: 50051\n      targetPort: grpc\n")),
        ("configmap.yaml", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-config\n  labels:\n{l4}data:\n  REGION: eu-west-1\n  BIND_ADDRESS: 0.0.0.0:8080\n  RUST_LOG: info\n")),
        ("secret.yaml", format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-secrets\n  labels:\n{l4}type: Opaque\nstringData:\n  DATABASE_URL: \"\"\n")),
        ("network-policy.yaml", format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  labels:\n{l4}spec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  policyTypes: [Ingress, Egress]\n  ingress:\n    - from:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n      ports:\n        - port: 8080\n          protocol: TCP\n  egress:\n    - to:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: kube-system\n      ports:\n        - port: 53\n          protocol: UDP\n        - port: 53\n          protocol: TCP\n")),
        ("service-monitor.yaml", format!("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: {name}\n  labels:\n{l4}spec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  endpoints:\n    - port: {}\n      path: /metrics\n      interval: 30s\n", if defect == Some(6) { "metrics" } else { "http" })),
        ("pdb.yaml", format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\n  labels:\n{l4}spec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n      app.kubernetes.io/instance: {name}-production\n")),
        ("kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - service.yaml\n  - configmap.yaml\n  - secret.yaml\n  - network-policy.yaml\n  - service-monitor.yaml\n  - pdb.yaml\n".to_string()),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("writing {}", dir.join(file).display()))?;
    }
    Ok(())
}

/// Generate a corpus of `n` services under `out/base/`; returns bytes written.
pub fn generate(out: &Path, n: usize) -> Result<u64> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    // Services shaped like this platform's: its conventions are checked too.
    std::fs::write(
        out.join("dtlint.toml"),
        "# generated benchmark corpus\nprofile = \"dark-tower\"\n",
    )?;
    for i in 0..n {
        // Defects 0..=6 on about one service in ten, spread over the kinds.
        let defect = (i % 10 == 3).then_some((i / 10) % 7);
        service(&out.join("base").join(format!("svc-{i:05}")), i, defect)?;
    }
    let mut bytes = 0;
    for entry in walk(out)? {
        bytes += std::fs::metadata(&entry)?.len();
    }
    Ok(bytes)
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A one-line description of the corpus, for reports.
pub fn describe(n: usize, bytes: u64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{n} services, {} files, {:.1} MB",
        n * 8,
        bytes as f64 / 1e6
    );
    s
}
