//! A trace's spans, read from trace files ([`crate::file`]), as a tree:
//! who caused what, across every role of the flow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use crate::file::SpanRecord;

/// Why trace files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read the trace files in {dir}: {source}")]
    Read { dir: String, source: std::io::Error },
}

/// Every span in the `*.jsonl` files of `dir`. A line that does not parse
/// (one being written right now) is skipped.
pub fn read_dir(dir: &Path) -> Result<Vec<SpanRecord>, TreeError> {
    let failed = |source| TreeError::Read {
        dir: dir.display().to_string(),
        source,
    };
    let mut spans = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(failed)?;
        spans.extend(
            text.lines()
                .filter_map(|line| serde_json::from_str::<SpanRecord>(line).ok()),
        );
    }
    Ok(spans)
}

/// One span and the spans it caused, in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: SpanRecord,
    pub children: Vec<Node>,
}

impl Node {
    /// Every span below and including this one, depth first.
    pub fn walk(&self) -> Vec<&SpanRecord> {
        let mut out = vec![&self.span];
        for child in &self.children {
            out.extend(child.walk());
        }
        out
    }
}

/// The spans of `trace_id` as trees: normally one root; a span whose
/// parent was not recorded (a role without export, or not yet flushed)
/// starts a tree of its own.
pub fn trace(spans: &[SpanRecord], trace_id: &str) -> Vec<Node> {
    let mine: Vec<&SpanRecord> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let ids: HashSet<&str> = mine.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for span in &mine {
        if ids.contains(span.parent_span_id.as_str()) {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        } else {
            roots.push(*span);
        }
    }
    fn build(span: &SpanRecord, children: &HashMap<&str, Vec<&SpanRecord>>) -> Node {
        let mut below: Vec<&SpanRecord> = children
            .get(span.span_id.as_str())
            .cloned()
            .unwrap_or_default();
        below.sort_by_key(|s| s.start_unix_us);
        Node {
            span: span.clone(),
            children: below.into_iter().map(|c| build(c, children)).collect(),
        }
    }
    roots.sort_by_key(|s| s.start_unix_us);
    roots.into_iter().map(|r| build(r, &children)).collect()
}

/// The latest traces first: trace id → (its first span, span count).
pub fn recent(spans: &[SpanRecord], limit: usize) -> Vec<(&SpanRecord, usize)> {
    let mut by_trace: BTreeMap<&str, (&SpanRecord, usize)> = BTreeMap::new();
    for span in spans {
        let entry = by_trace.entry(&span.trace_id).or_insert((span, 0));
        if span.start_unix_us < entry.0.start_unix_us {
            entry.0 = span;
        }
        entry.1 += 1;
    }
    let mut traces: Vec<_> = by_trace.into_values().collect();
    traces.sort_by_key(|(first, _)| std::cmp::Reverse(first.start_unix_us));
    traces.truncate(limit);
    traces
}

/// The trees as text: one line per span, indented under its parent, with
/// the role, the offset from the trace's start and the duration.
pub fn render(trees: &[Node]) -> String {
    let start = trees
        .iter()
        .flat_map(Node::walk)
        .map(|s| s.start_unix_us)
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    fn line(out: &mut String, node: &Node, prefix: &str, last: bool, root: bool, start: u64) {
        let branch = match (root, last) {
            (true, _) => "",
            (false, true) => "└─ ",
            (false, false) => "├─ ",
        };
        let span = &node.span;
        let _ = writeln!(
            out,
            "{prefix}{branch}{} [{}] +{:.1} ms, {:.1} ms",
            span.name,
            span.service,
            span.start_unix_us.saturating_sub(start) as f64 / 1000.0,
            span.duration_us as f64 / 1000.0
        );
        let deeper = match (root, last) {
            (true, _) => prefix.to_owned(),
            (false, true) => format!("{prefix}   "),
            (false, false) => format!("{prefix}│  "),
        };
        for (i, child) in node.children.iter().enumerate() {
            line(
                out,
                child,
                &deeper,
                i + 1 == node.children.len(),
                false,
                start,
            );
        }
    }
    for tree in trees {
        line(&mut out, tree, "", true, true, start);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            service: "svc".into(),
            start_unix_us: start,
            duration_us: 1000,
        }
    }

    #[test]
    fn spans_form_a_tree_in_start_order() {
        let spans = vec![
            span("c", "a", "second child", 30),
            span("a", "", "root", 10),
            span("b", "a", "first child", 20),
            span("d", "b", "grandchild", 25),
            SpanRecord {
                trace_id: "other".into(),
                ..span("x", "", "another trace", 0)
            },
        ];
        let trees = trace(&spans, "t1");
        assert_eq!(trees.len(), 1);
        let names: Vec<&str> = trees[0].walk().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["root", "first child", "grandchild", "second child"]);
        let text = render(&trees);
        assert_eq!(
            text,
            "root [svc] +0.0 ms, 1.0 ms\n\
             ├─ first child [svc] +0.0 ms, 1.0 ms\n\
             │  └─ grandchild [svc] +0.0 ms, 1.0 ms\n\
             └─ second child [svc] +0.0 ms, 1.0 ms\n"
        );
    }

    #[test]
    fn a_span_whose_parent_is_missing_starts_its_own_tree() {
        let spans = vec![span("a", "", "root", 10), span("b", "gone", "orphan", 20)];
        assert_eq!(trace(&spans, "t1").len(), 2);
    }

    #[test]
    fn recent_traces_come_latest_first() {
        let spans = vec![
            span("a", "", "old", 10),
            SpanRecord {
                trace_id: "t2".into(),
                ..span("b", "", "new", 50)
            },
        ];
        let recent = recent(&spans, 10);
        assert_eq!(recent[0].0.name, "new");
        assert_eq!(recent[1], (&spans[0], 1));
    }
}
