//! What can be known about audiences before any data is read: the order they are evaluated in
//! (an audience after every audience it reads; a cycle is an error naming it), which account
//! audiences user audiences may not read, and comparisons whose types cannot fit (a count
//! compared with text, a list compared with `>`). Types that come from the data (custom and
//! SQL traits) are checked when a run knows them.

use std::collections::HashMap;

use crate::spec::query::ast::{self, Comparator, Filter, Literal, Operand, ReducerKind, Span};
use crate::spec::{Diagnostic, EntityType, Space, query};

/// Every `trait('k')` of a condition, with its span, in the order written.
pub fn trait_refs(e: &ast::Expr, out: &mut Vec<(String, Span)>) {
    fn operand(o: &Operand, out: &mut Vec<(String, Span)>) {
        match o {
            Operand::Trait { key, span } => out.push((key.clone(), *span)),
            Operand::Event(chain) => {
                for f in &chain.filters {
                    if let Filter::Where { condition, .. } = f {
                        trait_refs(condition, out);
                    }
                }
            }
            _ => {}
        }
    }
    match e {
        ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
            items.iter().for_each(|i| trait_refs(i, out))
        }
        ast::Expr::Not { expr, .. } | ast::Expr::Quantified { expr, .. } => trait_refs(expr, out),
        ast::Expr::Compare { left, right, .. } => {
            operand(left, out);
            if let Some(r) = right {
                operand(r, out);
            }
        }
        ast::Expr::Value { value, .. } => operand(value, out),
    }
}

/// The event chains of a condition at its own level (not those inside their `.where(...)`), in
/// the order written: an audience's events, or a funnel parent's children.
pub fn event_chains(e: &ast::Expr) -> Vec<&ast::EventChain> {
    fn walk<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::EventChain>) {
        match e {
            ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
                items.iter().for_each(|i| walk(i, out))
            }
            ast::Expr::Not { expr, .. } | ast::Expr::Quantified { expr, .. } => walk(expr, out),
            ast::Expr::Compare { left, right, .. } => {
                for o in std::iter::once(left).chain(right.iter()) {
                    if let Operand::Event(c) = o {
                        out.push(c);
                    }
                }
            }
            ast::Expr::Value {
                value: Operand::Event(c),
                ..
            } => out.push(c),
            ast::Expr::Value { .. } => {}
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out
}

/// A cycle among audiences: the audience whose reference closes it, where, and the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Cycle {
    pub audience: usize,
    pub span: Span,
    pub message: String,
}

/// Orders `(key, query)` audiences so that each comes after every audience it reads.
pub fn audience_order(audiences: &[(&str, &ast::Expr)]) -> Result<Vec<usize>, Cycle> {
    let index: HashMap<&str, usize> = audiences
        .iter()
        .enumerate()
        .map(|(i, a)| (a.0, i))
        .collect();
    let deps: Vec<Vec<(usize, Span)>> = audiences
        .iter()
        .map(|a| {
            let mut refs = Vec::new();
            trait_refs(a.1, &mut refs);
            refs.into_iter()
                .filter_map(|(k, s)| index.get(k.as_str()).map(|i| (*i, s)))
                .collect()
        })
        .collect();
    struct Walk<'a> {
        deps: &'a [Vec<(usize, Span)>],
        keys: Vec<&'a str>,
        state: Vec<u8>,
        stack: Vec<usize>,
        order: Vec<usize>,
    }
    impl Walk<'_> {
        fn visit(&mut self, i: usize) -> Result<(), Cycle> {
            self.state[i] = 1;
            self.stack.push(i);
            for (d, span) in &self.deps[i] {
                match self.state[*d] {
                    0 => self.visit(*d)?,
                    1 => {
                        let from = self.stack.iter().position(|s| s == d).unwrap_or(0);
                        let mut names: Vec<&str> =
                            self.stack[from..].iter().map(|s| self.keys[*s]).collect();
                        names.push(self.keys[*d]);
                        return Err(Cycle {
                            audience: i,
                            span: *span,
                            message: format!(
                                "audiences read each other in a cycle: {}",
                                names.join(" → ")
                            ),
                        });
                    }
                    _ => {}
                }
            }
            self.stack.pop();
            self.state[i] = 2;
            self.order.push(i);
            Ok(())
        }
    }
    let mut w = Walk {
        deps: &deps,
        keys: audiences.iter().map(|a| a.0).collect(),
        state: vec![0; audiences.len()],
        stack: Vec::new(),
        order: Vec::new(),
    };
    for i in 0..audiences.len() {
        if w.state[i] == 0 {
            w.visit(i)?;
        }
    }
    Ok(w.order)
}

