//! The expression-level half of writing SQL for another engine: Cohort's own functions (and
//! the DataFusion spellings an engine lacks) rewritten into calls the engine runs, and text
//! ordered byte-wise as in Cohort. What each engine writes comes from its [`ScriptDialect`].

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast;

use super::ScriptDialect;

/// SQL text placed into the tree as is (it prints verbatim), in parentheses.
pub(super) fn raw_expr(sql: String) -> ast::Expr {
    ast::Expr::Identifier(ast::Ident::new(format!("({sql})")))
}

/// The plain arguments of a call, and its `ORDER BY` clause if any.
fn call_args(f: &ast::Function) -> (Vec<ast::Expr>, Vec<ast::OrderByExpr>) {
    let mut out = Vec::new();
    let mut order = Vec::new();
    if let ast::FunctionArguments::List(list) = &f.args {
        for a in &list.args {
            if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a {
                out.push(e.clone());
            }
        }
        for c in &list.clauses {
            if let ast::FunctionArgumentClause::OrderBy(o) = c {
                order = o.clone();
            }
        }
    }
    (out, order)
}

/// The text of a string literal argument.
fn literal(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
/// Every key sequence a Segment path may be found under, in the order `cohort_json_get`
/// tries them: each segment as a key, else a run of segments joined by `_` (a flattened key).
fn key_sequences(segs: &[&str]) -> Vec<Vec<String>> {
    if segs.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for i in 0..segs.len() {
        let head = segs[..=i].join("_");
        for mut rest in key_sequences(&segs[i + 1..]) {
            rest.insert(0, head.clone());
            out.push(rest);
        }
    }
    out
}

/// `cohort_json_get(json, 'a.b')` in `d`: the value at the first key sequence found, as text
/// (strings unquoted).
fn json_get(d: &dyn ScriptDialect, json: &str, path: &str) -> String {
    let segs: Vec<&str> = path.split('.').collect();
    let tries: Vec<String> = key_sequences(&segs)
        .into_iter()
        .map(|keys| d.json_text_at(json, &keys))
        .collect();
    if tries.len() == 1 {
        tries.into_iter().next().unwrap_or_default()
    } else {
        format!("COALESCE({})", tries.join(", "))
    }
}

/// `f(x, k) FILTER (WHERE c)` as `f(CASE WHEN c THEN x END, k)` (and `count(*)` as
/// `count(CASE WHEN c THEN 1 END)`): the same result for an aggregate that skips nulls.
fn fold_filter(f: &mut ast::Function) {
    let Some(cond) = f.filter.take() else {
        return;
    };
    let when = |x: ast::Expr| ast::Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![ast::CaseWhen {
            condition: (*cond).clone(),
            result: x,
        }],
        else_result: None,
    };
    // The first argument is the aggregated value; the others are constants
    // (`cohort_mode(value, min_frequency)`).
    if let ast::FunctionArguments::List(list) = &mut f.args
        && let Some(ast::FunctionArg::Unnamed(x)) = list.args.first_mut()
    {
        let plain = match std::mem::replace(x, ast::FunctionArgExpr::Wildcard) {
            ast::FunctionArgExpr::Expr(e) => e,
            _ => ast::Expr::value(ast::Value::Number("1".into(), false)),
        };
        *x = ast::FunctionArgExpr::Expr(when(plain));
    }
}

