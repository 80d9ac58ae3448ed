//! The `dtlint` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use dtlint::config::{self, Config};
use dtlint::diag::Severity;
use dtlint::engine::{self, Selection};
use dtlint::report::{self, Format};
use dtlint::rules;

/// The command line's allocator (why: the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dtlint",
    version,
    about = "Lint a Kubernetes/Kustomize/Flux/SOPS repository, with every finding at its file:line:column.",
    after_help = "Exit status: 0 clean, 1 error-level findings, 2 usage, config or internal failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Lint files or directories (default: the repository around the current directory).
    Check(CheckArgs),
    /// Record today's findings (`-o`, default dtlint-baseline.json) for `check --baseline`.
    Baseline(CheckArgs),
    /// A Language Server on standard input and output: diagnostics, quick fixes, hovers.
    Lsp,
    /// Apply the safe fixes of the findings in place (`--unsafe-fixes` for the rest, `--diff` to only show them).
    Fix(FixArgs),
    /// List every rule with its default severity.
    Rules {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The schemas objects are validated against: `dtlint schemas list`.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Show a rule's documentation.
    Explain {
        /// Rule id, e.g. `latest-tag`.
        rule: String,
    },
    /// Encrypt, decrypt and re-key SOPS files (age), without the Go `sops` binary.
    #[command(subcommand)]
    Sops(SopsCommand),
    /// Print the traffic the NetworkPolicies allow: rows from, columns to, cells ports.
    Graph(GraphArgs),
    /// What a change does to each cluster: objects added, removed and changed per environment against a base revision, and the change rules.
    Diff {
        /// The git revision to compare the working tree with.
        #[arg(long)]
        base: String,
        #[arg(long, value_enum, default_value_t = dtlint::diff::Format::Human)]
        format: dtlint::diff::Format,
        /// Compare the files as written, without rendering overlays.
        #[arg(long)]
        no_render: bool,
    },
    /// Write a commented dtlint.toml with the environments found (clusters/*, else the directories a Flux sync applies).
    Init {
        /// Replace an existing dtlint.toml.
        #[arg(long)]
        force: bool,
        /// Print the configuration instead of writing it.
        #[arg(long)]
        stdout: bool,
    },
}

#[derive(clap::Args)]
struct FixArgs {
    #[command(flatten)]
    check: CheckArgs,
    /// Also apply the fixes that can change what a manifest means.
    #[arg(long)]
    unsafe_fixes: bool,
    /// Print the fixes as a unified diff instead of writing them.
    #[arg(long)]
    diff: bool,
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// The Kubernetes releases and the CRDs of the catalog, with their versions.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Text,
    Json,
    Dot,
}

#[derive(clap::Args)]
struct GraphArgs {
    /// Repository or directory to read (default: the repository around the current directory).
    path: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
    /// Only this environment's graph.
    #[arg(long)]
    env: Option<String>,
    /// Read source files only; do not build the environments' overlays.
    #[arg(long)]
    no_render: bool,
}

