//! Restore order: a topological sort of the dumped objects over their catalog dependencies,
//! taking the lowest-ranked ready object first so the output reads like pg_dump's (schemas,
//! types, functions, tables, …). Pure, pinned by tests.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders `ranks.len()` nodes so each comes after everything in its `deps`. Among nodes that
/// are ready, the lowest `(rank, index)` goes first, so ties keep the input order.
///
/// Returns the order, or the nodes caught in a dependency cycle.
pub fn sort(ranks: &[u32], deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = ranks.len();
    let mut waiting = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, ds) in deps.iter().enumerate() {
        let mut ds = ds.clone();
        ds.sort_unstable();
        ds.dedup();
        for d in ds.into_iter().filter(|&d| d != node) {
            waiting[node] += 1;
            dependents[d].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<(u32, usize)>> =
        (0..n).filter(|&i| waiting[i] == 0).map(|i| Reverse((ranks[i], i))).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse((_, node))) = ready.pop() {
        out.push(node);
        for &next in &dependents[node] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(Reverse((ranks[next], next)));
            }
        }
    }
    if out.len() == n { Ok(out) } else { Err((0..n).filter(|&i| waiting[i] > 0).collect()) }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    // No dependencies: by rank, then input order.
    #[case(vec![2, 1, 1], vec![vec![], vec![], vec![]], vec![1, 2, 0])]
    // A low-ranked node waits for its dependency.
    #[case(vec![0, 5], vec![vec![1], vec![]], vec![1, 0])]
    // A chain against the ranks.
    #[case(vec![0, 0, 0], vec![vec![1], vec![2], vec![]], vec![2, 1, 0])]
    // Self-dependencies and duplicates are ignored.
    #[case(vec![1, 0], vec![vec![0, 1, 1], vec![]], vec![1, 0])]
    fn orders(#[case] ranks: Vec<u32>, #[case] deps: Vec<Vec<usize>>, #[case] expected: Vec<usize>) {
        assert_eq!(sort(&ranks, &deps).unwrap(), expected);
    }

    #[test]
    fn a_cycle_names_its_members() {
        let deps = vec![vec![1], vec![2], vec![1], vec![]];
        assert_eq!(sort(&[0, 0, 0, 0], &deps).unwrap_err(), vec![0, 1, 2]);
    }
}