/// What kind of value a known operand has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    List,
    Bool,
}

fn reducer_kind(k: ReducerKind) -> Kind {
    match k {
        ReducerKind::Mode | ReducerKind::First | ReducerKind::Last => Kind::Text,
        ReducerKind::Unique => Kind::List,
        _ => Kind::Number,
    }
}

/// Why `kind op literal` cannot hold, if it cannot.
fn misfit(kind: Kind, op: Comparator, lit: Option<&Literal>) -> Option<String> {
    use Comparator::*;
    match (kind, op) {
        (_, Exists | Absent) => None,
        (_, _) if matches!(lit, Some(Literal::Null)) => None,
        (Kind::Number, Eq | Ne | Gt | Ge | Lt | Le) => match lit {
            Some(Literal::Int(_) | Literal::Float(_)) => None,
            _ => Some("is a number; compare it with a number, e.g. >= 1".into()),
        },
        (Kind::Number, OneOf | NoneOf) => match lit {
            Some(Literal::List(items))
                if items
                    .iter()
                    .all(|i| matches!(i, Literal::Int(_) | Literal::Float(_))) =>
            {
                None
            }
            _ => Some("is a number; one_of / none_of need a list of numbers".into()),
        },
        (Kind::Number, Contains) => Some("is a number, and `contains` needs text or a list".into()),
        (Kind::Number, StartsWith | EndsWith) => {
            Some(format!("is a number, and `{}` needs text", op.as_str()))
        }
        (Kind::Number, _) => Some(format!("is a number, and `{}` needs a time", op.as_str())),
        (Kind::List, Contains) => None,
        (Kind::List, _) => Some("is a list; use `contains` to test for a value".into()),
        (Kind::Bool, Eq | Ne) if matches!(lit, Some(Literal::Bool(_))) => None,
        (Kind::Bool, _) => Some("is true or false; compare it with = true or = false".into()),
        (Kind::Text, _) => None,
    }
}

/// Checks the audiences of `space`: the dependency order, user audiences reading account
/// audiences, and comparisons whose left side has a known type that the right side cannot fit.
pub fn check_audiences(space: &Space) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let parsed: Vec<(usize, ast::Expr)> = space
        .audiences
        .iter()
        .enumerate()
        .filter_map(|(i, d)| query::parsed_audience(d).ok().map(|q| (i, q)))
        .collect();
    let at = |i: usize, span: Span, message: String| {
        let d = &space.audiences[i];
        Diagnostic::error(Some(query::span_loc(&d.query_loc, &d.query, span)), message)
    };
    let list: Vec<(&str, &ast::Expr)> = parsed
        .iter()
        .map(|(i, q)| (space.audiences[*i].key.as_str(), q))
        .collect();
    if let Err(c) = audience_order(&list) {
        out.push(at(parsed[c.audience].0, c.span, c.message));
    }
    let entity: HashMap<&str, EntityType> = space
        .audiences
        .iter()
        .map(|d| (d.key.as_str(), d.entity))
        .collect();
    let mut known: HashMap<&str, Kind> = HashMap::new();
    for t in &space.traits {
        if let Ok(ast::Expr::Value {
            value: Operand::Event(chain),
            ..
        }) = query::parsed_trait(t)
            && let Some(r) = &chain.reducer
        {
            known.insert(t.key.as_str(), reducer_kind(r.kind));
        }
    }
    for (i, q) in &parsed {
        let d = &space.audiences[*i];
        let mut refs = Vec::new();
        trait_refs(q, &mut refs);
        for (k, span) in refs {
            if d.entity == EntityType::Users
                && entity.get(k.as_str()) == Some(&EntityType::Accounts)
            {
                out.push(at(
                    *i,
                    span,
                    format!(
                        "`{k}` is an account audience; a user audience cannot read it (an \
                         account audience can read user audiences with ANY / ALL)"
                    ),
                ));
            }
        }
        let mut comparisons = Vec::new();
        comparisons_of(q, &mut comparisons);
        for (left, op, right, span) in comparisons {
            let (kind, what) = match left {
                Operand::Event(chain) => {
                    let k = chain
                        .reducer
                        .as_ref()
                        .map_or(ReducerKind::Count, |r| r.kind);
                    (reducer_kind(k), format!("`.{}()`", k.as_str()))
                }
                Operand::Trait { key, .. } => {
                    if entity.contains_key(key.as_str()) {
                        (Kind::Bool, format!("audience `{key}`"))
                    } else if let Some(k) = known.get(key.as_str())
                        && d.entity == EntityType::Users
                    {
                        (*k, format!("trait `{key}`"))
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            let lit = match right {
                Some(Operand::Literal { value, .. }) => Some(value),
                Some(_) => continue,
                None => None,
            };
            if let Some(why) = misfit(kind, op, lit) {
                out.push(at(*i, span, format!("{what} {why}")));
            }
        }
    }
    out
}

/// Every profile-level comparison of a condition (not those inside `.where(...)`).
fn comparisons_of<'a>(
    e: &'a ast::Expr,
    out: &mut Vec<(&'a Operand, Comparator, Option<&'a Operand>, Span)>,
) {
    match e {
        ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
            items.iter().for_each(|i| comparisons_of(i, out))
        }
        ast::Expr::Not { expr, .. } | ast::Expr::Quantified { expr, .. } => {
            comparisons_of(expr, out)
        }
        ast::Expr::Compare {
            left,
            op,
            right,
            span,
        } => out.push((left, *op, right.as_ref(), *span)),
        ast::Expr::Value { .. } => {}
    }
}

