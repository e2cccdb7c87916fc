//! The bytes of a view snapshot: the [`View`] in postcard (compact, no
//! field names), compressed with LZ4 (ids repeat across entities; LZ4
//! decompresses at memory speed, so a restart pays little for it).

use std::collections::BTreeMap;

use ordershop_client::ViewSnapshot;
use ordershop_core::{Topic, View};
use ordershop_topology::EntryId;

/// Layout of [`encode`]'s bytes. Bump it whenever `View` or anything it
/// holds changes shape (fields, enum variants and their order): a service
/// ignores a snapshot of another layout and replays from the start.
pub(crate) const FORMAT: u32 = 1;

/// Why a stored snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("layout {found}, this build reads layout {FORMAT}")]
    Format { found: u32 },
    #[error("it holds topics {found:?}, this view folds {expected:?}")]
    Topics {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("position {0:?} is not an entry id")]
    Position(String),
    #[error("cannot decompress it: {0}")]
    Compression(#[from] lz4_flex::block::DecompressError),
    #[error("cannot decode it: {0}")]
    Decode(#[from] postcard::Error),
}

/// A view serialized, not yet compressed: what must happen while the view
/// is locked, the rest can wait until it is not.
pub(crate) struct Encoded {
    raw: Vec<u8>,
    positions: BTreeMap<String, String>,
}

/// Serializes the view and its cursors.
pub(crate) fn encode(
    view: &View,
    cursors: &BTreeMap<Topic, EntryId>,
) -> Result<Encoded, postcard::Error> {
    Ok(Encoded {
        raw: postcard::to_stdvec(view)?,
        positions: cursors
            .iter()
            .map(|(topic, cursor)| (topic.name().to_owned(), cursor.to_string()))
            .collect(),
    })
}

impl Encoded {
    /// The snapshot to store.
    pub(crate) fn compress(self) -> ViewSnapshot {
        ViewSnapshot {
            format: FORMAT,
            positions: self.positions,
            data: lz4_flex::compress_prepend_size(&self.raw),
            replace_newer: false,
        }
    }
}

/// The view and its cursors stored in `snapshot`, if it is of this build's
/// layout and folds exactly `topics`.
pub(crate) fn decode(
    snapshot: &ViewSnapshot,
    topics: &[Topic],
) -> Result<(View, BTreeMap<Topic, EntryId>), SnapshotError> {
    if snapshot.format != FORMAT {
        return Err(SnapshotError::Format {
            found: snapshot.format,
        });
    }
    let mut cursors = BTreeMap::new();
    for (name, position) in &snapshot.positions {
        let entry =
            EntryId::parse(position).ok_or_else(|| SnapshotError::Position(position.clone()))?;
        if let Some(topic) = Topic::from_name(name) {
            cursors.insert(topic, entry);
        }
    }
    let other_topics = || SnapshotError::Topics {
        found: snapshot.positions.keys().cloned().collect(),
        expected: topics.iter().map(|t| t.name().to_owned()).collect(),
    };
    // Known from the header: no need to decompress a snapshot of other topics.
    if cursors.len() != snapshot.positions.len()
        || !cursors.keys().copied().eq(topics.iter().copied())
    {
        return Err(other_topics());
    }
    let raw = lz4_flex::decompress_size_prepended(&snapshot.data)?;
    let view: View = postcard::from_bytes(&raw)?;
    if !view.topics().eq(topics.iter().copied()) {
        return Err(other_topics());
    }
    Ok((view, cursors))
}

#[cfg(test)]
mod tests {
    use ordershop_core::{Customer, EventAction, RecordedEvent};
    use serde_json::json;

    use super::*;

    fn folded() -> (View, BTreeMap<Topic, EntryId>) {
        let mut view = View::new(&[Topic::Customer, Topic::Mail]);
        let mut deleted = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityDeleted,
            "c2",
            2,
            json!({"entity_id": "c2", "name": "bob", "email": "bob@example.org"}),
        );
        deleted.causation_id = Some("gdpr:c2".into());
        for event in [
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityCreated,
                "c1",
                1,
                json!({"entity_id": "c1", "name": "ann", "email": "ann@example.org"}),
            ),
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityCreated,
                "c2",
                1,
                json!({"entity_id": "c2", "name": "bob", "email": "bob@example.org"}),
            ),
            deleted,
        ] {
            view.apply(&event).unwrap();
        }
        let cursors = [
            (Topic::Customer, EntryId { ms: 2, seq: 0 }),
            (Topic::Mail, EntryId::ZERO),
        ]
        .into();
        (view, cursors)
    }

    #[test]
    fn a_view_comes_back_whole() {
        let (view, cursors) = folded();
        let snapshot = encode(&view, &cursors).unwrap().compress();
        assert_eq!(snapshot.positions["customer"], "2-0");
        let (back, back_cursors) = decode(&snapshot, &[Topic::Customer, Topic::Mail]).unwrap();
        assert_eq!(back_cursors, cursors);
        assert_eq!(back.get::<Customer>("c1").unwrap().name, "ann");
        // Tombstones, versions, causations and creations survive.
        assert!(back.get::<Customer>("c2").is_none());
        assert_eq!(back.version(Topic::Customer, "c2"), 2);
        assert_eq!(back.caused_by(Topic::Customer, "gdpr:c2").len(), 1);
        assert_eq!(back.created_by(Topic::Customer, "ev-c1-1"), Some("c1"));
        assert_eq!(
            back.position(Topic::Customer),
            view.position(Topic::Customer)
        );
        assert_eq!(back.entries(), view.entries());
    }

    #[test]
    fn the_reference_index_is_rebuilt() {
        let mut view = View::new(&[Topic::Order]);
        view.apply(&RecordedEvent::synthetic(
            Topic::Order,
            EventAction::EntityCreated,
            "o1",
            1,
            json!({"entity_id": "o1", "cart_id": "k1", "status": "CREATED"}),
        ))
        .unwrap();
        let cursors = [(Topic::Order, EntryId { ms: 1, seq: 0 })].into();
        let snapshot = encode(&view, &cursors).unwrap().compress();
        let (back, _) = decode(&snapshot, &[Topic::Order]).unwrap();
        let orders: Vec<&str> = back
            .referring::<ordershop_core::Order>("k1")
            .map(|o| o.entity_id.as_str())
            .collect();
        assert_eq!(orders, ["o1"]);
    }

    #[test]
    fn another_layout_or_other_topics_are_refused() {
        let (view, cursors) = folded();
        let mut snapshot = encode(&view, &cursors).unwrap().compress();
        assert!(matches!(
            decode(&snapshot, &[Topic::Customer]),
            Err(SnapshotError::Topics { .. })
        ));
        snapshot.format = FORMAT + 1;
        assert!(matches!(
            decode(&snapshot, &[Topic::Customer, Topic::Mail]),
            Err(SnapshotError::Format { .. })
        ));
        snapshot.format = FORMAT;
        snapshot.data.truncate(snapshot.data.len() / 2);
        assert!(decode(&snapshot, &[Topic::Customer, Topic::Mail]).is_err());
    }
}
