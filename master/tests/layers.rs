//! The master's layers import only downwards (ARCHITECTURE.md, "Layers of
//! the master"): each top-level module may use only the modules listed
//! before it here, so no module cycle can cross the kernel, the handle,
//! the service layer, the leader and the edge.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom first: a module may import only modules before it.
const ORDER: &[&str] = &[
    "error",
    "config",
    "metrics",
    "kernel",
    "transport",
    "host_checks",
    "sessions",
    "usage",
    "alerts",
    "master",
    "service",
    "reconcile",
    "leader",
    "api",
    "startup",
    "harness",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read master/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name modules
/// without depending on them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `crate::<name>` names in `text`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(module_of(&name).to_string());
    }
    out
}

/// The module a name at the crate root comes from: `lib.rs` re-exports
/// a few items (`crate::Master` is `crate::master::Master`).
fn module_of(name: &str) -> &str {
    match name {
        "Master" => "master",
        "Error" | "Result" => "error",
        "bind" | "run" | "run_with" | "run_mounted" | "start" => "startup",
        n if n.chars().next().is_some_and(|c| c.is_ascii_uppercase()) || n == "parse_peers" => {
            "config"
        }
        n => n,
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path")
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let Some(rank) = ORDER.iter().position(|m| *m == top) else {
            wrong.push(format!("{}: module '{top}' is not in ORDER", rel.display()));
            continue;
        };
        seen.insert(top.clone());
        let text = std::fs::read_to_string(file).expect("read a source file");
        for used in uses(&code(&text)) {
            if used == top {
                continue;
            }
            match ORDER.iter().position(|m| *m == used) {
                Some(r) if r < rank => {}
                Some(_) => wrong.push(format!(
                    "{}: '{top}' imports '{used}', a layer at or above it",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: '{top}' imports 'crate::{used}', not in ORDER",
                    rel.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The check read the real tree, not an empty one.
    assert!(seen.contains("kernel") && seen.contains("api") && seen.contains("reconcile"));
}