#[derive(Subcommand)]
enum SopsCommand {
    /// Encrypt a file to the recipients of the nearest `.sops.yaml` rule (or `--age`).
    Encrypt {
        file: PathBuf,
        /// age recipients instead of the rule's (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        age: Vec<String>,
        /// Replace the file instead of printing the encrypted text.
        #[arg(long, short = 'i')]
        in_place: bool,
    },
    /// Decrypt a file and verify its MAC (key from SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or SOPS_AGE_KEY_CMD).
    Decrypt {
        file: PathBuf,
        /// Write the plaintext here instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Re-encrypt the data key to the nearest `.sops.yaml` rule's recipients (or `--age`).
    Updatekeys {
        file: PathBuf,
        /// age recipients instead of the rule's (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        age: Vec<String>,
        /// Write without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(clap::Args)]
#[allow(clippy::struct_excessive_bools)] // one per command-line flag
struct CheckArgs {
    /// Files or directories to lint (`-`: one manifest from standard input).
    /// The repository around them is read as context; only findings inside
    /// them are reported.
    paths: Vec<PathBuf>,
    /// The name to show for standard input (with `-`).
    #[arg(long, value_name = "PATH")]
    stdin_filename: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Only report findings for this environment (and those outside any environment).
    #[arg(long)]
    env: Option<String>,
    /// Run only these rules (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip these rules (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Configuration file (default: dtlint.toml in the repository root).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Width of human output in columns; longer source lines are cut around
    /// the finding (default: the terminal's width, else $COLUMNS, else 120).
    #[arg(long, value_name = "COLUMNS")]
    width: Option<usize>,
    /// When to use colour in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Check source files only; do not build the environments' overlays.
    #[arg(long)]
    no_render: bool,
    /// Rebuild every overlay instead of reusing cached builds.
    #[arg(long)]
    no_cache: bool,
    /// Where overlay builds are cached (default: `DTLINT_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/dtlint`, else `~/.cache/dtlint`; never inside the
    /// repository unless you say so).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Report only the findings a change since this git revision introduces:
    /// in the files it changed, and not there at the revision already.
    #[arg(long, value_name = "REV")]
    changed_since: Option<String>,
    /// Report only findings not recorded in this baseline (`dtlint baseline`).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Print the number of findings per rule instead of the findings.
    #[arg(long)]
    statistics: bool,
    /// Also say what was not checked: CRD validation rules (CEL) not evaluated, and why.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(&args, Then::Report).unwrap_or_else(|e| fail(&e)),
        Command::Baseline(args) => check(&args, Then::Baseline).unwrap_or_else(|e| fail(&e)),
        Command::Fix(f) => {
            check(&f.check, Then::Fix(f.unsafe_fixes, f.diff)).unwrap_or_else(|e| fail(&e))
        }
        Command::Lsp => dtlint::lsp::serve().map_or_else(|e| fail(&e), |()| ExitCode::SUCCESS),
        Command::Rules { json } => {
            print!("{}", dtlint::docs::rule_listing(json));
            ExitCode::SUCCESS
        }
        Command::Explain { rule } => match dtlint::docs::explain(&rule) {
            Some(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            None => fail(&format!("unknown rule `{rule}`{}", suggest(&rule))),
        },
        Command::Schemas {
            command: SchemasCommand::List { json },
        } => match dtlint::schema::listing(json) {
            Ok(text) => {
                println!("{}", text.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Sops(cmd) => sops(&cmd),
        Command::Init { force, stdout } => {
            let root = std::env::current_dir().map(|cwd| find_root(&cwd));
            match root
                .map_err(|e| format!("cannot read the current directory: {e}"))
                .and_then(|root| dtlint::init::run(&root, force, stdout))
            {
                Ok(said) => {
                    eprint!("{said}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dtlint: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Diff {
            base,
            format,
            no_render,
        } => match std::env::current_dir() {
            Ok(cwd) => dtlint::diff::main(&find_root(&cwd), &base, format, !no_render),
            Err(e) => {
                eprintln!("dtlint: cannot read the current directory: {e}");
                ExitCode::from(2)
            }
        },
        Command::Graph(args) => match graph(&args) {
            Ok(code) => code,
            Err(msg) => {
                eprintln!("dtlint: {msg}");
                ExitCode::from(2)
            }
        },
    }
}

/// `dtlint graph`: the allowed-traffic matrix of every environment.
fn graph(args: &GraphArgs) -> Result<ExitCode, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let start = match &args.path {
        Some(p) => cwd
            .join(p)
            .canonicalize()
            .map_err(|_| format!("{}: no such file or directory", p.display()))?,
        None => cwd.clone(),
    };
    let root = find_root(&start);
    let mut config = match config::find(&start).filter(|p| p.starts_with(&root)) {
        Some(p) => load_config(&p, &cwd)?,
        None => Config::defaults(),
    };
    config.discover_environments(&root);
    let render = engine::RenderOptions {
        enabled: !args.no_render,
        cache_dir: Some(dtlint::render::cache_dir(None)),
        only_env: args.env.clone(),
    };
    let (ws, notes) =
        engine::prepare(&root, &[start], &config, &render).map_err(|e| e.to_string())?;
    if let Some(why) = &notes.render_skipped {
        eprintln!("dtlint: note: {why}");
    }
    let index = dtlint::model::Index::build_with(&ws, Some(&config));
    let mut matrices = dtlint::netpol::matrices(&index, &config);
    if let Some(env) = &args.env {
        matrices.retain(|m| m.env.as_deref().is_none_or(|e| e == env));
    }
    let text = match args.format {
        GraphFormat::Text => matrices
            .iter()
            .map(dtlint::netpol::Matrix::to_text)
            .collect::<Vec<_>>()
            .join("\n"),
        GraphFormat::Dot => matrices
            .iter()
            .map(dtlint::netpol::Matrix::to_dot)
            .collect::<String>(),
        GraphFormat::Json => {
            let v: Vec<serde_json::Value> = matrices
                .iter()
                .map(dtlint::netpol::Matrix::to_json)
                .collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn sops(cmd: &SopsCommand) -> ExitCode {
    use dtlint::sops_cli;
    let done = match cmd {
        SopsCommand::Encrypt {
            file,
            age,
            in_place,
        } => sops_cli::encrypt(file, age, *in_place),
        SopsCommand::Decrypt { file, output } => sops_cli::decrypt(file, output.as_deref()),
        SopsCommand::Updatekeys { file, age, yes } => sops_cli::update_keys(file, age, *yes),
    };
    match done {
        Ok(done) => {
            if let Some(bytes) = done.stdout {
                let _ = std::io::stdout().lock().write_all(&bytes);
            }
            if let Some(note) = done.note {
                eprintln!("dtlint: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dtlint: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn suggest(id: &str) -> String {
    match dtlint::suggest::closest(id, rules::known_ids()) {
        Some(known) => format!("; did you mean `{known}`?"),
        None => "; run `dtlint rules` for the list".into(),
    }
}

/// The repository around `start`, else `start` itself.
fn find_root(start: &Path) -> PathBuf {
    dtlint::workspace::find_repository(start).unwrap_or_else(|| start.to_path_buf())
}

/// Read and validate `dtlint.toml`; messages name it relative to `cwd`
/// when it is below it (`dtlint.toml:12:8: …`, as compilers do).
fn load_config(path: &Path, cwd: &Path) -> Result<Config, String> {
    let shown = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
    let config = Config::load_as(path, &shown).map_err(|e| e.to_string())?;
    let known: Vec<&str> = rules::known_ids().collect();
    config.check_rule_ids(&known).map_err(|e| e.to_string())?;
    Ok(config)
}

/// Width of human output when neither the terminal nor $COLUMNS says.
const DEFAULT_COLUMNS: usize = 120;

/// A failure of the tool itself: said once, exit 2.
fn fail(msg: &str) -> ExitCode {
    eprintln!("dtlint: {msg}");
    ExitCode::from(2)
}

/// What `check` does with the findings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Report,
    Baseline,
    /// `dtlint fix`: (`--unsafe-fixes`, `--diff`).
    Fix(bool, bool),
}

fn check(args: &CheckArgs, then: Then) -> Result<ExitCode, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let from_stdin = args.paths.len() == 1 && args.paths[0].as_os_str() == "-";
    if !from_stdin && args.paths.iter().any(|p| p.as_os_str() == "-") {
        return Err("`-` (standard input) cannot be combined with other paths".into());
    }
    // Kept alive until the end of the check: removed on drop.
    let mut stdin_dir = None;
    let paths: Vec<PathBuf> = if from_stdin {
        let (dir, file) = dtlint::source::stdin_to_file(Config::defaults().max_file_size)?;
        stdin_dir = Some(dir);
        vec![file]
    } else if args.paths.is_empty() {
        vec![find_root(&cwd)]
    } else {
        args.paths
            .iter()
            .map(|p| {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    cwd.join(p)
                };
                abs.canonicalize()
                    .map_err(|_| format!("{}: no such file or directory", p.display()))
            })
            .collect::<Result<_, _>>()?
    };
    let first = paths.first().cloned().unwrap_or_else(|| cwd.clone());
    let start = if first.is_dir() {
        first.clone()
    } else {
        first.parent().map_or(cwd.clone(), Path::to_path_buf)
    };
    let repository = if from_stdin {
        None
    } else {
        dtlint::workspace::find_repository(&start)
    };
    // The repository is the context of every view: its kustomizations list
    // the file, its policies select the pods, its overlays render the base.
    // Only findings inside the given paths are reported.
    let (root, load, view, no_repository) = match &repository {
        Some(repo) => {
            let mut load = vec![repo.clone()];
            load.extend(paths.iter().filter(|p| !p.starts_with(repo)).cloned());
            let view = if paths.iter().any(|p| p == repo) {
                Vec::new()
            } else {
                paths.clone()
            };
            let view = dtlint::diff::changed_view(repo, args.changed_since.as_deref(), view)?;
            (repo.clone(), load, view, None)
        }
        // A kustomize project outside any repository (a directory with its
        // own kustomization) is its own repository.
        None if paths.iter().any(|p| dtlint::workspace::is_project(p)) => {
            (start.clone(), paths.clone(), Vec::new(), None)
        }
        None => {
            let what = if from_stdin {
                "standard input is a lone manifest".to_string()
            } else {
                format!(
                    "no {} or .git in {} or above it",
                    config::FILE_NAME,
                    start.display()
                )
            };
            (start.clone(), paths.clone(), Vec::new(), Some(what))
        }
    };

    // Standard input is judged by the configuration of the repository
    // around the current directory (its profile, its severities).
    let found = if from_stdin {
        config::find(&cwd)
    } else {
        config::find(&start).filter(|p| p.starts_with(&root))
    };
    let mut config = match &args.config {
        Some(p) => load_config(p, &cwd)?,
        None => match found {
            Some(p) => load_config(&p, &cwd)?,
            None => Config::defaults(),
        },
    };
    let discovered = config.discover_environments(&root);
    // Its globs are about the repository, which standard input is not in.
    if !from_stdin {
        for warning in config.warnings(&root) {
            eprintln!("dtlint: {warning}");
        }
    }
    for id in args.only.iter().chain(&args.skip) {
        if rules::find_meta(id).is_none() {
            return Err(format!("unknown rule `{id}`{}", suggest(id)));
        }
    }
    if let Some(env) = &args.env
        && !config.environments.is_empty()
        && !config.environments.contains_key(env)
    {
        let known: Vec<&str> = config.environments_in_order().map(|(n, _)| n).collect();
        return Err(format!(
            "unknown environment `{env}`; dtlint.toml defines {}",
            known.join(", ")
        ));
    }

    let progress = std::io::stderr().is_terminal();
    if progress {
        eprint!("dtlint: reading {} …\r", root.display());
    }
    let render = engine::RenderOptions {
        enabled: !args.no_render,
        cache_dir: (!args.no_cache).then(|| dtlint::render::cache_dir(args.cache_dir.as_deref())),
        only_env: args.env.clone(),
    };
    let (mut ws, notes) =
        engine::prepare(&root, &load, &config, &render).map_err(|e| e.to_string())?;
    if from_stdin {
        let name = args.stdin_filename.as_deref().unwrap_or("<stdin>");
        ws.sources.rename(&paths[0], name);
    }
    if let Some(why) = &notes.render_skipped {
        eprintln!("dtlint: note: {why}");
    }
    if !discovered.is_empty() && !args.no_render {
        let clusters = match discovered.as_slice() {
            [one] => format!("clusters/{one}"),
            many => format!("clusters/{{{}}}", many.join(",")),
        };
        eprintln!(
            "dtlint: note: no environments declared in dtlint.toml: rendering what the Flux Kustomizations of {clusters} apply (`dtlint init` writes them down to adjust)"
        );
    }
    for root in &notes.sync_roots {
        eprintln!(
            "dtlint: note: no environments declared in dtlint.toml and no clusters/ directory: rendering what the Flux sync applies from {root}"
        );
    }
    for n in &notes.not_built {
        eprintln!(
            "dtlint: note: {}: {} not rendered: {}",
            n.env, n.what, n.why
        );
    }
    // Decrypt SOPS files before the check stage; rules never see the key.
    match dtlint::sops_index::identities_from_env().map_err(|e| e.to_string())? {
        Some(ids) => ws.sops.decrypt(&ids),
        None if ws.sops.any_encrypted() => {
            eprintln!("dtlint: note: {}", dtlint::sops_index::NO_KEY_NOTE);
        }
        None => {}
    }
    if progress {
        eprint!("dtlint: checking {} files …          \r", ws.sources.len());
    }
    let selection = Selection {
        only: args.only.clone(),
        skip: args.skip.clone(),
        view,
        no_repository,
    };
    let mut outcome = engine::run(&ws, &config, &selection);
    for note in outcome.notes() {
        eprintln!("dtlint: note: {note}");
    }
    for (why, n) in dtlint::schema::cel::skipped()
        .into_iter()
        .filter(|_| args.verbose)
    {
        eprintln!("dtlint: note: not checked ({n}×): {why}");
    }
    if let Some(env) = &args.env {
        outcome
            .findings
            .retain(|f| f.envs.is_empty() || f.envs.iter().any(|e| e == env));
    }
    if let Some(rev) = &args.changed_since {
        dtlint::diff::drop_older(&root, rev, &render, &mut outcome.findings, &ws.sources)?;
    }
    if let Some(path) = &args.baseline {
        let baseline = dtlint::engine::baseline::read(path)?;
        let gone = dtlint::engine::baseline::apply(&baseline, &mut outcome.findings, &ws.sources);
        for e in &gone {
            eprintln!("dtlint: note: no longer found (remove it from the baseline): {e}");
        }
    }
    if let Then::Fix(unsafe_fixes, diff) = then {
        let left = dtlint::fix::run(&ws, &outcome.findings, unsafe_fixes, diff)?;
        return Ok(if left {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    if then == Then::Baseline {
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("dtlint-baseline.json"));
        let n = dtlint::engine::baseline::record(&path, &outcome.findings, &ws.sources)?;
        eprintln!("dtlint: recorded {n} finding(s) in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if progress {
        eprint!("{:60}\r", "");
    }

    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            args.output.is_none()
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let columns = args.width.unwrap_or_else(|| {
        let tty = args.output.is_none() && std::io::stdout().is_terminal();
        let detected = tty
            .then(|| terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)))
            .flatten();
        detected
            .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or(DEFAULT_COLUMNS)
    });
    let text = if args.statistics {
        report::junit::statistics(&outcome)
    } else {
        report::render(args.format, &outcome, &ws.sources, color, columns)
    };
    if let Some(path) = &args.output {
        std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    } else {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`dtlint check | head`) is not an error worth a panic.
        let _ = out.write_all(text.as_bytes());
    }
    if args.format == Format::Human || args.output.is_some() {
        // Unreadable files are kept in `sources` (to point findings at);
        // rendered overlays are there too but are builds, not files. Only
        // the files in the view count.
        let files = ws
            .sources
            .iter()
            .filter(|(id, f)| ws.rendered_of(*id).is_none() && selection.in_view(&f.abs))
            .count();
        let builds = if notes.builds > 0 {
            format!(
                ", {} overlay build(s) ({} from cache)",
                notes.builds, notes.cached
            )
        } else {
            String::new()
        };
        eprintln!(
            "dtlint: {files} file(s) checked{builds}: {}",
            report::summary(&outcome)
        );
    }
    let failed = outcome.count(Severity::Error) > 0;
    // The process ends here: freeing every node of every parsed file one by
    // one would only delay the exit (a tenth of a second on a 10,000-service
    // repository), so the workspace is left to the operating system.
    std::mem::forget(ws);
    drop(stdin_dir);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
