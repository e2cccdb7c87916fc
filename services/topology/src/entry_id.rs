//! Stream entry ids (`<ms>-<seq>`), compared as number pairs: as strings
//! `"999-0"` would sort after `"1000-0"`.

use std::fmt;
use std::str::FromStr;

/// A position in a topic. [`EntryId::ZERO`] is "before the first event".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// Reads an entry id; the empty string (the store's "from the start")
    /// is [`EntryId::ZERO`].
    pub fn parse(text: &str) -> Option<EntryId> {
        if text.is_empty() {
            return Some(EntryId::ZERO);
        }
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The entry just before this one in id order ([`EntryId::ZERO`] stays
    /// ZERO): reading after it starts at this very entry.
    pub fn predecessor(self) -> EntryId {
        match (self.ms, self.seq) {
            (0, 0) => EntryId::ZERO,
            (ms, 0) => EntryId {
                ms: ms - 1,
                seq: u64::MAX,
            },
            (ms, seq) => EntryId { ms, seq: seq - 1 },
        }
    }

    /// The store's cursor for "after this entry": empty for ZERO, so a
    /// read starts at the very beginning.
    pub fn cursor(self) -> String {
        if self == EntryId::ZERO {
            String::new()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The text was not an entry id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntryId(pub String);

impl fmt::Display for InvalidEntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid entry id {:?}", self.0)
    }
}

impl std::error::Error for InvalidEntryId {}

impl FromStr for EntryId {
    type Err = InvalidEntryId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryId::parse(s).ok_or_else(|| InvalidEntryId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_number_pairs() {
        let a: EntryId = "999-5".parse().unwrap();
        let b: EntryId = "1000-0".parse().unwrap();
        assert!(a < b);
        assert!(b < "1000-1".parse().unwrap());
        assert_eq!(b.to_string(), "1000-0");
    }

    #[test]
    fn the_predecessor_is_just_before() {
        let id = |s: &str| EntryId::parse(s).unwrap();
        assert_eq!(id("5-3").predecessor(), id("5-2"));
        assert_eq!(
            id("5-0").predecessor().to_string(),
            format!("4-{}", u64::MAX)
        );
        assert!(id("5-0").predecessor() < id("5-0"));
        assert_eq!(EntryId::ZERO.predecessor(), EntryId::ZERO);
    }

    #[test]
    fn empty_and_zero_are_the_start() {
        assert_eq!(EntryId::parse(""), Some(EntryId::ZERO));
        assert_eq!(EntryId::parse("0-0"), Some(EntryId::ZERO));
        assert_eq!(EntryId::ZERO.cursor(), "");
        assert_eq!("7-1".parse::<EntryId>().unwrap().cursor(), "7-1");
        assert!("x-1".parse::<EntryId>().is_err());
        assert!("1-".parse::<EntryId>().is_err());
    }
}
