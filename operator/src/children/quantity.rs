//! Kubernetes resource quantities (`512Mi`, `1.5Gi`, `500M`, `1e9`) as
//! numbers, for what the operator derives from them: Redis' `maxmemory`
//! from the container's memory limit, and whether two volume sizes are the
//! same size written differently (`1024Mi` and `1Gi`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The quantity's value, rounded up to a whole unit (bytes for memory and
/// storage, as Kubernetes rounds them); `None` for a negative or malformed
/// quantity (the API server refuses those in a pod anyway).
pub(crate) fn whole_units(quantity: &Quantity) -> Option<u64> {
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    const KI: f64 = 1024.0;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => KI,
        "Mi" => KI.powi(2),
        "Gi" => KI.powi(3),
        "Ti" => KI.powi(4),
        "Pi" => KI.powi(5),
        "Ei" => KI.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        // `E` alone is exa; `e3` or `E3` is a decimal exponent.
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let value = (number * factor).ceil();
    // `as` saturates; values past u64 are not memory sizes anyone asks for.
    (value.is_finite() && value >= 0.0).then_some(value as u64)
}

/// Whether two quantities are the same amount; compared as written when
/// either cannot be read.
pub(crate) fn same_amount(a: &Quantity, b: &Quantity) -> bool {
    match (whole_units(a), whole_units(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.0.trim() == b.0.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(text: &str) -> Option<u64> {
        whole_units(&Quantity(text.into()))
    }

    #[test]
    fn binary_decimal_and_exponent_suffixes() {
        assert_eq!(units("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(units("1.5Gi"), Some(1536 * 1024 * 1024));
        assert_eq!(units("1Ki"), Some(1024));
        assert_eq!(units("500M"), Some(500_000_000));
        assert_eq!(units("2G"), Some(2_000_000_000));
        assert_eq!(units("1k"), Some(1000));
        assert_eq!(units("128974848"), Some(128_974_848));
        assert_eq!(units("129e6"), Some(129_000_000));
        assert_eq!(units("1E3"), Some(1000));
        assert_eq!(units("1E"), Some(1_000_000_000_000_000_000));
        // Fractions of a byte round up, as Kubernetes does.
        assert_eq!(units("1500m"), Some(2));
    }

    #[test]
    fn malformed_or_negative_quantities_are_none() {
        for text in ["", "Mi", "abc", "12Qi", "-1Gi", "1e", "1.2.3"] {
            assert_eq!(units(text), None, "{text:?}");
        }
    }

    #[test]
    fn equal_amounts_written_differently_are_the_same() {
        let q = |s: &str| Quantity(s.into());
        assert!(same_amount(&q("1Gi"), &q("1024Mi")));
        assert!(same_amount(&q("1G"), &q("1000M")));
        assert!(!same_amount(&q("1Gi"), &q("1G")));
        assert!(same_amount(&q("odd"), &q("odd")));
        assert!(!same_amount(&q("odd"), &q("1Gi")));
    }
}
