//! Account audiences: which leaves read the account itself (its traits, account audiences) and
//! how user-level conditions aggregate over each account's users (ANY, ALL, NOT ANY).

use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::coalesce;

use crate::analyze::audiences::trait_refs;

use crate::plan::traits::err;
use crate::spec::query::ast::{self, Operand, Quantifier};

use super::{CResult, Compiler, Level};

impl Compiler<'_> {
    /// Whether a leaf of an account audience reads the account itself (its traits or
    /// account audiences) rather than its users.
    pub(super) fn is_account_leaf(&self, e: &ast::Expr) -> CResult<bool> {
        let mut refs = Vec::new();
        trait_refs(e, &mut refs);
        let events = match e {
            ast::Expr::Compare { left, right, .. } => {
                matches!(left, Operand::Event(_)) || matches!(right, Some(Operand::Event(_)))
            }
            ast::Expr::Value { value, .. } => matches!(value, Operand::Event(_)),
            _ => false,
        };
        if events || refs.is_empty() {
            return Ok(false);
        }
        let mut account = None;
        for (k, span) in refs {
            let here = self.lookup(&k, span, Level::Accounts)?.is_some();
            match account {
                None => account = Some(here),
                Some(a) if a != here => {
                    return err(
                        span,
                        "this comparison mixes an account trait with a user trait; compare \
                         each with a value, or put the user part in ANY / ALL",
                    );
                }
                _ => {}
            }
        }
        Ok(account.unwrap_or(false))
    }

    /// A user-level condition aggregated over each account's users.
    pub(super) fn quantify(&mut self, q: Quantifier, user: Expr) -> Expr {
        let text = format!("{user}");
        let alias = match self.quantified_index.get(&text) {
            Some(a) => a.clone(),
            None => {
                let a = format!("__q{}", self.quantified.len());
                self.quantified.push((a.clone(), user));
                self.quantified_index.insert(text, a.clone());
                a
            }
        };
        let any = coalesce(vec![col(format!("{alias}_any")), lit(false)]);
        match q {
            Quantifier::Any => any,
            Quantifier::NotAny => Expr::Not(Box::new(any)),
            Quantifier::All => coalesce(vec![col(format!("{alias}_all")), lit(false)]),
        }
    }
}
