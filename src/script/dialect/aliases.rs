//! The statement-level repair of the Unparser's output every dialect needs: derived tables
//! named the way their readers refer to them, and filters on a select's own output names
//! moved out (PostgreSQL refuses them). Dialect-free.

use datafusion::sql::sqlparser::ast;

/// DataFusion's Unparser writes `SELECT "t"."a" FROM (SELECT ...)`: the derived table keeps
/// no alias while its readers still name it. Each such derived table gets the one qualifier
/// its `SELECT` uses.
pub(super) fn alias_derived_tables(stmt: &mut ast::Statement) {
    use std::collections::BTreeSet;
    use std::ops::ControlFlow;
    struct Aliaser;
    fn qualifiers(select: &ast::Select) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut look = |e: &ast::Expr| {
            let _ = ast::visit_expressions(e, |x| {
                if let ast::Expr::CompoundIdentifier(p) = x
                    && p.len() == 2
                {
                    out.insert(p[0].value.clone());
                }
                ControlFlow::<()>::Continue(())
            });
        };
        for item in &select.projection {
            match item {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => look(e),
                _ => {}
            }
        }
        if let Some(w) = &select.selection {
            look(w);
        }
        if let ast::GroupByExpr::Expressions(es, _) = &select.group_by {
            for e in es {
                look(e);
            }
        }
        if let Some(h) = &select.having {
            look(h);
        }
        out
    }
    fn fix(body: &mut ast::SetExpr) {
        match body {
            ast::SetExpr::Select(select) => {
                if let Some(wrapped) = filter_on_outputs(select) {
                    *body = wrapped;
                    return;
                }
                let mut qs = qualifiers(select);
                // Qualifiers of join conditions count too; names of the FROM's own relations
                // (and their aliases) are not missing.
                for t in &select.from {
                    for j in &t.joins {
                        let c = match &j.join_operator {
                            ast::JoinOperator::Join(c)
                            | ast::JoinOperator::Inner(c)
                            | ast::JoinOperator::Left(c)
                            | ast::JoinOperator::LeftOuter(c)
                            | ast::JoinOperator::Right(c)
                            | ast::JoinOperator::RightOuter(c)
                            | ast::JoinOperator::FullOuter(c)
                            | ast::JoinOperator::LeftSemi(c)
                            | ast::JoinOperator::LeftAnti(c) => Some(c),
                            _ => None,
                        };
                        if let Some(ast::JoinConstraint::On(e)) = c {
                            let _ = ast::visit_expressions(e, |x| {
                                if let ast::Expr::CompoundIdentifier(p) = x
                                    && p.len() == 2
                                {
                                    qs.insert(p[0].value.clone());
                                }
                                ControlFlow::<()>::Continue(())
                            });
                        }
                    }
                }
                // The Unparser's own names for derived tables (PostgreSQL wants one) that no
                // column uses are dropped, and named below like the others.
                for t in &mut select.from {
                    let factors = std::iter::once(&mut t.relation)
                        .chain(t.joins.iter_mut().map(|j| &mut j.relation));
                    for f in factors {
                        if let ast::TableFactor::Derived { alias, .. } = f
                            && alias.as_ref().is_some_and(|a| {
                                a.name.value.starts_with("derived_")
                                    && a.name.value != "derived_window_input"
                                    && !qs.contains(&a.name.value)
                            })
                        {
                            *alias = None;
                        }
                    }
                }
                // Names the FROM already gives its relations.
                let mut named = BTreeSet::new();
                let mut unaliased = 0;
                for t in &select.from {
                    for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
                    {
                        match f {
                            ast::TableFactor::Table { name, alias, .. } => {
                                match alias {
                                    Some(a) => named.insert(a.name.value.clone()),
                                    None => named.insert(
                                        name.0
                                            .last()
                                            .and_then(|p| p.as_ident())
                                            .map(|i| i.value.clone())
                                            .unwrap_or_default(),
                                    ),
                                };
                            }
                            ast::TableFactor::Derived { alias: Some(a), .. } => {
                                named.insert(a.name.value.clone());
                            }
                            ast::TableFactor::Derived { alias: None, .. } => unaliased += 1,
                            _ => {}
                        }
                    }
                }
                qs.retain(|q| !named.contains(q));
                // A lone derived table takes the one qualifier its readers miss; otherwise
                // each takes the qualifier its own plain columns keep (DataFusion keeps a
                // column's qualifier through a projection), else a fresh name (PostgreSQL
                // wants every derived table named).
                let lone = (unaliased == 1 && qs.len() == 1).then(|| qs.iter().next().cloned());
                for t in &mut select.from {
                    let factors = std::iter::once(&mut t.relation)
                        .chain(t.joins.iter_mut().map(|j| &mut j.relation));
                    for f in factors {
                        if let ast::TableFactor::Derived {
                            alias, subquery, ..
                        } = f
                            && alias.is_none()
                        {
                            let own = output_qualifier(subquery).filter(|q| !named.contains(q));
                            let name = match (&lone, own) {
                                (Some(Some(q)), _) => q.clone(),
                                (_, Some(q)) => q,
                                _ => {
                                    let mut n = named.len();
                                    while named.contains(&format!("_t{n}")) {
                                        n += 1;
                                    }
                                    format!("_t{n}")
                                }
                            };
                            named.insert(name.clone());
                            *alias = Some(ast::TableAlias {
                                explicit: true,
                                name: ast::Ident::with_quote('"', name),
                                columns: vec![],
                                at: None,
                            });
                        }
                    }
                }
            }
            ast::SetExpr::SetOperation { left, right, .. } => {
                fix(left);
                fix(right);
            }
            ast::SetExpr::Query(q) => fix(&mut q.body),
            _ => {}
        }
    }
    /// The Unparser filters on names its own select list gives (`SELECT lower(x) AS "v" ...
    /// WHERE "v" IS NOT NULL`), which DuckDB accepts and PostgreSQL does not: such a select
    /// becomes `SELECT * FROM (<it without WHERE>) AS "_w" WHERE ...`, the filter reading the
    /// output columns by name. Selects that group, or filter with a subquery, stay as they are.
    fn filter_on_outputs(select: &ast::Select) -> Option<ast::SetExpr> {
        let w = select.selection.as_ref()?;
        if select.having.is_some()
            || select.qualify.is_some()
            || !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
        {
            return None;
        }
        let mut outputs = BTreeSet::new();
        let mut renamed = BTreeSet::new();
        for item in &select.projection {
            match item {
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    outputs.insert(alias.value.clone());
                    let same = match expr {
                        ast::Expr::Identifier(i) => i.value == alias.value,
                        ast::Expr::CompoundIdentifier(p) => {
                            p.last().is_some_and(|i| i.value == alias.value)
                        }
                        _ => false,
                    };
                    if !same {
                        renamed.insert(alias.value.clone());
                    }
                }
                ast::SelectItem::UnnamedExpr(ast::Expr::Identifier(i)) => {
                    outputs.insert(i.value.clone());
                }
                ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(p)) => {
                    outputs.insert(p.last()?.value.clone());
                }
                _ => return None,
            }
        }
        // The conjuncts on renamed outputs move out; the others stay where they are.
        fn conjuncts(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
            match e {
                ast::Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::And,
                    right,
                } => {
                    conjuncts(left, out);
                    conjuncts(right, out);
                }
                ast::Expr::Nested(inner) => conjuncts(inner, out),
                e => out.push(e.clone()),
            }
        }
        let mut all = Vec::new();
        conjuncts(w, &mut all);
        let (mut outer_part, mut inner_part) = (Vec::new(), Vec::new());
        for c in all {
            let mut uses_renamed = false;
            let mut readable = true;
            let _ = ast::visit_expressions(&c, |x| {
                match x {
                    ast::Expr::Identifier(i) => {
                        uses_renamed |= renamed.contains(&i.value);
                        readable &= outputs.contains(&i.value);
                    }
                    ast::Expr::CompoundIdentifier(p) => {
                        readable &= p.last().is_some_and(|i| outputs.contains(&i.value));
                    }
                    ast::Expr::Exists { .. }
                    | ast::Expr::InSubquery { .. }
                    | ast::Expr::Subquery(_) => {
                        readable = false;
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
            match (uses_renamed, readable) {
                (false, _) => inner_part.push(c),
                (true, true) => outer_part.push(c),
                (true, false) => return None,
            }
        }
        if outer_part.is_empty() {
            return None;
        }
        let and = |parts: Vec<ast::Expr>| {
            parts.into_iter().reduce(|l, r| ast::Expr::BinaryOp {
                left: Box::new(l),
                op: ast::BinaryOperator::And,
                right: Box::new(r),
            })
        };
        let mut filter = and(outer_part)?;
        let _ = ast::visit_expressions_mut(&mut filter, |x| {
            if let ast::Expr::CompoundIdentifier(p) = x
                && let Some(last) = p.last()
            {
                *x = ast::Expr::Identifier(last.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let mut inner = select.clone();
        inner.selection = and(inner_part);
        let template = "SELECT * FROM (SELECT 1) AS \"_w\" WHERE true";
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
            template,
        )
        .ok()?;
        let ast::Statement::Query(mut q) = parsed.into_iter().next()? else {
            return None;
        };
        let ast::SetExpr::Select(outer) = q.body.as_mut() else {
            return None;
        };
        if let ast::TableFactor::Derived { subquery, .. } = &mut outer.from.first_mut()?.relation {
            *subquery.body = ast::SetExpr::Select(Box::new(inner));
        }
        outer.selection = Some(filter);
        Some(*q.body)
    }
    /// The one qualifier the plain (unaliased) columns of `q`'s select list carry, if one.
    fn output_qualifier(q: &ast::Query) -> Option<String> {
        let ast::SetExpr::Select(select) = q.body.as_ref() else {
            return None;
        };
        let mut found = BTreeSet::new();
        for item in &select.projection {
            if let ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(p)) = item
                && p.len() == 2
            {
                found.insert(p[0].value.clone());
            }
        }
        (found.len() == 1)
            .then(|| found.into_iter().next())
            .flatten()
    }
    impl ast::VisitorMut for Aliaser {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            fix(&mut q.body);
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(stmt, &mut Aliaser);
}
