//! Multi-row statements: a batch of rows is written in chunks of a few
//! fixed sizes, so that a statement's text (and so its prepared form in
//! each connection's cache) is one of a handful however long the batch.

/// Rows per multi-row statement: a batch is written in chunks of these
/// sizes, largest first, so that each connection prepares a handful of
/// statement texts however long the batches are.
pub(crate) const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// `items` in chunks of [`CHUNKS`] sizes.
pub(crate) fn chunked<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|c| *c <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `$from, $from+1, ...`: `n` numbered parameters.
pub(crate) fn params(from: usize, n: usize) -> String {
    (from..from + n).map(|k| format!("${k}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_item_in_order_in_few_sizes() {
        for n in [0usize, 1, 3, 4, 5, 63, 64, 65, 100, 200] {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = chunked(&items).collect();
            assert_eq!(chunks.concat(), items, "{n} items");
            assert!(chunks.iter().all(|c| CHUNKS.contains(&c.len())), "{n} items: {chunks:?}");
        }
        assert_eq!(chunked(&[0; 100]).map(<[i32]>::len).collect::<Vec<_>>(), vec![64, 16, 16, 4]);
        assert_eq!(params(3, 3), "$3, $4, $5");
    }
}
