//! Product rules. A product cannot be deleted while a cart holds it (carts
//! are the history billings and mails are computed from) or while it has an
//! inventory (delete the inventory first).

use crate::entity::Product;
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::view::View;

pub(super) fn create(_view: &View, _new: &Product) -> Result<(), DomainError> {
    Ok(())
}

pub(super) fn update(_view: &View, _old: &Product, _new: &Product) -> Result<(), DomainError> {
    Ok(())
}

pub(super) fn delete(view: &View, old: &Product) -> Result<(), DomainError> {
    let still_needed = |by: EntityKind, by_id: &str| DomainError::StillNeeded {
        kind: EntityKind::Product,
        id: old.entity_id.clone(),
        by,
        by_id: by_id.to_string(),
    };
    if let Some(cart) = lookup::carts_with_product(view, &old.entity_id).next() {
        return Err(still_needed(EntityKind::Cart, &cart.entity_id));
    }
    if let Some(inventory) = lookup::inventory_of_product(view, &old.entity_id) {
        return Err(still_needed(EntityKind::Inventory, &inventory.entity_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::commands::decide_delete;
    use crate::kind::EntityKind;
    use crate::testing::Shop;

    fn delete(shop: &Shop, id: &str) -> Result<(), String> {
        decide_delete(
            EntityKind::Product,
            &shop.view,
            "m",
            &json!({"entity_id": id}),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_product_in_a_cart_or_with_an_inventory_stays() {
        let mut shop = Shop::standard();
        assert_eq!(
            delete(&shop, "tea"),
            Err("product tea is still needed by cart cart1".into())
        );
        shop.product("mug", 3.0).inventory("inv-mug", "mug", 2);
        assert_eq!(
            delete(&shop, "mug"),
            Err("product mug is still needed by inventory inv-mug".into())
        );
        shop.product("spoon", 1.0);
        assert_eq!(delete(&shop, "spoon"), Ok(()));
    }
}
