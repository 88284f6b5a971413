//! Ordering within a receive. On a FIFO queue the messages of one group are handled one after
//! another in receive order (a retryable failure is retried in place, see `runtime::settle`),
//! and once one of them is not settled (held for a retry, lease lost, abandoned) the later ones
//! of that group are released unprocessed: SQS keeps the group blocked while the
//! held message is invisible, so order survives the retry. On a standard queue every message is
//! a group of its own.

use std::future::Future;

/// What became of one message, as far as its group is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with (succeeded or dead-lettered): the next of the group may run.
    Settled,
    /// Put back for a retry: the rest of the group must wait behind it.
    Held,
    /// Still running at the drain deadline.
    Abandoned,
}

/// Splits a receive into groups, keeping receive order inside each group and ordering groups by
/// their first message. Items without a group key form singleton groups.
pub fn group_in_order<T>(items: Vec<T>, key: impl Fn(&T) -> Option<&str>) -> Vec<Vec<T>> {
    let mut groups: Vec<(Option<String>, Vec<T>)> = Vec::new();
    for item in items {
        let k = key(&item).map(str::to_string);
        match k
            .as_deref()
            .and_then(|k| groups.iter().position(|(g, _)| g.as_deref() == Some(k)))
        {
            Some(i) => groups[i].1.push(item),
            None => groups.push((k, vec![item])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Runs `step` on each item in order until one does not settle; returns the items never run,
/// which the caller releases.
pub async fn run_in_order<T, F, Fut>(items: Vec<T>, mut step: F) -> Vec<T>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Disposition>,
{
    let mut rest = items.into_iter();
    for item in rest.by_ref() {
        if step(item).await != Disposition::Settled {
            break;
        }
    }
    rest.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_receive_order_and_singletons_stay_apart() {
        let items = vec![
            ("a", 1),
            ("b", 2),
            ("a", 3),
            ("", 4),
            ("c", 5),
            ("b", 6),
            ("", 7),
        ];
        let groups = group_in_order(items, |(g, _)| if g.is_empty() { None } else { Some(*g) });
        let ids: Vec<Vec<i32>> = groups
            .iter()
            .map(|g| g.iter().map(|(_, n)| *n).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 3], vec![2, 6], vec![4], vec![5], vec![7]]);
    }

    async fn check(outcomes: &[Disposition], expected_run: &[usize], expected_released: &[usize]) {
        let mut ran = Vec::new();
        let released = run_in_order((0..outcomes.len()).collect(), |i| {
            ran.push(i);
            let d = outcomes[i];
            async move { d }
        })
        .await;
        assert_eq!(ran, expected_run, "{outcomes:?}");
        assert_eq!(released, expected_released, "{outcomes:?}");
    }

    #[tokio::test]
    async fn a_failure_holds_the_rest_of_the_group() {
        use Disposition::*;
        check(&[Settled, Settled, Settled], &[0, 1, 2], &[]).await;
        check(&[Settled, Held, Settled, Settled], &[0, 1], &[2, 3]).await;
        check(&[Held, Settled], &[0], &[1]).await;
        check(&[Settled, Abandoned, Settled], &[0, 1], &[2]).await;
        check(&[], &[], &[]).await;
    }
}
