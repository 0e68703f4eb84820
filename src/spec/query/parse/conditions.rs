//! Conditions: `OR` over `AND` over prefixed (`NOT`, `ANY`, `ALL`) comparisons, and the
//! comparators (symbols, words, methods) with their right sides.

use crate::spec::query::ast::{Comparator, Expr, Literal, Operand, Quantifier, Span};

use super::lex::Tok;
use super::{EXTRACTORS, Parser, Result, junction, kw, word_comparator};

impl Parser {
    pub(super) fn parse_or(&mut self) -> Result<Expr> {
        let mut items = vec![self.parse_and()?];
        while kw(self.peek(), "or") {
            self.bump();
            items.push(self.parse_and()?);
        }
        Ok(junction(items, |items, span| Expr::Or { items, span }))
    }

    fn parse_and(&mut self) -> Result<Expr> {
        let mut items = vec![self.parse_unary()?];
        while kw(self.peek(), "and") {
            self.bump();
            items.push(self.parse_unary()?);
        }
        Ok(junction(items, |items, span| Expr::And { items, span }))
    }

    /// `NOT x`, `ANY x`, `ALL x`, `NOT ANY x`, or a comparison: prefixes bind tighter than AND.
    fn parse_unary(&mut self) -> Result<Expr> {
        let t = self.peek().clone();
        let quantifier = if kw(&t, "not") && kw(self.peek_at(1), "any") {
            Some(Quantifier::NotAny)
        } else if kw(&t, "any") {
            Some(Quantifier::Any)
        } else if kw(&t, "all") {
            Some(Quantifier::All)
        } else {
            None
        };
        if let Some(quantifier) = quantifier {
            let start = self.bump().span;
            if quantifier == Quantifier::NotAny {
                self.bump();
            }
            let expr = self.nested(start, Self::parse_unary)?;
            let span = start.to(expr.span());
            return Ok(Expr::Quantified {
                quantifier,
                expr: Box::new(expr),
                span,
            });
        }
        if kw(&t, "not") {
            let start = self.bump().span;
            let expr = self.nested(start, Self::parse_unary)?;
            let span = start.to(expr.span());
            return Ok(Expr::Not {
                expr: Box::new(expr),
                span,
            });
        }
        self.parse_comparison()
    }

    /// `( condition )`, or an operand with an optional comparison after it.
    fn parse_comparison(&mut self) -> Result<Expr> {
        if *self.peek() == Tok::LParen {
            let open = self.bump().span;
            let (mut inner, close) = self.nested(open, |p| {
                let inner = p.parse_or()?;
                let close = p.expect(Tok::RParen, "`)` to close the `(`")?;
                Ok((inner, close))
            })?;
            let span = open.to(close);
            if let Expr::Value { value, .. } = &inner
                && self.at_comparator()
            {
                return self.parse_compare_rest(value.clone(), span.start);
            }
            inner.set_span(span);
            return Ok(inner);
        }
        let left = self.parse_operand("a condition")?;
        let start = left.span().start;
        self.parse_compare_rest(left, start)
    }

    /// Whether a comparator (symbol, word or method) comes next.
    fn at_comparator(&self) -> bool {
        match self.peek() {
            Tok::Op(..) => true,
            Tok::Ident(w) => word_comparator(w).is_some(),
            Tok::Dot => matches!(self.peek_at(1), Tok::Ident(w) if word_comparator(w).is_some()),
            _ => false,
        }
    }

    fn parse_compare_rest(&mut self, left: Operand, start: usize) -> Result<Expr> {
        let (op, right) = match self.peek().clone() {
            Tok::Op(op, s) => {
                self.bump();
                let right = self.parse_operand(&format!("a value after `{s}`"))?;
                (op, Some(right))
            }
            Tok::Ident(w) if word_comparator(&w).is_some() => {
                let op = word_comparator(&w).expect("checked");
                self.bump();
                let right = self.parse_right(op, &w)?;
                (op, right)
            }
            Tok::Dot if matches!(self.peek_at(1), Tok::Ident(w) if word_comparator(w).is_some()) => {
                self.bump();
                let name = self.bump();
                let Tok::Ident(w) = &name.tok else {
                    unreachable!()
                };
                let op = word_comparator(w).expect("checked");
                self.expect(Tok::LParen, &format!("`(` after `.{w}`"))?;
                let right = self.parse_method_args(op, w)?;
                self.expect(Tok::RParen, &format!("`)` to close `.{w}(`"))?;
                (op, right)
            }
            _ => {
                let span = left.span();
                return Ok(Expr::Value { value: left, span });
            }
        };
        let span = Span::new(start, self.prev_end());
        Ok(Expr::Compare {
            left,
            op,
            right,
            span,
        })
    }

    /// The right side of an infix word comparator.
    fn parse_right(&mut self, op: Comparator, word: &str) -> Result<Option<Operand>> {
        match op {
            Comparator::Exists | Comparator::Absent => Ok(None),
            Comparator::WithinLast => {
                let (d, span) =
                    self.parse_duration(&format!("a duration like `7 days` after `{word}`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::Duration(d),
                    span,
                }))
            }
            Comparator::OneOf | Comparator::NoneOf
                if matches!(self.peek(), Tok::LBracket | Tok::LParen) =>
            {
                let (value, span) = self.parse_list()?;
                Ok(Some(Operand::Literal { value, span }))
            }
            Comparator::OneOf | Comparator::NoneOf => Ok(Some(
                self.parse_operand(&format!("a list like ['a', 'b'] after `{word}`"))?,
            )),
            _ => Ok(Some(
                self.parse_operand(&format!("a value after `{word}`"))?,
            )),
        }
    }

    /// The arguments of a method-style comparator, between its parentheses.
    fn parse_method_args(&mut self, op: Comparator, word: &str) -> Result<Option<Operand>> {
        match op {
            Comparator::Exists | Comparator::Absent => {
                if *self.peek() != Tok::RParen {
                    return Err(self.expected(&format!("`)`: `.{word}()` takes no argument")));
                }
                Ok(None)
            }
            Comparator::WithinLast => {
                let (d, span) =
                    self.parse_duration(&format!("a duration like `7 days` in `.{word}(...)`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::Duration(d),
                    span,
                }))
            }
            Comparator::OneOf | Comparator::NoneOf => {
                if *self.peek() == Tok::LBracket {
                    let (value, span) = self.parse_list()?;
                    return Ok(Some(Operand::Literal { value, span }));
                }
                if matches!(self.peek(), Tok::Ident(w) if EXTRACTORS.contains(&w.as_str()))
                    && *self.peek_at(1) == Tok::LParen
                {
                    return Ok(Some(self.parse_operand("a list")?));
                }
                // `.one_of('a', 'b')`: the arguments are the list.
                let start = self.span().start;
                let items = self.list_items(&Tok::RParen, &format!("`.{word}(`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::List(items),
                    span: Span::new(start, self.prev_end().max(start)),
                }))
            }
            _ => Ok(Some(
                self.parse_operand(&format!("a value in `.{word}(...)`"))?,
            )),
        }
    }
}
