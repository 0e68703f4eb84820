//! Conditions as boolean expressions over an audience's wide row: `trait(...)` lookups (trait
//! columns and other audiences), AND / OR / NOT with unknown counting as false, and typed
//! comparisons (a literal that does not fit the compared type is an error).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::functions_nested::expr_fn::{array_has, cardinality};
use datafusion::logical_expr::{Expr, Operator, TryCast, col, lit};
use datafusion::prelude::coalesce;

use crate::plan::junction::balanced;
use crate::plan::traits::{err, escape_like, float, literal_text, timestamp_literal, ts};
use crate::spec::EntityType;
use crate::spec::query::ast::{self, Comparator, Literal, Operand, Quantifier, Span};

use super::{CResult, Column, Compiler, Level, audience_column};

impl Compiler<'_> {
    /// `trait('key')` at `level`: a trait column or an audience's membership.
    pub(super) fn lookup(&self, key: &str, span: Span, level: Level) -> CResult<Option<Column>> {
        let (types, entity) = match level {
            Level::Users => (&self.profile_types, EntityType::Users),
            Level::Accounts => (&self.account_types, EntityType::Accounts),
        };
        if let Some(e) = self.audiences.get(key) {
            if *e == entity {
                return Ok(Some(Column {
                    expr: col(audience_column(key)),
                    data_type: DataType::Boolean,
                    data_typed: false,
                }));
            }
            if level == Level::Users {
                return err(
                    span,
                    format!(
                        "`{key}` is an account audience; a user audience cannot read it \
                         (an account audience can read user audiences with ANY / ALL)"
                    ),
                );
            }
            return Ok(None);
        }
        let name = if types.contains_key(key) {
            key.to_string()
        } else {
            crate::plan::profiles::column_name(key)
        };
        match types.get(&name) {
            Some(t) => Ok(Some(Column {
                expr: col(name.as_str()),
                data_type: t.clone(),
                data_typed: self.inputs.data_typed.contains(&name),
            })),
            None if level == Level::Accounts
                && !(self.inputs.lenient
                    && !self.profile_types.contains_key(&name)
                    && !self.audiences.contains_key(key)) =>
            {
                Ok(None)
            }
            None if self.inputs.lenient => Ok(Some(Column {
                expr: lit(ScalarValue::Utf8(None)),
                data_type: DataType::Null,
                data_typed: true,
            })),
            None => {
                let mut candidates: Vec<&str> = types.keys().map(String::as_str).collect();
                candidates.extend(
                    self.audiences
                        .iter()
                        .filter(|(_, e)| **e == entity)
                        .map(|(k, _)| k.as_str()),
                );
                let help = match crate::spec::suggest(key, &candidates) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => String::new(),
                };
                err(
                    span,
                    format!(
                        "unknown trait or audience `{key}`: no computed, custom or SQL trait and \
                         no audience has this key{help}"
                    ),
                )
            }
        }
    }

    /// A condition at `level` as a boolean over the wide row; unknown counts as false.
    pub(super) fn cond(&mut self, e: &ast::Expr, level: Level) -> CResult<Expr> {
        match e {
            ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
                let op = match e {
                    ast::Expr::Or { .. } => Operator::Or,
                    _ => Operator::And,
                };
                let conds = items
                    .iter()
                    .map(|i| self.cond(i, level))
                    .collect::<CResult<Vec<_>>>()?;
                Ok(balanced(conds, op).unwrap_or(lit(true)))
            }
            ast::Expr::Not { expr, .. } => Ok(Expr::Not(Box::new(self.cond(expr, level)?))),
            ast::Expr::Quantified {
                quantifier,
                expr,
                span,
            } => {
                if level == Level::Users {
                    return err(
                        *span,
                        "`ANY`, `ALL` and `NOT ANY` are for account audiences",
                    );
                }
                let user = self.cond(expr, Level::Users)?;
                Ok(self.quantify(*quantifier, user))
            }
            leaf => {
                if level == Level::Accounts && !self.is_account_leaf(leaf)? {
                    // A user-level condition in an account audience: ANY of its users.
                    let user = self.cond(leaf, Level::Users)?;
                    return Ok(self.quantify(Quantifier::Any, user));
                }
                let c = self.leaf(leaf, level)?;
                Ok(coalesce(vec![c, lit(false)]))
            }
        }
    }

    /// A comparison or a bare value, before NULL becomes false.
    fn leaf(&mut self, e: &ast::Expr, level: Level) -> CResult<Expr> {
        match e {
            ast::Expr::Value { value, span } => match value {
                Operand::Event(chain) => {
                    let (v, _) = self.event_value(chain)?;
                    Ok(v.gt_eq(lit(1i64)))
                }
                Operand::Trait { key, span } => {
                    let Some(c) = self.lookup(key, *span, level)? else {
                        return err(*span, format!("unknown trait `{key}`"));
                    };
                    match c.data_type {
                        DataType::Boolean => Ok(c.expr.is_true()),
                        DataType::Null => Ok(lit(ScalarValue::Boolean(None))),
                        ref t => err(
                            *span,
                            format!(
                                "trait `{key}` is {}, not true or false: compare it, e.g. \
                                 trait('{key}') = ...",
                                describe(t)
                            ),
                        ),
                    }
                }
                _ => err(*span, "this is a value, not a condition: compare it"),
            },
            ast::Expr::Compare {
                left,
                op,
                right,
                span,
            } => {
                let (l, lt, data_typed) = self.operand(left, level)?;
                let r = match right {
                    None => None,
                    Some(Operand::Literal { value, .. }) => Some(Right::Lit(value)),
                    Some(o) => {
                        let (r, rt, _) = self.operand(o, level)?;
                        Some(Right::Col(r, rt))
                    }
                };
                match typed_compare(l, &lt, *op, r, *span, self.as_of) {
                    Err(e) if data_typed => {
                        self.warnings.push(e.message);
                        Ok(lit(ScalarValue::Boolean(None)))
                    }
                    other => other,
                }
            }
            other => self.cond(other, level),
        }
    }

    /// An operand at profile (or account) level: (value, type, type-from-data).
    fn operand(&mut self, o: &Operand, level: Level) -> CResult<(Expr, DataType, bool)> {
        match o {
            Operand::Event(chain) => {
                let (v, t) = self.event_value(chain)?;
                Ok((v, t, false))
            }
            Operand::Trait { key, span } => match self.lookup(key, *span, level)? {
                Some(c) => Ok((c.expr, c.data_type, c.data_typed)),
                None => err(*span, format!("unknown trait `{key}`")),
            },
            Operand::Literal { span, .. } => err(
                *span,
                "put the value on the right of the comparison, e.g. trait('plan') = 'pro'",
            ),
            Operand::Property { span, .. } | Operand::Context { span, .. } => err(
                *span,
                "an event field belongs inside `.where(...)` of an event",
            ),
        }
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

fn describe(t: &DataType) -> &'static str {
    match t {
        t if t.is_numeric() => "a number",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Boolean => "true or false",
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => "a time",
        DataType::List(_) | DataType::LargeList(_) => "a list",
        _ => "a value",
    }
}

