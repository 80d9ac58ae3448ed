//! Graceful shutdown: on SIGTERM or Ctrl-C, readiness goes false first, the
//! service keeps serving for a drain period (so Kubernetes and the mesh stop
//! routing new traffic to it), then the servers stop accepting, finish the
//! requests in flight and the process exits.
//!
//! Servers take a [`ShutdownSignal`] (cloneable, one per server); tests fire
//! the matching [`ShutdownTrigger`] themselves instead of sending a signal.

use std::time::Duration;

use tokio::sync::watch;

use crate::ops::Readiness;

/// Fires the shutdown of every server holding a matching [`ShutdownSignal`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves once the shutdown has been triggered (or the trigger dropped).
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), ShutdownSignal(rx))
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl ShutdownSignal {
    /// Waits for the trigger. A dropped trigger also counts, so a server
    /// never outlives the code that owns its shutdown.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }
}

/// Waits for SIGTERM (Kubernetes) or Ctrl-C (a terminal).
pub async fn os_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// The whole sequence: wait for `until` (normally [`os_signal`]), mark the
/// service not ready, wait `drain`, then fire `trigger`.
pub async fn drain_then_fire(
    until: impl std::future::Future<Output = ()>,
    readiness: Readiness,
    drain: Duration,
    trigger: ShutdownTrigger,
) {
    until.await;
    readiness.set_shutting_down();
    tracing::info!(
        drain_seconds = drain.as_secs_f64(),
        "shutting down: not ready, draining"
    );
    tokio::time::sleep(drain).await;
    tracing::info!("drain finished, stopping servers");
    trigger.fire();
}

/// A service's shutdown in production: spawns [`drain_then_fire`] on
/// [`os_signal`] and returns the signal its servers wait for.
pub fn on_os_signal(readiness: Readiness, drain: Duration) -> ShutdownSignal {
    let (trigger, signal) = channel();
    tokio::spawn(drain_then_fire(os_signal(), readiness, drain, trigger));
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_goes_false_before_the_trigger_fires() {
        let readiness = Readiness::builder().build();
        let (trigger, signal) = channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(drain_then_fire(
            async {
                let _ = go_rx.await;
            },
            readiness.clone(),
            Duration::from_millis(200),
            trigger,
        ));
        assert!(!readiness.is_shutting_down());
        go_tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(readiness.is_shutting_down(), "not ready during the drain");
        assert!(!signal.is_fired(), "servers still running during the drain");
        tokio::time::timeout(Duration::from_secs(2), signal.clone().wait())
            .await
            .unwrap();
        assert!(signal.is_fired());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn dropped_trigger_releases_waiters() {
        let (trigger, signal) = channel();
        drop(trigger);
        tokio::time::timeout(Duration::from_secs(1), signal.wait())
            .await
            .unwrap();
    }
}
