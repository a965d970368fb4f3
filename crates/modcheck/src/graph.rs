//! The module tree of one crate, the file-to-file edges between its modules,
//! and the strongly connected components of those edges.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use syn::buffer::{Cursor, TokenBuffer};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, ImplItem, Item, Meta, Token, UseTree, Visibility};

/// A module path inside one crate root: `[]` is the root, `["storage", "logs"]` is `crate::storage::logs`.
type ModPath = Vec<String>;

/// Edges of one crate: (from file, to file) -> the paths in `from` that create it.
pub type Edges = BTreeMap<(PathBuf, PathBuf), BTreeSet<String>>;

/// The graph of one `src` folder, the union over its roots (`lib.rs`, `main.rs`).
pub struct CrateGraph {
    pub roots: Vec<PathBuf>,
    pub files: BTreeSet<PathBuf>,
    pub edges: Edges,
}

/// The module tree below one root: every module and the file that holds it.
#[derive(Default)]
struct Tree {
    modules: HashMap<ModPath, PathBuf>,
    files: Vec<(PathBuf, ModPath, syn::File)>,
}

/// Builds the graph of the crate(s) rooted at `src/lib.rs` and `src/main.rs`.
pub fn analyze(src: &Path) -> Result<CrateGraph> {
    let mut graph = CrateGraph {
        roots: Vec::new(),
        files: BTreeSet::new(),
        edges: Edges::new(),
    };
    for root in ["lib.rs", "main.rs"].map(|name| src.join(name)) {
        if !root.is_file() {
            continue;
        }
        let mut tree = Tree::default();
        tree.modules.insert(Vec::new(), root.clone());
        discover(&mut tree, &root, Vec::new(), src)?;
        for (file, module, ast) in &tree.files {
            graph.files.insert(file.clone());
            let mut refs = Refs {
                tree: &tree,
                file,
                file_mod: module,
                current: module.clone(),
                edges: &mut graph.edges,
            };
            refs.visit_file(ast);
        }
        graph.roots.push(root);
    }
    Ok(graph)
}

/// Parses `file` (module `module`, children looked up in `dir`) and the files of its `mod x;` items.
fn discover(tree: &mut Tree, file: &Path, module: ModPath, dir: &Path) -> Result<()> {
    if tree.files.iter().any(|(seen, _, _)| seen == file) {
        return Ok(());
    }
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let ast = syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
    declare(tree, file, &ast.items, &module, dir)?;
    tree.files.push((file.to_path_buf(), module, ast));
    Ok(())
}

/// Registers the non-test modules declared by `items`, inline ones as part of `file`.
fn declare(
    tree: &mut Tree,
    file: &Path,
    items: &[Item],
    module: &ModPath,
    dir: &Path,
) -> Result<()> {
    for item in items {
        let Item::Mod(m) = item else { continue };
        if is_test(&m.attrs) {
            continue;
        }
        let name = ident_name(&m.ident);
        let child = [module.as_slice(), std::slice::from_ref(&name)].concat();
        if let Some((_, inner)) = &m.content {
            tree.modules.insert(child.clone(), file.to_path_buf());
            declare(tree, file, inner, &child, &dir.join(&name))?;
            continue;
        }
        let candidates = [
            dir.join(format!("{name}.rs")),
            dir.join(&name).join("mod.rs"),
        ];
        let Some(found) = candidates.into_iter().find(|c| c.is_file()) else {
            eprintln!(
                "warning: {}: no file for `mod {name};` in {}",
                file.display(),
                dir.display()
            );
            continue;
        };
        // `x/mod.rs` keeps its children beside it, `x.rs` keeps them in `x/`.
        let child_dir = if found.ends_with("mod.rs") {
            dir.join(&name)
        } else {
            found.with_extension("")
        };
        tree.modules.insert(child.clone(), found.clone());
        discover(tree, &found, child, &child_dir)?;
    }
    Ok(())
}

fn ident_name(ident: &syn::Ident) -> String {
    ident.to_string().trim_start_matches("r#").to_owned()
}

