use crate::contract::Contract;
use crate::diag::{Finding, Label};
use crate::rules::contract::targets;
use crate::rules::database::{PgUrl, Resolved, canonical_host, resolve_env, scopes};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Finds two services that each ship database migrations (a
    /// `migrations/` directory next to the service's
    /// `config-contract.toml`) whose `DATABASE_URL` resolves, in the same
    /// environment, to the same server and database. Each service's
    /// workload is found through its config contract (the workload whose
    /// `app.kubernetes.io/name` is the contract's `service`), and its
    /// `DATABASE_URL` is resolved as the kubelet would: a literal `value`
    /// with `$(VAR)` references to earlier variables expanded, or the
    /// ConfigMap or Secret key it reads, with the environment's patches
    /// applied and SOPS values decrypted when the run has an age key.
    /// Parts that cannot be resolved (a password from an encrypted Secret
    /// without a key) do not matter as long as the host, port and database
    /// name are literal; Service host names are compared in one form
    /// (`postgres-rw` = `postgres-rw.<namespace>.svc` =
    /// `postgres-rw.<namespace>.svc.cluster.local`). The second service's
    /// URL is reported, with the first's as a related location.
    ///
    /// ## Why is this bad?
    /// Migration tools keep their history in one table per database
    /// (sqlx's `_sqlx_migrations`): two services migrating the same
    /// database overwrite each other's history, and the second to start
    /// refuses to run ("migration was previously applied but is missing")
    /// or, worse, skips a migration whose version the other service
    /// already used. Their tables also share one namespace and one owner,
    /// so neither service can be moved, restored or granted access alone.
    ///
    /// ## Example
    /// ```yaml
    /// # ac-service and global-controller, both with migrations/:
    /// DATABASE_URL: postgres://dark_tower:…@postgres-rw.dark-tower.svc:5432/dark_tower?…
    /// ```
    ///
    /// ## Use instead
    /// One database, owned by its own role, per service that migrates
    /// (CloudNativePG `Database` objects), each service's URL pointing at
    /// its own:
    /// ```yaml
    /// - name: DATABASE_URL   # global-controller
    ///   value: postgres://gc:$(DB_PASSWORD)@postgres-rw.dark-tower.svc:5432/gc?sslmode=verify-full&sslrootcert=/etc/dark-tower/postgres-ca/ca.crt
    /// ```
    ///
    /// ## References
    /// - sqlx migrations: <https://docs.rs/sqlx/latest/sqlx/migrate/struct.Migrator.html>
    /// - CloudNativePG Database objects: <https://cloudnative-pg.io/documentation/current/declarative_database_management/>
    pub struct SharedMigratedDatabase {
        id: "shared-migrated-database",
        category: "database",
        severity: Error,
        summary: "two services that run migrations connect to the same database",
        needs: Repository,
    }
}

/// The variable services read their connection URL from.
const DATABASE_URL: &str = "DATABASE_URL";

/// One service's resolved database in one environment.
struct Uses<'c> {
    contract: &'c Contract,
    /// (host, port, database), host in canonical form.
    target: (String, String, String),
    at: Resolved,
}

