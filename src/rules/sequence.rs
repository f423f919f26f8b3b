//! Sequence gaps: a device numbers its recordings (0007, 0008, …); a number
//! that never arrives may be a recording deleted before docking.

/// The largest jump still read as a gap. A bigger one is a counter reset or
/// a new memory card, not a hundred deleted recordings.
pub const MAX_GAP: i64 = 50;

/// The numbers missing between the known ones of one device.
pub fn missing(known: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = known.iter().copied().filter(|s| *s >= 0).collect();
    v.sort_unstable();
    v.dedup();
    let mut out = Vec::new();
    for w in v.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b - a > 1 && b - a <= MAX_GAP + 1 {
            out.extend(a + 1..b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_found_and_filled() {
        assert_eq!(missing(&[7, 9]), vec![8]);
        assert_eq!(missing(&[9, 7, 8]), Vec::<i64>::new());
        assert_eq!(missing(&[1, 2, 5]), vec![3, 4]);
        assert_eq!(missing(&[1, 500]), Vec::<i64>::new(), "a counter reset is not a gap");
        assert_eq!(missing(&[3]), Vec::<i64>::new());
    }
}
