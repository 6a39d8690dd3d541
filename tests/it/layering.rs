//! The one-way architecture, checked: every file in `src/` imports only its own layer and the
//! layers below it, no stage imports another stage, and the files import one another without a
//! cycle. std only: it reads the source as text, so it needs no build of the crate to explain a
//! failure.
//!
//! The layers, bottom to top, are in [`LAYERS`]; `docs/ARCHITECTURE.md` draws them. Known
//! violations are listed in [`ALLOWED`] as `from -> to` module edges. The list may only shrink: an
//! edge that no longer exists fails the test too, so a fixed violation is struck from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, bottom first, each with the top-level modules of `src/` it holds.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "hash", "http", "secret", "env", "retry", "account", "network", "progress", "metrics",
        ],
    ),
    ("store", &["store"]),
    ("records", &["manifest", "proposal", "records"]),
    ("models", &["magi"]),
    ("clients", &["subsquare", "github", "chain"]),
    ("pipeline", &["pipeline"]),
    ("stages", &["stages"]),
    ("verify", &["verify"]),
    (
        "app",
        &[
            "arena", "config", "web", "wiring", "cli", "commands", "lib", "main",
        ],
    ),
];

/// The six stages: none may import another.
const STAGES: &[&str] = &[
    "stages::dispatch",
    "stages::scrape",
    "stages::augment",
    "stages::infer",
    "stages::vote",
    "stages::comment",
];

/// Today's violations (`from -> to`, module paths without `crate::`). Strike each one that is
/// fixed; the test fails while a listed edge no longer occurs.
const ALLOWED: &[&str] = &[];

/// A file's module path: `src/a/b.rs` is `a::b`; `lib.rs` and `main.rs` are `lib` and `main`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    parts.push(last.trim_end_matches(".rs").to_owned());
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without its `#[cfg(test)]` module (unit tests are not part
/// of the layering).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = match line.find(" //") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn ident_at(s: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Parses a path or use tree starting at `i` (just after `crate::` or `super::`), pushing every
/// full path it names onto `out` with `prefix` in front. Returns where it stopped.
fn use_tree(s: &[u8], i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = skip_ws(s, i);
    loop {
        if i < s.len() && s[i] == b'{' {
            i += 1;
            loop {
                i = skip_ws(s, i);
                if i >= s.len() || s[i] == b'}' {
                    return i + 1;
                }
                i = use_tree(s, i, &path, out);
                i = skip_ws(s, i);
                if i < s.len() && s[i] == b',' {
                    i += 1;
                }
            }
        }
        let (ident, next) = ident_at(s, i);
        if ident.is_empty() {
            out.push(path);
            return i;
        }
        if ident != "self" {
            path.push(ident);
        }
        i = next;
        if s[i..].starts_with(b"::") {
            i = skip_ws(s, i + 2);
        } else {
            out.push(path);
            return i;
        }
    }
}

/// Every module path a file's code names, resolved to the deepest module that has a file.
fn references(module: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let s = code.as_bytes();
    let own: Vec<String> = module.split("::").map(str::to_owned).collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_');
        if boundary && s[i..].starts_with(b"crate::") {
            i = use_tree(s, i + "crate::".len(), &[], &mut paths);
        } else if boundary && s[i..].starts_with(b"super::") {
            let mut base = own.clone();
            let mut j = i;
            while s[j..].starts_with(b"super::") {
                base.pop();
                j += "super::".len();
            }
            i = use_tree(s, j, &base, &mut paths);
        } else {
            i += 1;
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        for n in (1..=path.len()).rev() {
            let candidate = path[..n].join("::");
            if modules.contains(&candidate) {
                if candidate != module {
                    out.insert(candidate);
                }
                break;
            }
        }
        if path.len() == 1 && !modules.contains(&path[0]) && module != "lib" {
            // An item at the crate root (lib.rs).
            out.insert("lib".to_owned());
        }
    }
    out
}

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().expect("non-empty module");
    LAYERS
        .iter()
        .position(|(_, mods)| mods.contains(&top))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

fn stage_of(module: &str) -> Option<&'static str> {
    STAGES
        .iter()
        .copied()
        .find(|s| module == *s || module.starts_with(&format!("{s}::")))
}