impl Rule for SharedMigratedDatabase {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let migrating: Vec<&Contract> = idx
            .ws
            .contracts
            .iter()
            .filter(|c| c.migrations.is_some())
            .collect();
        if migrating.len() < 2 {
            return;
        }
        let mut merged = Merged::default();
        for scope in scopes(ctx) {
            let mut seen: Vec<Uses<'_>> = Vec::new();
            for &contract in &migrating {
                for (w, c) in targets(idx, contract).filter(|(w, _)| scope.includes(w)) {
                    let Some(at) = resolve_env(ctx, &scope, w, &c, DATABASE_URL) else {
                        continue;
                    };
                    let Some((host, port, db)) = PgUrl::parse(&at.text).and_then(|u| u.target())
                    else {
                        continue;
                    };
                    let target = (canonical_host(&host, w.namespace), port, db);
                    if let Some(first) = seen
                        .iter()
                        .find(|u| u.target == target && u.contract.service != contract.service)
                    {
                        let (host, port, db) = &target;
                        merged.add(
                            Finding::new(
                                Self::META.id,
                                Label::new(
                                    at.file,
                                    at.span,
                                    format!("{}'s {DATABASE_URL}", contract.service),
                                ),
                                format!(
                                    "{} and {} both run migrations in database `{db}` on `{host}:{port}`",
                                    first.contract.service, contract.service
                                ),
                            )
                            .with(Label::new(
                                first.at.file,
                                first.at.span,
                                format!("{}'s {DATABASE_URL}, same database", first.contract.service),
                            ))
                            .help(format!(
                                "Give {} its own database (a CloudNativePG `Database` owned by its own role) and point its {DATABASE_URL} at it; {} and {} keep their migrations in {} and {}.",
                                contract.service,
                                first.contract.service,
                                contract.service,
                                first.contract.migrations.as_deref().unwrap_or("migrations/"),
                                contract.migrations.as_deref().unwrap_or("migrations/"),
                            )),
                            scope.env,
                        );
                    } else if !seen
                        .iter()
                        .any(|u| u.target == target && u.contract.service == contract.service)
                    {
                        seen.push(Uses {
                            contract,
                            target,
                            at,
                        });
                    }
                }
            }
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn workload(svc: &str, env: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {svc}}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: {svc}}}\n    spec:\n      containers:\n        - name: {svc}\n          env:\n{env}"
        )
    }

    fn run(files: &[(&str, String)], migrations: &[&str]) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        for svc in ["a", "b", "c"] {
            let d = dir.path().join("services").join(svc);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("config-contract.toml"),
                format!("service = \"{svc}\"\n"),
            )
            .unwrap();
            if migrations.contains(&svc) {
                std::fs::create_dir_all(d.join("migrations")).unwrap();
            }
        }
        crate::rules::testing::check_dir(&SharedMigratedDatabase, dir.path(), &Config::dark_tower())
    }

    #[test]
    fn two_migrating_services_on_one_database_are_found() {
        let files = [
            (
                "a.yaml",
                workload("a", "            - {name: DATABASE_URL, valueFrom: {secretKeyRef: {name: a, key: url}}}\n"),
            ),
            (
                "a-secret.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData:\n  url: postgres://app:pw@postgres-rw.ns.svc.cluster.local/app?sslmode=require\n".to_string(),
            ),
            (
                "b.yaml",
                workload(
                    "b",
                    "            - {name: DB_HOST, value: postgres-rw.ns.svc}\n            - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: missing, key: pw}}}\n            - {name: DATABASE_URL, value: 'postgres://app:$(DB_PASSWORD)@$(DB_HOST):5432/app'}\n",
                ),
            ),
            (
                "c.yaml",
                workload("c", "            - {name: DATABASE_URL, value: 'postgres://app@postgres-rw.ns.svc/app'}\n"),
            ),
        ];
        let out = run(&files, &["a", "b"]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "a and b both run migrations in database `app` on `postgres-rw.ns.svc:5432`"
        );
        assert_eq!(out[0].primary.message, "b's DATABASE_URL");
        assert_eq!(
            out[0].secondary[0].message,
            "a's DATABASE_URL, same database"
        );
        // c has no migrations: it may share a database.
        assert!(run(&files, &["a"]).is_empty());
    }

    #[test]
    fn different_databases_or_unknown_hosts_pass() {
        let files = [
            (
                "a.yaml",
                workload(
                    "a",
                    "            - {name: DATABASE_URL, value: 'postgres://a@db/a'}\n",
                ),
            ),
            (
                "b.yaml",
                workload(
                    "b",
                    "            - {name: DATABASE_URL, value: 'postgres://b@db/b'}\n",
                ),
            ),
            (
                "c.yaml",
                workload(
                    "c",
                    "            - {name: DATABASE_URL, value: 'postgres://a@$(HOST)/a'}\n",
                ),
            ),
        ];
        assert!(run(&files, &["a", "b", "c"]).is_empty());
    }
}
