//! The catalogue's data types: exposed entries, clashes, resource routes, the four lists.

use std::sync::Arc;

use serde_json::Value;

/// One exposed tool, prompt, resource or template. Cheap to clone: everything is shared.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The owning server.
    pub server: Arc<str>,
    /// The upstream name (tool, prompt) or URI (resource, template).
    pub original: Arc<str>,
    /// The name or URI exposed downstream.
    pub exposed: Arc<str>,
    /// The upstream object with its name/URI replaced by the exposed one, all other members
    /// verbatim, as compact JSON: listing is concatenation, and nothing keeps a value tree.
    pub(crate) json: Arc<str>,
}

impl CatalogEntry {
    /// The exposed object as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The exposed object as a value (parsed on each call).
    pub fn item(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// Two servers wanted the same exposed name; the later one got a suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// `server` (two servers' ids, e.g. `a-b` and `a_b`: every name of the later one moves),
    /// `tool`, `prompt`, `resource` or `resourceTemplate`.
    pub kind: &'static str,
    /// The name both wanted.
    pub wanted: String,
    /// The server that kept it.
    pub kept_by: String,
    /// The server that got the suffixed name.
    pub server: String,
    /// The name it got instead.
    pub exposed_as: String,
}

/// Where a resource URI goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRoute {
    /// The owning server.
    pub server: Arc<str>,
    /// The URI to send upstream.
    pub upstream_uri: String,
}

/// The four lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogList {
    /// `tools`
    Tools,
    /// `resources`
    Resources,
    /// `resourceTemplates`
    ResourceTemplates,
    /// `prompts`
    Prompts,
}

impl CatalogList {
    pub(crate) const ALL: [CatalogList; 4] = [
        CatalogList::Tools,
        CatalogList::Resources,
        CatalogList::ResourceTemplates,
        CatalogList::Prompts,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The member of the list result (`tools`, `resources`, `resourceTemplates`, `prompts`).
    pub fn key(self) -> &'static str {
        match self {
            CatalogList::Tools => "tools",
            CatalogList::Resources => "resources",
            CatalogList::ResourceTemplates => "resourceTemplates",
            CatalogList::Prompts => "prompts",
        }
    }

    /// The member of each item that carries its name or URI.
    pub(crate) fn name_key(self) -> &'static str {
        match self {
            CatalogList::Tools | CatalogList::Prompts => "name",
            CatalogList::Resources => "uri",
            CatalogList::ResourceTemplates => "uriTemplate",
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            CatalogList::Tools => "tool",
            CatalogList::Resources => "resource",
            CatalogList::ResourceTemplates => "resourceTemplate",
            CatalogList::Prompts => "prompt",
        }
    }
}