/// Whether `to` is `from` itself or one of its submodules (a parent may use its children).
fn is_descendant(from: &str, to: &str) -> bool {
    from == "lib" || to.starts_with(&format!("{from}::"))
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("readable source");
        let refs = references(&module, &code_of(&text), &modules);
        edges.insert(module, refs);
    }
    Graph { edges }
}

/// Edges that break a rule, each with the rule it breaks.
fn violations(g: &Graph) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let edge = format!("{from} -> {to}");
            if layer_of(to) > layer_of(from) {
                let up = LAYERS[layer_of(to)].0;
                let own = LAYERS[layer_of(from)].0;
                out.insert(edge, format!("layer {own} imports layer {up} above it"));
            } else if let (Some(a), Some(b)) = (stage_of(from), stage_of(to))
                && a != b
            {
                out.insert(edge, format!("stage {a} imports stage {b}"));
            }
        }
    }
    out
}

/// A cycle among files, ignoring allowed edges and a parent's use of its own children.
fn find_cycle(g: &Graph, allowed: &BTreeSet<&str>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        g: &Graph,
        allowed: &BTreeSet<&str>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for to in g.edges.get(node).into_iter().flatten() {
            if is_descendant(node, to) || allowed.contains(format!("{node} -> {to}").as_str()) {
                continue;
            }
            match state.get(to.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|m| m == to).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(to, g, allowed, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in g.edges.keys() {
        if !state.contains_key(node)
            && let Some(c) = visit(node, g, allowed, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn every_file_imports_only_its_own_layer_and_below() {
    let g = graph();
    let allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    let new: Vec<String> = violations(&g)
        .into_iter()
        .filter(|(edge, _)| !allowed.contains(edge.as_str()))
        .map(|(edge, why)| format!("  {edge}   ({why})"))
        .collect();
    assert!(
        new.is_empty(),
        "imports against the layering (src/ layers, bottom first: {}):\n{}",
        LAYERS
            .iter()
            .map(|(l, _)| *l)
            .collect::<Vec<_>>()
            .join(" < "),
        new.join("\n")
    );
}

#[test]
fn the_files_of_src_import_one_another_without_a_cycle() {
    let g = graph();
    let allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    if let Some(cycle) = find_cycle(&g, &allowed) {
        panic!("an import cycle among src/ files: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_allow_list_names_only_edges_that_still_exist() {
    let g = graph();
    let stale: Vec<&str> = ALLOWED
        .iter()
        .copied()
        .filter(|edge| {
            let (from, to) = edge.split_once(" -> ").expect("`from -> to`");
            !g.edges.get(from).is_some_and(|tos| tos.contains(to))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "fixed, so strike them from ALLOWED: {stale:?}"
    );
}

#[test]
fn the_reference_parser_sees_grouped_nested_and_relative_imports() {
    let modules: BTreeSet<String> = ["a", "a::b", "a::c", "d", "lib"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let code = "use crate::{a::b::{X, Y}, d};\nuse super::c::Z;\nfn f() { crate::a::c::g(); }";
    let refs = references("a::b", code, &modules);
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["a::c", "d"],
        "self (a::b) is left out; super::c from a::b is a::c"
    );
    let g = Graph {
        edges: BTreeMap::from([
            ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
            ("a".to_owned(), BTreeSet::from(["d".to_owned()])),
        ]),
    };
    assert!(find_cycle(&g, &BTreeSet::new()).is_some());
    assert!(find_cycle(&g, &BTreeSet::from(["a -> d"])).is_none());
}
