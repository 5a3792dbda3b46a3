//! Tool filters: which upstream tool names a server (or a profile) exposes. Glob matching over
//! names, compiled once per filter.

use std::fmt;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::ItemList;
use crate::items::{Builder, string_member};

/// `include` / `exclude` globs over upstream tool names. A name passes when `include` is empty
/// or matches it, and `exclude` does not. Two filters are equal when their patterns are.
#[derive(Clone, Default)]
pub struct ToolFilter {
    include: Vec<String>,
    exclude: Vec<String>,
    sets: Option<(GlobSet, GlobSet)>,
}

impl fmt::Debug for ToolFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolFilter")
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .finish()
    }
}

impl PartialEq for ToolFilter {
    fn eq(&self, other: &Self) -> bool {
        self.include == other.include && self.exclude == other.exclude
    }
}

impl Eq for ToolFilter {}

fn compile(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("invalid glob pattern `{p}`: {}", e.kind()))?);
    }
    b.build().map_err(|e| e.to_string())
}

impl ToolFilter {
    /// A filter from patterns (globs: `*`, `?`, `[abc]`, `{a,b}`); an error names a pattern that
    /// does not compile.
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Result<ToolFilter, String> {
        let sets = if include.is_empty() && exclude.is_empty() {
            None
        } else {
            Some((compile(&include)?, compile(&exclude)?))
        };
        Ok(ToolFilter {
            include,
            exclude,
            sets,
        })
    }

    /// Whether every name passes.
    pub fn is_empty(&self) -> bool {
        self.sets.is_none()
    }

    /// The `include` patterns.
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// The `exclude` patterns.
    pub fn exclude(&self) -> &[String] {
        &self.exclude
    }

    /// Whether `name` passes.
    pub fn allows(&self, name: &str) -> bool {
        match &self.sets {
            None => true,
            Some((inc, exc)) => {
                (self.include.is_empty() || inc.is_match(name)) && !exc.is_match(name)
            }
        }
    }

    /// The items of `list` whose `name` passes (the same list when nothing is filtered).
    pub(crate) fn apply(&self, list: &ItemList) -> ItemList {
        if self.is_empty() {
            return list.clone();
        }
        let mut out = Builder::default();
        for item in list.iter() {
            if string_member(item, "name").is_some_and(|n| self.allows(&n)) {
                out.push_json(item);
            }
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn include_then_exclude() {
        let f =
            ToolFilter::new(vec!["get*".into(), "echo".into()], vec!["get-env".into()]).unwrap();
        assert!(f.allows("echo"));
        assert!(f.allows("get-sum"));
        assert!(!f.allows("get-env"));
        assert!(!f.allows("echo2"), "a pattern matches the whole name");
        let only_exclude = ToolFilter::new(vec![], vec!["*secret*".into()]).unwrap();
        assert!(only_exclude.allows("list"));
        assert!(!only_exclude.allows("read_secret_key"));
        assert!(ToolFilter::new(vec!["[".into()], vec![]).is_err());
        let list = ItemList::from_values(&[json!({"name": "echo"}), json!({"name": "get-env"})]);
        let kept = f.apply(&list);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.strings("name").collect::<Vec<_>>(), ["echo"]);
        assert_eq!(ToolFilter::default().apply(&list), list);
    }
}
