//! Deterministic ids (UUID v5). Everything a command or a saga writes gets an
//! id computed from what caused it, so handling the same message or event
//! twice produces the same ids and the same event ids, and the event store
//! stores it once.

use uuid::Uuid;

/// The namespace of every OrderShop v5 id. Fixed forever: changing it would
/// make a redelivered command after an upgrade create a second entity.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5e0f_7a52_4d0b_4c51_9b7e_0a1d_2c3b_4e5f);

/// UUID v5 over [`NAMESPACE`] and `parts`. Each part is length-prefixed, so
/// `["ab", "c"]` and `["a", "bc"]` give different ids.
pub fn derive(parts: &[&str]) -> Uuid {
    let mut name = Vec::new();
    for part in parts {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The id of the `index`-th entity created by queue message `message_id`
/// (kinds without a uniqueness rule: customers, products, carts).
pub fn new_entity_id(message_id: &str, index: usize) -> String {
    derive(&["entity", message_id, &index.to_string()]).to_string()
}

/// The id of an entity of a kind that allows one live entity per `key`
/// (an inventory per product, a billing or a shipping per order, an active
/// order per cart): the `generation`-th such entity ever for that key.
/// Two writers creating one concurrently compute the same id, so the
/// store's "must not exist yet" check lets only one of them through.
pub fn keyed_entity_id(kind: &str, key: &str, generation: usize) -> String {
    derive(&["keyed", kind, key, &generation.to_string()]).to_string()
}

/// The event id of the `entity_created` event for the `index`-th item of
/// create command `message_id`. A redelivered create finds its earlier
/// work by this id ([`crate::View::created_by`]).
pub fn create_event_id(message_id: &str, topic: &str, index: usize) -> String {
    derive(&["create", message_id, topic, &index.to_string()]).to_string()
}

/// The event id of what update or delete message `message_id` writes about
/// one entity.
pub fn command_event_id(message_id: &str, topic: &str, entity_id: &str) -> String {
    derive(&["command", message_id, topic, entity_id]).to_string()
}

/// The event id of what a saga step identified by `causation_id` writes
/// about one entity (e.g. `reserve:<order>` on inventory `<id>`).
pub fn saga_event_id(causation_id: &str, topic: &str, entity_id: &str) -> String {
    derive(&["saga", causation_id, topic, entity_id]).to_string()
}

/// The event id of the `mail_sent` event for a mail with idempotency `key`.
pub fn mail_event_id(key: &str) -> String {
    derive(&["mail", key]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_same_id_and_it_is_a_v5_uuid() {
        let a = derive(&["x", "y"]);
        assert_eq!(a, derive(&["x", "y"]));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn part_boundaries_matter() {
        assert_ne!(derive(&["ab", "c"]), derive(&["a", "bc"]));
        assert_ne!(derive(&["a"]), derive(&["a", ""]));
    }

    #[test]
    fn entity_ids_differ_per_message_and_index() {
        let a = new_entity_id("m1", 0);
        assert_eq!(a, new_entity_id("m1", 0));
        assert_ne!(a, new_entity_id("m1", 1));
        assert_ne!(a, new_entity_id("m2", 0));
        assert!(Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn keyed_ids_differ_per_kind_key_and_generation() {
        let a = keyed_entity_id("billing", "o1", 0);
        assert_eq!(a, keyed_entity_id("billing", "o1", 0));
        assert_ne!(a, keyed_entity_id("billing", "o1", 1));
        assert_ne!(a, keyed_entity_id("billing", "o2", 0));
        assert_ne!(a, keyed_entity_id("shipping", "o1", 0));
    }

    #[test]
    fn helpers_do_not_collide_with_each_other() {
        let ids = [
            new_entity_id("k", 0),
            keyed_entity_id("k", "k", 0),
            create_event_id("k", "order", 0),
            command_event_id("k", "order", "0"),
            saga_event_id("k", "order", "0"),
            mail_event_id("k"),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