/// True for `#[test]`, `#[cfg(test)]` and `#[cfg(all(test, ...))]`.
fn is_test(attrs: &[Attribute]) -> bool {
    fn cfg_is_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(p) => p.is_ident("test"),
            Meta::List(l) if l.path.is_ident("all") => l
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|metas| metas.iter().any(cfg_is_test)),
            _ => false,
        }
    }
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<Meta>().is_ok_and(|m| cfg_is_test(&m)))
    })
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every path a `use` tree names: `a::{self, b as c, d::*}` gives `a`, `a::b`, `a::d`.
fn flatten(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(ident_name(&p.ident));
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) if n.ident == "self" => out.push(prefix.clone()),
        UseTree::Name(n) => out.push([prefix.as_slice(), &[ident_name(&n.ident)]].concat()),
        UseTree::Rename(r) if r.ident == "self" => out.push(prefix.clone()),
        UseTree::Rename(r) => out.push([prefix.as_slice(), &[ident_name(&r.ident)]].concat()),
        UseTree::Glob(_) => out.push(prefix.clone()),
        UseTree::Group(g) => g.items.iter().for_each(|t| flatten(t, prefix, out)),
    }
}

/// Resolves `segs`, written in module `current`, to the deepest module of the tree it names.
fn resolve(
    modules: &HashMap<ModPath, PathBuf>,
    current: &[String],
    segs: &[String],
) -> Option<ModPath> {
    let mut base: ModPath;
    let mut rest = segs;
    match segs.first()?.as_str() {
        "crate" => {
            base = Vec::new();
            rest = &segs[1..];
        }
        "self" | "super" => {
            base = current.to_vec();
            while let Some(seg) = rest.first() {
                match seg.as_str() {
                    "self" => {}
                    "super" => {
                        base.pop()?;
                    }
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        // A bare path counts only when it starts with a child module of `current`.
        first => {
            base = [current, &[first.to_owned()]].concat();
            if !modules.contains_key(&base) {
                return None;
            }
            rest = &segs[1..];
        }
    }
    for seg in rest {
        base.push(seg.clone());
        if !modules.contains_key(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

/// Collects the edges out of one file, skipping `#[cfg(test)]` items.
struct Refs<'a> {
    tree: &'a Tree,
    file: &'a Path,
    file_mod: &'a ModPath,
    current: ModPath,
    edges: &'a mut Edges,
}

impl Refs<'_> {
    fn add(&mut self, segs: &[String], reexport: bool) {
        let Some(target) = resolve(&self.tree.modules, &self.current, segs) else {
            return;
        };
        let Some(to) = self.tree.modules.get(&target) else {
            return;
        };
        // A re-export of a descendant is how a parent exposes its children: no edge.
        if to == self.file || (reexport && target.starts_with(self.file_mod)) {
            return;
        }
        let key = (self.file.to_path_buf(), to.clone());
        self.edges.entry(key).or_default().insert(segs.join("::"));
    }

    /// Paths inside macro and attribute arguments (`info!("{}", crate::a::f())`) are only tokens.
    fn scan_tokens(&mut self, mut cur: Cursor) {
        while !cur.eof() {
            if let Some((inside, _, _, next)) = cur.any_group() {
                self.scan_tokens(inside);
                cur = next;
            } else if let Some((first, mut next)) = cur.ident() {
                let mut segs = vec![ident_name(&first)];
                // `a :: b :: c`: two ':' puncts between identifiers.
                while let Some((_, c1)) = next.punct().filter(|(p, _)| p.as_char() == ':') {
                    let Some((_, c2)) = c1.punct().filter(|(p, _)| p.as_char() == ':') else {
                        break;
                    };
                    let Some((ident, c3)) = c2.ident() else { break };
                    segs.push(ident_name(&ident));
                    next = c3;
                }
                if segs.len() > 1 {
                    self.add(&segs, false);
                }
                cur = next;
            } else if let Some((_, next)) = cur.token_tree() {
                cur = next;
            } else {
                break;
            }
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if is_test(item_attrs(item)) {
            return;
        }
        match item {
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    self.current.push(ident_name(&m.ident));
                    items.iter().for_each(|i| self.visit_item(i));
                    self.current.pop();
                }
            }
            Item::Use(u) if u.leading_colon.is_none() => {
                let reexport = !matches!(u.vis, Visibility::Inherited);
                let mut paths = Vec::new();
                flatten(&u.tree, &mut Vec::new(), &mut paths);
                paths.iter().for_each(|p| self.add(p, reexport));
            }
            Item::Use(_) => {}
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attrs: &[Attribute] = match item {
            ImplItem::Const(i) => &i.attrs,
            ImplItem::Fn(i) => &i.attrs,
            ImplItem::Type(i) => &i.attrs,
            ImplItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !is_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segs: Vec<String> = path.segments.iter().map(|s| ident_name(&s.ident)).collect();
            self.add(&segs, false);
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        let buffer = TokenBuffer::new2(mac.tokens.clone());
        self.scan_tokens(buffer.begin());
    }

    /// Attribute arguments such as `#[utoipa::path(responses((body = crate::a::T)))]`.
    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        visit::visit_meta_list(self, list);
        let buffer = TokenBuffer::new2(list.tokens.clone());
        self.scan_tokens(buffer.begin());
    }

    // `pub(in crate::a)` names a module without depending on it.
    fn visit_visibility(&mut self, _: &'ast Visibility) {}
}

/// The files reachable from `start` by one or more edges.
fn reachable<'a>(graph: &'a CrateGraph, start: &PathBuf) -> BTreeSet<&'a PathBuf> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![start];
    while let Some(v) = queue.pop() {
        for (_, w) in graph.edges.keys().filter(|(f, _)| f == v) {
            if seen.insert(w) {
                queue.push(w);
            }
        }
    }
    seen
}

/// Strongly connected components with more than one file (files that reach each other), sorted.
pub fn cycles(graph: &CrateGraph) -> Vec<Vec<PathBuf>> {
    let reach: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = graph
        .files
        .iter()
        .map(|f| (f, reachable(graph, f)))
        .collect();
    let mut found: Vec<Vec<PathBuf>> = Vec::new();
    for (v, from_v) in &reach {
        let scc: Vec<PathBuf> = from_v
            .iter()
            .filter(|w| reach.get(**w).is_some_and(|r| r.contains(v)))
            .map(|w| (*w).clone())
            .collect();
        if scc.len() > 1 && !found.contains(&scc) {
            found.push(scc);
        }
    }
    found
}

/// A shortest cycle through the first file of `scc` (breadth-first, inside the SCC).
pub fn shortest_cycle(graph: &CrateGraph, scc: &[PathBuf]) -> Vec<PathBuf> {
    let Some(start) = scc.first() else {
        return Vec::new();
    };
    let mut parent: HashMap<&PathBuf, &PathBuf> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for (_, w) in graph
            .edges
            .keys()
            .filter(|(f, t)| f == v && scc.contains(t))
        {
            if w == start {
                let mut path = vec![start.clone(), v.clone()];
                let mut at = v;
                while let Some(p) = parent.get(at) {
                    path.push((*p).clone());
                    at = p;
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path relative to `src`, text) and analyzes them.
    fn crate_of(files: &[(&str, &str)]) -> (tempfile::TempDir, CrateGraph) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let graph = analyze(dir.path()).expect("analyze");
        (dir, graph)
    }

    fn names(dir: &Path, files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.strip_prefix(dir).expect("inside").display().to_string())
            .collect()
    }

    fn cycle_names(dir: &tempfile::TempDir, graph: &CrateGraph) -> Vec<Vec<String>> {
        cycles(graph)
            .iter()
            .map(|scc| names(dir.path(), scc))
            .collect()
    }

    fn edge_names(dir: &tempfile::TempDir, graph: &CrateGraph) -> Vec<(String, String)> {
        let name = |p: &PathBuf| names(dir.path(), std::slice::from_ref(p)).remove(0);
        graph
            .edges
            .keys()
            .map(|(f, t)| (name(f), name(t)))
            .collect()
    }

    #[test]
    fn finds_a_two_file_cycle() {
        let (dir, graph) = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
            (
                "b.rs",
                "pub struct B;\nfn f() -> usize { std::mem::size_of::<crate::a::A>() }\n",
            ),
        ]);
        assert_eq!(cycle_names(&dir, &graph), [["a.rs", "b.rs"]]);
        let ab = &graph.edges[&(dir.path().join("a.rs"), dir.path().join("b.rs"))];
        assert!(ab.contains("crate::b::B"));
    }

    #[test]
    fn finds_a_three_file_cycle_through_nested_modules() {
        let (dir, graph) = crate_of(&[
            ("main.rs", "mod a;\nmod net;\nfn main() {}\n"),
            ("a.rs", "pub fn a() { crate::net::b::b(); }\n"),
            ("net/mod.rs", "pub mod b;\npub mod c;\n"),
            ("net/b.rs", "use super::c::C;\npub fn b() -> C { C }\n"),
            (
                "net/c.rs",
                "pub struct C;\nfn c() { tracing::info!(\"{:?}\", crate::a::a()); }\n",
            ),
        ]);
        assert_eq!(
            cycle_names(&dir, &graph),
            [["a.rs", "net/b.rs", "net/c.rs"]]
        );
        let scc = &cycles(&graph)[0];
        assert_eq!(shortest_cycle(&graph, scc).len(), 4);
    }

    #[test]
    fn parent_reexports_are_not_edges_but_parent_calls_are() {
        let files = [
            ("lib.rs", "pub mod storage;\npub use storage::StorageError;\n"),
            (
                "storage/mod.rs",
                "mod deliveries;\npub use deliveries::Row;\npub(crate) use self::deliveries::{load, save as store};\npub struct StorageError;\n",
            ),
            ("storage/deliveries.rs", "use super::StorageError;\npub struct Row;\npub fn load() {}\npub fn save() {}\n"),
        ];
        let (dir, graph) = crate_of(&files);
        assert!(cycles(&graph).is_empty());
        assert_eq!(
            edge_names(&dir, &graph),
            [("storage/deliveries.rs".into(), "storage/mod.rs".into())]
        );

        let mut calling = files;
        calling[1].1 =
            "mod deliveries;\npub struct StorageError;\nfn run() { deliveries::load() }\n";
        let (dir, graph) = crate_of(&calling);
        assert_eq!(
            cycle_names(&dir, &graph),
            [["storage/deliveries.rs", "storage/mod.rs"]]
        );
    }

    #[test]
    fn ignores_cfg_test_items() {
        let (dir, graph) = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "pub fn a() { crate::b::b() }\n"),
            (
                "b.rs",
                "pub fn b() {}\n#[cfg(test)]\nfn helper() { crate::a::a() }\n#[cfg(all(test, unix))]\nuse crate::a::a;\n\
                 #[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::a;\n}\n#[cfg(test)]\nmod more;\n\
                 pub struct S;\nimpl S {\n    #[cfg(test)]\n    fn t() { crate::a::a() }\n}\n",
            ),
            ("b/more.rs", "use crate::a::a;\n"),
        ]);
        assert!(cycles(&graph).is_empty());
        assert_eq!(edge_names(&dir, &graph), [("a.rs".into(), "b.rs".into())]);
        assert!(!graph.files.contains(&dir.path().join("b/more.rs")));
    }

    #[test]
    fn an_acyclic_tree_passes() {
        let (dir, graph) = crate_of(&[
            (
                "lib.rs",
                "pub mod app;\nmod util {\n    pub mod fmt;\n}\npub use app::App;\n",
            ),
            (
                "app.rs",
                "mod handoff;\nuse self::handoff::Held;\npub struct App(Held);\n\
                 #[utoipa::path(get, responses((status = 200, body = crate::util::fmt::Body)))]\n\
                 fn route() {}\n",
            ),
            (
                "app/handoff.rs",
                "use crate::util::fmt::pretty;\npub struct Held;\nfn f() { pretty() }\n",
            ),
            ("util/fmt.rs", "pub fn pretty() {}\n"),
        ]);
        assert!(cycles(&graph).is_empty());
        let expected = [
            ("app/handoff.rs", "util/fmt.rs"),
            ("app.rs", "app/handoff.rs"),
            ("app.rs", "util/fmt.rs"),
        ]; // paths sort by component: `app/handoff.rs` before `app.rs`
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect();
        assert_eq!(edge_names(&dir, &graph), expected);
        assert_eq!(graph.files.len(), 4);
    }
}
