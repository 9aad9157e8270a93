//! Keys of windowed stores: the grouping key's bytes followed by the window's bounds, so
//! that all windows of one key are adjacent and ordered by start. Group keys must be
//! prefix-free (no key is a prefix of another), as order-preserving row encodings are.

/// A window's bounds in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowKey {
    pub start: i64,
    pub end: i64,
}

/// Big-endian with the sign bit flipped: byte order is numeric order.
fn ordered(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

fn unordered(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

pub fn window_key(key: &[u8], window: WindowKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 16);
    out.extend_from_slice(key);
    out.extend_from_slice(&ordered(window.start));
    out.extend_from_slice(&ordered(window.end));
    out
}

/// The range of store keys holding `key`'s windows that start in `[from, to]`.
pub fn window_range(key: &[u8], from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    let mut low = key.to_vec();
    low.extend_from_slice(&ordered(from));
    let mut high = key.to_vec();
    high.extend_from_slice(&ordered(to));
    high.extend_from_slice(&[0xFF; 9]);
    (low, high)
}

impl WindowKey {
    /// Reads the bounds back from a store key.
    pub fn of(store_key: &[u8]) -> Option<(Vec<u8>, WindowKey)> {
        let n = store_key.len().checked_sub(16)?;
        Some((
            store_key[..n].to_vec(),
            WindowKey {
                start: unordered(&store_key[n..n + 8]),
                end: unordered(&store_key[n + 8..]),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_order_by_key_then_start() {
        let a = window_key(b"k", WindowKey { start: -5, end: 0 });
        let b = window_key(b"k", WindowKey { start: 10, end: 20 });
        assert!(a < b);
        let (low, high) = window_range(b"k", -10, 10);
        assert!(low <= a && a < high && b < high);
        assert_eq!(
            WindowKey::of(&b),
            Some((b"k".to_vec(), WindowKey { start: 10, end: 20 }))
        );
    }
}
