//! `modcheck [--graph] [WORKSPACE]`: reports cycles between the modules (files)
//! of each crate of a Cargo workspace (`crates/*/src` and `tests/src`).
//!
//! Exit code 0 when every crate is acyclic, 1 when a cycle is found, 2 on error.

mod graph;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: modcheck [--graph] [WORKSPACE_ROOT]";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("modcheck: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every crate is free of cycles.
fn run() -> Result<bool> {
    let mut print_graph = false;
    let mut root = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--graph" => print_graph = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag}\n{USAGE}"),
            _ if root.is_some() => bail!("more than one workspace root given\n{USAGE}"),
            path => root = Some(PathBuf::from(path)),
        }
    }
    let root = root.unwrap_or_else(|| PathBuf::from("."));
    let started = Instant::now();
    let srcs = crate_sources(&root)?;
    if srcs.is_empty() {
        bail!("no crates/*/src or tests/src under {}", root.display());
    }
    let mut acyclic = true;
    for src in &srcs {
        let graph = graph::analyze(src)?;
        let cycles = graph::cycles(&graph);
        let shown = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
        let local = |p: &Path| p.strip_prefix(src).unwrap_or(p).display().to_string();
        let roots: Vec<String> = graph.roots.iter().map(|r| local(r)).collect();
        println!(
            "{}: roots {}, {} files, {} edges, {} cycle(s)",
            shown(src),
            if roots.is_empty() {
                "none".to_owned()
            } else {
                roots.join(" + ")
            },
            graph.files.len(),
            graph.edges.len(),
            cycles.len()
        );
        if print_graph {
            for ((from, to), names) in &graph.edges {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                println!("  {} -> {}  [{}]", local(from), local(to), names.join(", "));
            }
        }
        for (n, scc) in cycles.iter().enumerate() {
            acyclic = false;
            println!("  CYCLE {} ({} files):", n + 1, scc.len());
            for file in scc {
                println!("    {}", shown(file));
            }
            let example: Vec<String> = graph::shortest_cycle(&graph, scc)
                .iter()
                .map(|p| local(p))
                .collect();
            println!("    e.g. {}", example.join(" -> "));
            println!("    edges inside it:");
            for ((from, to), names) in graph
                .edges
                .iter()
                .filter(|((f, t), _)| scc.contains(f) && scc.contains(t))
            {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                println!(
                    "      {} -> {}  [{}]",
                    local(from),
                    local(to),
                    names.join(", ")
                );
            }
        }
    }
    let verdict = if acyclic {
        "no module cycles"
    } else {
        "module cycles found"
    };
    println!(
        "{verdict} in {} crate(s), {:.2?}",
        srcs.len(),
        started.elapsed()
    );
    Ok(acyclic)
}

/// `crates/*/src` (sorted) and `tests/src`, those that exist.
fn crate_sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut srcs = Vec::new();
    let crates = root.join("crates");
    if crates.is_dir() {
        let entries =
            std::fs::read_dir(&crates).with_context(|| format!("listing {}", crates.display()))?;
        for entry in entries {
            let src = entry
                .with_context(|| format!("listing {}", crates.display()))?
                .path()
                .join("src");
            if src.is_dir() {
                srcs.push(src);
            }
        }
    }
    srcs.sort();
    let tests = root.join("tests").join("src");
    if tests.is_dir() {
        srcs.push(tests);
    }
    Ok(srcs)
}