/// The right side of a comparison.
pub(super) enum Right<'a> {
    Lit(&'a Literal),
    Col(Expr, DataType),
}

/// `l op r` where `l` has type `lt` (a trait column or an event value). A literal that does
/// not fit the type is an error (the type is known); `DataType::Null` is a type not known
/// yet, compared as text.
pub(super) fn typed_compare(
    l: Expr,
    lt: &DataType,
    op: Comparator,
    right: Option<Right<'_>>,
    span: Span,
    as_of: i64,
) -> CResult<Expr> {
    let what = describe(lt);
    let mismatch = |hint: &str| -> CResult<Expr> {
        err(
            span,
            format!("this value is {what}, so `{}` {hint}", op.as_str()),
        )
    };
    let unknown = *lt == DataType::Null;
    let text_like = unknown || matches!(lt, DataType::Utf8 | DataType::LargeUtf8);
    let list = matches!(lt, DataType::List(_) | DataType::LargeList(_));
    let time = matches!(lt, DataType::Timestamp(..));
    match op {
        Comparator::Exists => return Ok(present(l, list)),
        Comparator::Absent => return Ok(Expr::Not(Box::new(present(l, list)))),
        _ => {}
    }
    let Some(right) = right else {
        return err(span, "this comparison needs a value on its right");
    };
    let cmp = |a: Expr, b: Expr| -> Expr {
        match op {
            Comparator::Eq => a.eq(b),
            Comparator::Ne => a.not_eq(b),
            Comparator::Gt => a.gt(b),
            Comparator::Ge => a.gt_eq(b),
            Comparator::Lt => a.lt(b),
            _ => a.lt_eq(b),
        }
    };
    let r = match right {
        Right::Col(r, rt) => {
            // Two values read from the row.
            if is_number(lt) && is_number(&rt) {
                return Ok(cmp(float(l), float(r)));
            }
            if matches!(
                op,
                Comparator::Eq
                    | Comparator::Ne
                    | Comparator::Gt
                    | Comparator::Ge
                    | Comparator::Lt
                    | Comparator::Le
            ) && !list
                && !matches!(rt, DataType::List(_))
            {
                let text = |e: Expr| Expr::TryCast(TryCast::new(Box::new(e), DataType::Utf8));
                return Ok(cmp(text(l), text(r)));
            }
            return err(span, "compare these two values with =, !=, <, <=, > or >=");
        }
        Right::Lit(r) => r,
    };
    match op {
        Comparator::Eq
        | Comparator::Ne
        | Comparator::Gt
        | Comparator::Ge
        | Comparator::Lt
        | Comparator::Le => {
            let ordering = !matches!(op, Comparator::Eq | Comparator::Ne);
            match r {
                Literal::Null => match op {
                    Comparator::Eq => Ok(Expr::Not(Box::new(present(l, list)))),
                    Comparator::Ne => Ok(present(l, list)),
                    _ => err(span, "null compares only with = and !="),
                },
                Literal::Int(_) | Literal::Float(_) => {
                    let n = match r {
                        Literal::Int(i) => *i as f64,
                        Literal::Float(f) => *f,
                        _ => unreachable!(),
                    };
                    if is_number(lt) || text_like {
                        Ok(cmp(float(l), lit(n)))
                    } else {
                        mismatch("compares it with a number")
                    }
                }
                Literal::String(s) => {
                    if text_like {
                        Ok(cmp(l, lit(s.as_str())))
                    } else if time {
                        Ok(cmp(l, timestamp_literal(r, span)?))
                    } else {
                        mismatch("cannot compare it with text")
                    }
                }
                Literal::Bool(b) => {
                    if ordering {
                        err(span, "true and false compare only with = and !=")
                    } else if *lt == DataType::Boolean {
                        Ok(cmp(l, lit(*b)))
                    } else if text_like {
                        Ok(cmp(l, lit(b.to_string())))
                    } else {
                        mismatch("cannot compare it with true or false")
                    }
                }
                Literal::List(_) => err(span, "compare with one value; use one_of for a list"),
                Literal::Duration(_) => err(span, "a duration compares with within_last"),
            }
        }
        Comparator::Contains | Comparator::StartsWith | Comparator::EndsWith => {
            let Some(text) = literal_text(r) else {
                return err(span, "this comparison needs a text value");
            };
            if list {
                if op == Comparator::Contains {
                    return Ok(array_has(l, lit(text)));
                }
                return mismatch("needs text; use contains for a list");
            }
            if !text_like {
                return mismatch("needs text");
            }
            let pattern = match op {
                Comparator::Contains => format!("%{}%", escape_like(&text)),
                Comparator::StartsWith => format!("{}%", escape_like(&text)),
                _ => format!("%{}", escape_like(&text)),
            };
            Ok(l.like(lit(pattern)))
        }
        Comparator::OneOf | Comparator::NoneOf => {
            let Literal::List(items) = r else {
                return err(span, "one_of / none_of take a list, e.g. ['a', 'b']");
            };
            let (l, values) = if is_number(lt) {
                let mut v = Vec::new();
                for i in items {
                    match i {
                        Literal::Int(n) => v.push(lit(*n as f64)),
                        Literal::Float(f) => v.push(lit(*f)),
                        _ => return mismatch("takes a list of numbers"),
                    }
                }
                (float(l), v)
            } else if text_like {
                let mut v = Vec::new();
                for i in items {
                    match literal_text(i) {
                        Some(t) => v.push(lit(t)),
                        None => return err(span, "list items are numbers, text or booleans"),
                    }
                }
                (l, v)
            } else {
                return mismatch("takes text or numbers");
            };
            if op == Comparator::OneOf {
                Ok(l.in_list(values, false))
            } else {
                Ok(l.clone().is_null().or(l.in_list(values, true)))
            }
        }
        Comparator::BeforeDate | Comparator::AfterDate | Comparator::WithinLast => {
            let t = if time {
                l
            } else if text_like {
                crate::plan::traits::as_timestamp(l)
            } else {
                return mismatch("needs a time");
            };
            match op {
                Comparator::BeforeDate => Ok(t.lt(timestamp_literal(r, span)?)),
                Comparator::AfterDate => Ok(t.gt(timestamp_literal(r, span)?)),
                _ => {
                    let Literal::Duration(d) = r else {
                        return err(span, "within_last takes a duration, e.g. 7 days");
                    };
                    Ok(t.clone()
                        .gt(ts(as_of - d.seconds() * 1_000_000))
                        .and(t.lt_eq(ts(as_of))))
                }
            }
        }
        Comparator::Exists | Comparator::Absent => unreachable!("handled above"),
    }
}

/// A value is there: not null, and for a list, not empty.
pub(super) fn present(l: Expr, list: bool) -> Expr {
    if list {
        l.clone().is_not_null().and(cardinality(l).gt(lit(0u64)))
    } else {
        l.is_not_null()
    }
}