/// Every event field a condition reads inside `.where(...)` or a reducer: (event name, path,
/// whether it is a `context(...)` path), in the order written. `property(parent: ..)` counts
/// for the parent's event.
pub fn field_refs(e: &ast::Expr, out: &mut Vec<(String, String, bool)>) {
    fn chain(c: &ast::EventChain, parent: Option<&str>, out: &mut Vec<(String, String, bool)>) {
        let mut push = |o: &Operand| match o {
            Operand::Property {
                path,
                parent: false,
                ..
            } => out.push((c.name.clone(), path.clone(), false)),
            Operand::Property {
                path, parent: true, ..
            } => {
                if let Some(p) = parent {
                    out.push((p.to_string(), path.clone(), false));
                }
            }
            Operand::Context { path, .. } => out.push((c.name.clone(), path.clone(), true)),
            _ => {}
        };
        if let Some(r) = &c.reducer
            && let Some(a) = &r.arg
        {
            push(a);
        }
        for f in &c.filters {
            if let Filter::Where { condition, .. } = f {
                within(condition, c, out);
            }
        }
    }
    fn within(e: &ast::Expr, c: &ast::EventChain, out: &mut Vec<(String, String, bool)>) {
        match e {
            ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
                items.iter().for_each(|i| within(i, c, out))
            }
            ast::Expr::Not { expr, .. } | ast::Expr::Quantified { expr, .. } => {
                within(expr, c, out)
            }
            ast::Expr::Compare { left, right, .. } => {
                for o in std::iter::once(left).chain(right.iter()) {
                    operand(o, c, out);
                }
            }
            ast::Expr::Value { value, .. } => operand(value, c, out),
        }
    }
    fn operand(o: &Operand, c: &ast::EventChain, out: &mut Vec<(String, String, bool)>) {
        match o {
            Operand::Event(child) => chain(child, Some(&c.name), out),
            Operand::Property {
                path,
                parent: false,
                ..
            } => out.push((c.name.clone(), path.clone(), false)),
            Operand::Context { path, .. } => out.push((c.name.clone(), path.clone(), true)),
            _ => {}
        }
    }
    match e {
        ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
            items.iter().for_each(|i| field_refs(i, out))
        }
        ast::Expr::Not { expr, .. } | ast::Expr::Quantified { expr, .. } => field_refs(expr, out),
        ast::Expr::Compare { left, right, .. } => {
            for o in std::iter::once(left).chain(right.iter()) {
                if let Operand::Event(c) = o {
                    chain(c, None, out);
                }
            }
        }
        ast::Expr::Value {
            value: Operand::Event(c),
            ..
        } => chain(c, None, out),
        ast::Expr::Value { .. } => {}
    }
}
