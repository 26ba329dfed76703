//! `kea`: KEA's command line.
//!
//! ```text
//! kea openapi check FILE            compile FILE (and the files it refers to); report what is wrong
//! kea openapi bundle FILE [-o OUT]  write the validate plugin's bundle (JSON) to OUT or stdout
//! kea crd                           print KEA's CustomResourceDefinitions (manifests/crds.yaml)
//! kea model package FILE -o DIR     a Model's serving packages (class, settings, lock, Dockerfile)
//! kea model openapi FILE [--source DIR]  a Model's OpenAPI document
//! kea model signature FILE.py [--class NAME]  the signature a serving class declares (YAML; --json: as build Jobs report it)
//! kea render FILE... [-o OUT]       GatewayBinding + ApiDefinitions (YAML) → a complete Envoy config
//! kea operator                      run the operator against the cluster of the kubeconfig
//! ```
//! Logs go to stderr; `RUST_LOG=debug` shows each step.

use kea_operator::openapi;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "kea",
    version,
    about = "KEA: a self-documenting API gateway for Envoy and Istio"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// OpenAPI 3.0 documents and validate-plugin bundles.
    Openapi {
        #[command(subcommand)]
        command: OpenApiCommand,
    },
    /// Print the CustomResourceDefinitions of KEA's resources (YAML).
    Crd,
    /// ML models: serving packages and OpenAPI documents from a Model resource.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Render a GatewayBinding and its ApiDefinitions (YAML files) into a complete Envoy
    /// configuration: listener, weighted clusters, the four plugins with their configurations.
    Render(kea_operator::offline::RenderArgs),
    /// Run the operator: watch KEA's resources and write WasmPlugins, routes and bundles.
    Operator(kea_operator::controller::Settings),
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Write each version's serving package — the generated serving class, MLServer's settings,
    /// the runtime's locked requirements and a Dockerfile — and the model's OpenAPI document.
    Package(kea_operator::package::PackageArgs),
    /// Print the model's OpenAPI document (JSON), as the gateway enforces it.
    Openapi(kea_operator::package::OpenApiArgs),
    /// Read a custom model's serving class (Python, statically: never run) and print the
    /// signature it declares, as YAML for the Model resource; or `FILE:LINE: reason` and exit 1.
    /// With `--json`, the report the operator's build Jobs write (exit 0 either way).
    Signature(kea_operator::package::SignatureArgs),
}

#[derive(Debug, Subcommand)]
enum OpenApiCommand {
    /// Compile a document and report whether the validate plugin can enforce it.
    Check {
        /// OpenAPI 3.0 document, JSON or YAML; `$ref`s to other files are read relative to it.
        file: PathBuf,
    },
    /// Compile a document into a bundle (JSON with its sha256) for the validate plugin.
    Bundle {
        file: PathBuf,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Entry and exit of every instrumented step, when its level is enabled (RUST_LOG=debug).
        .with_span_events(
            tracing_subscriber::fmt::format::FmtSpan::NEW | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error.downcast_ref::<kea_operator::render::model::source::SourceProblem>() {
                // `FILE:LINE: reason`, as compilers report, so editors jump to it.
                Some(problem) => eprintln!("{problem}"),
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// What the document says that the plugin will not check: on stderr, the exit code stays 0.
fn print_warnings(file: &std::path::Path, bundle: &kea_schema::Bundle) {
    for warning in openapi::warnings(file, bundle) {
        eprintln!("warning: {warning}");
    }
}

#[tracing::instrument(level = "debug", err(level = "debug", Display))]
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Openapi { command } => match command {
            OpenApiCommand::Check { file } => {
                let bundle = openapi::compile(&file)?;
                print_warnings(&file, &bundle);
                println!("{}: ok — {}", file.display(), openapi::summary(&bundle));
            }
            OpenApiCommand::Bundle { file, output } => {
                let bundle = openapi::compile(&file)?;
                print_warnings(&file, &bundle);
                let json = bundle.to_json();
                match output {
                    Some(path) => {
                        std::fs::write(&path, &json)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("{}: {}", path.display(), openapi::summary(&bundle));
                    }
                    None => {
                        use std::io::Write;
                        std::io::stdout().write_all(&json).context("writing the bundle")?;
                    }
                }
            }
        },
        Command::Crd => {
            print!("{}", kea_operator::crd::crds_yaml()?);
        }
        Command::Model { command } => match command {
            ModelCommand::Package(args) => {
                for path in kea_operator::package::package(&args)? {
                    println!("{}", path.display());
                }
            }
            ModelCommand::Openapi(args) => print!("{}", kea_operator::package::document(&args)?),
            ModelCommand::Signature(args) => print!("{}", kea_operator::package::signature(&args)?),
        },
        Command::Render(args) => kea_operator::offline::run(&args)?,
        Command::Operator(settings) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(kea_operator::controller::run(settings))?;
        }
    }
    Ok(())
}
