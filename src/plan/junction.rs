//! Long `AND` / `OR` lists as balanced expression trees. A query's junction is a flat list of
//! any length; folding it left to right gives DataFusion a tree as deep as the list, which
//! its recursive planner and optimizer passes walk once per level (10,000 conditions overflow
//! the stack, and type checks at every level make planning quadratic). A balanced tree is
//! `log2(n)` deep and planned in linear time.

use datafusion::logical_expr::{Expr, Operator, binary_expr};

/// Lists up to this long fold left to right, as SQL writes `a AND b AND c` (so short
/// junctions print and unparse as written); longer ones are balanced trees of such runs.
const RUN: usize = 8;

/// `items` joined by `op` (`And` or `Or`), in order, as a tree at most `RUN + log2(n / RUN)`
/// deep; `None` for an empty list.
pub fn balanced(items: Vec<Expr>, op: Operator) -> Option<Expr> {
    let mut runs = Vec::with_capacity(items.len().div_ceil(RUN));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        runs.push(
            it.by_ref()
                .take(RUN)
                .reduce(|a, b| binary_expr(a, op, b))
                .expect("a non-empty run"),
        );
    }
    pair_up(runs, op)
}

/// Pairs neighbours until one is left: each round halves the list and keeps the order.
fn pair_up(mut items: Vec<Expr>, op: Operator) -> Option<Expr> {
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut it = items.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => binary_expr(a, op, b),
                None => a,
            });
        }
        items = next;
    }
    items.pop()
}

/// `items` ANDed as a balanced tree; `true` for an empty list.
pub fn all(items: Vec<Expr>) -> Expr {
    balanced(items, Operator::And).unwrap_or(datafusion::prelude::lit(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::col;

    fn depth(e: &Expr) -> usize {
        match e {
            Expr::BinaryExpr(b) => 1 + depth(&b.left).max(depth(&b.right)),
            _ => 0,
        }
    }

    #[test]
    fn long_lists_are_shallow_and_keep_their_order() {
        let items: Vec<Expr> = (0..10_000).map(|i| col(format!("c{i}"))).collect();
        let e = balanced(items, Operator::And).unwrap();
        assert_eq!(depth(&e), 7 + 11);
        let short = balanced(
            (0..8).map(|i| col(format!("c{i}"))).collect(),
            Operator::And,
        );
        assert_eq!(depth(&short.unwrap()), 7);
        let three = balanced(vec![col("a"), col("b"), col("c")], Operator::Or).unwrap();
        assert_eq!(three.to_string(), "a OR b OR c");
        assert_eq!(balanced(vec![col("a")], Operator::Or).unwrap(), col("a"));
        assert!(balanced(vec![], Operator::Or).is_none());
        assert_eq!(all(vec![]), datafusion::prelude::lit(true));
    }
}
