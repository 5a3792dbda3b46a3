//! Ranking a view's tools for a search-mode profile: BM25 (the `bm25` crate's scorer) over each
//! tool's name, title, description and parameter names, with a tokenizer that understands
//! identifiers (`get_issue`, `listPullRequests`, `gzip-file-as-resource` are words) and stems
//! English, so "images" finds "get-tiny-image".

use std::collections::HashSet;

use bm25::{Embedder, EmbedderBuilder, Scorer, Tokenizer};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::Value;

use crate::CatalogEntry;

/// Words that carry no meaning in a query ("a tool that can give me the ...").
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "give",
    "i", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "please", "some", "that",
    "the", "this", "to", "tool", "tools", "want", "what", "which", "with", "you", "your",
];

/// Splits identifiers and prose into lower-case stemmed words.
struct Words {
    stemmer: Stemmer,
    stop: HashSet<&'static str>,
}

impl Default for Words {
    fn default() -> Self {
        Words {
            stemmer: Stemmer::create(Algorithm::English),
            stop: STOP_WORDS.iter().copied().collect(),
        }
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Words")
    }
}

/// Splits at anything but letters and digits, and inside words at lower→upper case changes
/// (`listPullRequests` → list, Pull, Requests) and letter↔digit changes.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            let camel = p.is_lowercase() && c.is_uppercase();
            let digit = p.is_ascii_digit() != c.is_ascii_digit();
            if (camel || digit) && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
        prev = Some(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Tokenizer for Words {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        split_words(input_text)
            .into_iter()
            .filter(|w| !self.stop.contains(w.as_str()))
            .map(|w| self.stemmer.stem(&w).into_owned())
            .collect()
    }
}

/// The text a tool is found by. The name counts twice: it is the shortest and most specific
/// description a tool has.
fn document(tool: &Value) -> String {
    let s = |k: &str| tool.get(k).and_then(Value::as_str).unwrap_or_default();
    let name = s("name").replace("__", " ");
    let mut text = format!("{name} {name} {} {}", s("title"), s("description"));
    if let Some(title) = tool
        .get("annotations")
        .and_then(|a| a.get("title"))
        .and_then(Value::as_str)
    {
        text.push(' ');
        text.push_str(title);
    }
    if let Some(props) = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    {
        for k in props.keys() {
            text.push(' ');
            text.push_str(k);
        }
    }
    text
}

/// A BM25 index over a list of tools, by position.
pub(crate) struct SearchIndex {
    embedder: Embedder<u32, Words>,
    scorer: Scorer<usize, u32>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    pub(crate) fn build(tools: &[CatalogEntry]) -> SearchIndex {
        let docs: Vec<String> = tools.iter().map(|t| document(&t.item())).collect();
        let corpus: Vec<&str> = docs.iter().map(String::as_str).collect();
        let embedder = EmbedderBuilder::<u32, Words>::with_tokenizer_and_fit_to_corpus(
            Words::default(),
            &corpus,
        )
        .build();
        let mut scorer = Scorer::<usize, u32>::new();
        for (i, d) in docs.iter().enumerate() {
            scorer.upsert(&i, embedder.embed(d));
        }
        SearchIndex { embedder, scorer }
    }

    /// Positions of the best matches, best first; ties keep list order, so the answer is the
    /// same every time.
    pub(crate) fn search(&self, query: &str, limit: usize) -> Vec<usize> {
        let mut hits = self.scorer.matches(&self.embedder.embed(query));
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.into_iter().take(limit).map(|h| h.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(
            split_words("everything__get-tiny_image listPullRequests v2api"),
            [
                "everything",
                "get",
                "tiny",
                "image",
                "list",
                "pull",
                "requests",
                "v",
                "2",
                "api"
            ]
        );
        let w = Words::default();
        assert_eq!(w.tokenize("Show me the images"), ["show", "imag"]);
        assert_eq!(w.tokenize("get-tiny-image"), ["get", "tini", "imag"]);
    }
}