/// Rewrites Cohort's functions (and the DataFusion spellings the dialect lacks) into SQL `d`
/// runs; the helpers it calls are defined by its prelude.
pub(super) fn rewrite_functions(stmt: &mut ast::Statement, d: &dyn ScriptDialect) {
    let _ = ast::visit_expressions_mut(stmt, |e| {
        // A field of the parsed-once JSON struct: back to a lookup of the column itself.
        if let ast::Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && let Some(column) = parts[0].value.strip_prefix("__json_")
        {
            let j = d.quote_ident(column);
            *e = raw_expr(json_get(d, &j, &parts[1].value));
            return ControlFlow::<()>::Continue(());
        }
        if let ast::Expr::Cast {
            kind: ast::CastKind::TryCast | ast::CastKind::SafeCast,
            expr,
            data_type,
            ..
        } = e
            && let Some(sql) = d.try_cast(expr, data_type)
        {
            *e = raw_expr(sql);
            return ControlFlow::Continue(());
        }
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_lowercase();
        let first_last = matches!(
            name.as_str(),
            "first_value" | "last_value" | "cohort_first" | "cohort_last"
        );
        if !d.aggregate_filter() && !first_last {
            fold_filter(f);
        }
        let (args, order) = call_args(f);
        let a: Vec<String> = args.iter().map(|x| x.to_string()).collect();
        let cond = f.filter.as_ref().map(|w| w.to_string());
        let filter = cond
            .as_ref()
            .map(|w| format!(" FILTER (WHERE {w})"))
            .unwrap_or_default();
        // The call's ORDER BY as written (expression, descending), or each direction turned
        // around.
        let ordered = |flip: bool| -> Vec<(String, bool)> {
            order
                .iter()
                .map(|o| (o.expr.to_string(), (o.options.asc == Some(false)) != flip))
                .collect()
        };
        let new = match name.as_str() {
            "cohort_json_paths" => Some("NULL".to_string()),
            "cohort_json_get" if a.len() == 2 => literal(&args[1]).map(|p| json_get(d, &a[0], &p)),
            "cohort_json_valid" => d.json_valid(&a),
            "cohort_json_object" if a.len().is_multiple_of(2) => Some(d.json_object(&a)),
            "first_value" | "last_value" if !order.is_empty() => {
                Some(d.first_by(&a[0], &ordered(name == "last_value"), cond.as_deref()))
            }
            "cohort_first" | "cohort_last" if a.len() == 3 => {
                let desc = name == "cohort_last";
                let filter = format!(
                    "{} IS NOT NULL{}",
                    a[1],
                    cond.as_ref()
                        .map(|w| format!(" AND ({w})"))
                        .unwrap_or_default()
                );
                Some(d.first_by(
                    &a[0],
                    &[(a[1].clone(), desc), (a[2].clone(), desc)],
                    Some(&filter),
                ))
            }
            "cohort_mode" if a.len() == 2 => Some(format!(
                "cohort_mode_pick({}{filter}, {})",
                d.collect_values(&a[0]),
                a[1]
            )),
            "cohort_unique" if a.len() == 1 => Some(format!(
                "cohort_sorted_distinct({}{filter})",
                d.collect_values(&a[0])
            )),
            "cohort_unique_count" if a.len() == 1 => {
                Some(format!("count(DISTINCT {}){filter}", a[0]))
            }
            "regexp_like" if a.len() == 2 => Some(d.regexp_like(&a[0], &a[1])),
            // Whole seconds since 1970 (the windows of per-period limits).
            "to_unixtime" if a.len() == 1 => {
                Some(format!("floor({} / 1000000)", d.epoch_micros(&a[0])))
            }
            // The message-id check looks for a NUL character (see `nul_position`).
            "strpos" if a.len() == 2 && literal(&args[1]).as_deref() == Some("\0") => {
                Some(d.nul_position(&a[0]))
            }
            "btrim" => d.btrim(&a),
            "array_sort" if !a.is_empty() => Some(d.array_sort(&a)),
            "array_agg" if order.is_empty() => d.array_agg(&f.to_string()),
            _ => d.rename(&name).map(|to| {
                f.name = ast::ObjectName::from(vec![ast::Ident::new(to)]);
                f.to_string()
            }),
        };
        if let Some(sql) = new {
            *e = raw_expr(sql);
        }
        ControlFlow::Continue(())
    });
}

/// Every `UNION` / `EXCEPT` / `INTERSECT` without a quantifier written `... DISTINCT`, its
/// meaning in standard SQL, for an engine that takes no bare set operation (BigQuery).
pub(super) fn explicit_distinct(stmt: &mut ast::Statement) {
    fn set_expr(e: &mut ast::SetExpr) {
        match e {
            ast::SetExpr::SetOperation {
                left,
                right,
                set_quantifier,
                ..
            } => {
                if *set_quantifier == ast::SetQuantifier::None {
                    *set_quantifier = ast::SetQuantifier::Distinct;
                }
                set_expr(left);
                set_expr(right);
            }
            ast::SetExpr::Query(q) => set_expr(&mut q.body),
            _ => {}
        }
    }
    struct Sets;
    impl ast::VisitorMut for Sets {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            set_expr(&mut q.body);
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(stmt, &mut Sets);
}

/// The text columns of the identity stage's tables: where one is ordered (`MIN`, `MAX`, an
/// `ORDER BY` of a query, a window or an aggregate), `d` orders it byte-wise as DataFusion
/// does (see [`ScriptDialect::byte_order`]).
const TEXT_COLUMNS: [&str; 5] = ["message_id", "id_type", "id_value", "profile_id", "example"];

/// Orders the text columns of `stmt` byte-wise in `d` (see [`TEXT_COLUMNS`]).
pub(super) fn order_text_bytewise(stmt: &mut ast::Statement, d: &dyn ScriptDialect) {
    struct Orderer<'a>(&'a dyn ScriptDialect);
    impl Orderer<'_> {
        fn text(&self, e: &mut ast::Expr) {
            let name = match e {
                ast::Expr::Identifier(i) => &i.value,
                ast::Expr::CompoundIdentifier(p) => match p.last() {
                    Some(i) => &i.value,
                    None => return,
                },
                _ => return,
            };
            if TEXT_COLUMNS.contains(&name.as_str()) {
                let plain = std::mem::replace(e, ast::Expr::Value(ast::Value::Null.into()));
                *e = self.0.byte_order(plain);
            }
        }
        fn order(&self, by: &mut [ast::OrderByExpr]) {
            for o in by {
                self.text(&mut o.expr);
            }
        }
    }
    impl ast::VisitorMut for Orderer<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            if let Some(ast::OrderBy {
                kind: ast::OrderByKind::Expressions(by),
                ..
            }) = &mut q.order_by
            {
                self.order(by);
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
            let ast::Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let min_max = matches!(f.name.to_string().to_lowercase().as_str(), "min" | "max");
            if let ast::FunctionArguments::List(list) = &mut f.args {
                if min_max {
                    for a in &mut list.args {
                        if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                            self.text(x);
                        }
                    }
                }
                for c in &mut list.clauses {
                    if let ast::FunctionArgumentClause::OrderBy(by) = c {
                        self.order(by);
                    }
                }
            }
            self.order(&mut f.within_group);
            if let Some(ast::WindowType::WindowSpec(w)) = &mut f.over {
                self.order(&mut w.order_by);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(stmt, &mut Orderer(d));
}
