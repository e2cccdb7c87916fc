//! Inventory rules: an inventory names an existing product, each product
//! has at most one inventory, and an inventory never moves to another
//! product (reservations are given back to the inventory they came from).
//! Deleting an inventory is allowed: its product simply becomes out of
//! stock, and stock reserved from it is not given back to anything.

use crate::entity::{Inventory, Product};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::view::View;

pub(super) fn create(
    view: &View,
    new: &Inventory,
    pending: &[&Inventory],
) -> Result<(), DomainError> {
    if view.get::<Product>(&new.product_id).is_none() {
        return Err(DomainError::UnknownReference {
            kind: EntityKind::Product,
            id: new.product_id.clone(),
        });
    }
    let existing = lookup::inventory_of_product(view, &new.product_id).or_else(|| {
        pending
            .iter()
            .copied()
            .find(|i| i.product_id == new.product_id)
    });
    if let Some(existing) = existing {
        return Err(DomainError::Conflict(format!(
            "product {} already has inventory {}",
            new.product_id, existing.entity_id
        )));
    }
    Ok(())
}

pub(super) fn update(_view: &View, old: &Inventory, new: &Inventory) -> Result<(), DomainError> {
    if old.product_id != new.product_id {
        return Err(DomainError::Immutable {
            field: "product_id",
        });
    }
    Ok(())
}

pub(super) fn delete(_view: &View, _old: &Inventory) -> Result<(), DomainError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::commands::{decide_create, decide_delete, decide_update};
    use crate::kind::EntityKind;
    use crate::testing::Shop;

    #[test]
    fn an_inventory_needs_a_product() {
        let shop = Shop::standard();
        let err = decide_create(
            EntityKind::Inventory,
            &shop.view,
            "m",
            &json!({"product_id": "nope", "amount": 1}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "could not find product nope");
    }

    #[test]
    fn one_inventory_per_product_also_within_a_batch() {
        let mut shop = Shop::standard();
        let err = decide_create(
            EntityKind::Inventory,
            &shop.view,
            "m",
            &json!({"product_id": "tea", "amount": 1}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "product tea already has inventory inv-tea");
        shop.product("mug", 3.0);
        let err = decide_create(
            EntityKind::Inventory,
            &shop.view,
            "m",
            &json!([{"product_id": "mug", "amount": 1}, {"product_id": "mug", "amount": 2}]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("item 1: product mug already has inventory "),
            "{err}"
        );
    }

    #[test]
    fn amount_changes_but_product_does_not() {
        let shop = Shop::standard();
        let d = decide_update(
            EntityKind::Inventory,
            &shop.view,
            "m",
            &json!({"entity_id": "inv-tea", "product_id": "tea", "amount": 50}),
        )
        .unwrap();
        assert_eq!(d.events[0].data["amount"], json!(50));
        let err = decide_update(
            EntityKind::Inventory,
            &shop.view,
            "m",
            &json!({"entity_id": "inv-tea", "product_id": "cup", "amount": 50}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "product_id cannot change");
    }

    #[test]
    fn an_inventory_may_be_deleted() {
        let shop = Shop::standard();
        assert!(
            decide_delete(
                EntityKind::Inventory,
                &shop.view,
                "m",
                &json!({"entity_id": "inv-tea"})
            )
            .is_ok()
        );
    }
}
