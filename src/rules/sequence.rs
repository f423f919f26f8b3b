//! Sequence gaps: a device numbers its recordings (0007, 0008, …); a number
//! that never arrives may be a recording deleted before docking.
//!
//! Gaps are looked for within one *run* of a device: its recordings in the
//! order they were made, while the counter goes up. A counter that wraps
//! (9999 → 0000) or restarts (a new memory card, a reset) starts a new run,
//! so it neither hides a gap in the new run behind numbers of the old one
//! nor invents thousands of "missing" numbers between them.

/// The largest jump still read as a gap. A bigger one is a counter reset or
/// a new memory card, not a hundred deleted recordings.
pub const MAX_GAP: i64 = 50;

/// A missing number and where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub seq: i64,
    /// When the run it belongs to started (ms): tells apart the same number
    /// missing in two runs.
    pub run_start: i64,
}

/// The numbers missing within each run of one device, from its recordings
/// as (start in ms, sequence number).
pub fn missing_in_runs(recordings: &[(i64, i64)]) -> Vec<Gap> {
    let mut v: Vec<(i64, i64)> = recordings.iter().copied().filter(|(_, s)| *s >= 0).collect();
    v.sort_unstable();
    let mut out = Vec::new();
    let mut run_start = None;
    let mut prev: Option<i64> = None;
    for (start, seq) in v {
        match prev {
            Some(p) if seq > p => {
                if seq - p > 1 && seq - p <= MAX_GAP + 1 {
                    let rs = run_start.unwrap_or(start);
                    out.extend((p + 1..seq).map(|s| Gap { seq: s, run_start: rs }));
                }
            }
            // The same number twice (a copy), or the counter went back: a
            // new run begins here.
            Some(p) if seq == p => {}
            _ => run_start = Some(start),
        }
        prev = Some(seq);
    }
    out
}

/// The numbers missing between the known ones of one device, ignoring time
/// (one run).
pub fn missing(known: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = known.to_vec();
    v.sort_unstable();
    let recs: Vec<(i64, i64)> = v.iter().map(|s| (0, *s)).collect();
    missing_in_runs(&recs).into_iter().map(|g| g.seq).collect()
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

    fn seqs(g: &[Gap]) -> Vec<i64> {
        g.iter().map(|g| g.seq).collect()
    }

    #[test]
    fn a_swapped_card_neither_hides_new_gaps_nor_invents_old_ones() {
        // Card A: 1..=10 in the morning; card B starts over at 1 and skips 3.
        let mut r: Vec<(i64, i64)> = (1..=10).map(|s| (s * 100, s)).collect();
        r.extend([(2_000, 1), (2_100, 2), (2_300, 4)]);
        let g = missing_in_runs(&r);
        assert_eq!(seqs(&g), vec![3], "the 3 of card A does not hide card B's missing 3");
        assert_eq!(g[0].run_start, 2_000);
    }

    #[test]
    fn a_counter_that_wraps_invents_no_gap() {
        // A counter that wraps at 60: 55..=60, then 0..=5.
        let mut r: Vec<(i64, i64)> = (55..=60).map(|s| (s, s)).collect();
        r.extend((0..=5).map(|s| (100 + s, s)));
        assert!(missing_in_runs(&r).is_empty(), "{:?}", missing_in_runs(&r));
        // ...and a gap after the wrap is still found.
        r.retain(|(_, s)| *s != 2);
        assert_eq!(seqs(&missing_in_runs(&r)), vec![2]);
    }
}
