//! The query language's parser and shape checks: DESIGN.md's examples, precedence, every
//! comparator, reducer and window, spans, JSON, and the wording and place of errors.

use super::ast::*;
use super::*;

fn p(text: &str) -> Expr {
    parse_query(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

fn err(text: &str) -> QueryError {
    match parse_query(text) {
        Ok(e) => panic!("{text} parsed: {e:?}"),
        Err(e) => e,
    }
}

fn at(text: &str, span: Span) -> &str {
    &text[span.start..span.end]
}

/// The first comparison of a condition.
fn compare(e: &Expr) -> (&Operand, Comparator, Option<&Operand>) {
    match e {
        Expr::Compare {
            left, op, right, ..
        } => (left, *op, right.as_ref()),
        other => panic!("not a comparison: {other:?}"),
    }
}

fn chain(o: &Operand) -> &EventChain {
    match o {
        Operand::Event(c) => c,
        other => panic!("not an event: {other:?}"),
    }
}

fn value_chain(e: &Expr) -> &EventChain {
    match e {
        Expr::Value { value, .. } => chain(value),
        other => panic!("not a value: {other:?}"),
    }
}

fn lit(o: Option<&Operand>) -> &Literal {
    match o {
        Some(Operand::Literal { value, .. }) => value,
        other => panic!("not a literal: {other:?}"),
    }
}

fn days(n: u64) -> Duration {
    Duration {
        amount: n,
        unit: TimeUnit::Days,
        parent: false,
    }
}

/// Every node's span lies inside the text, is non-empty, and lies inside its parent's.
fn check_spans(text: &str, e: &Expr, outer: Span) {
    let s = e.span();
    assert!(s.start < s.end && s.end <= text.len(), "{s:?} of {text}");
    assert!(
        outer.start <= s.start && s.end <= outer.end,
        "{s:?} outside {outer:?}"
    );
    match e {
        Expr::Or { items, .. } | Expr::And { items, .. } => {
            items.iter().for_each(|i| check_spans(text, i, s))
        }
        Expr::Not { expr, .. } | Expr::Quantified { expr, .. } => check_spans(text, expr, s),
        Expr::Compare { left, right, .. } => {
            check_operand_spans(text, left, s);
            if let Some(r) = right {
                check_operand_spans(text, r, s);
            }
        }
        Expr::Value { value, .. } => check_operand_spans(text, value, s),
    }
}

fn check_operand_spans(text: &str, o: &Operand, outer: Span) {
    let s = o.span();
    assert!(s.start < s.end, "{o:?}");
    assert!(
        outer.start <= s.start && s.end <= outer.end,
        "{s:?} outside {outer:?}"
    );
    if let Operand::Event(c) = o {
        assert_eq!(&text[c.span.start..c.span.start + 6], "event(");
        assert!(at(text, c.name_span).contains(&c.name));
        for f in &c.filters {
            let fs = f.span();
            assert!(s.start <= fs.start && fs.end <= s.end);
            assert!(at(text, fs).ends_with(')'));
            if let Filter::Where { condition, .. } = f {
                check_spans(text, condition, fs);
            }
        }
        if let Some(r) = &c.reducer {
            assert!(at(text, r.span).ends_with(')'), "{}", at(text, r.span));
            assert_eq!(r.span.end, s.end);
        }
    }
}

const DESIGN_EXAMPLES: [&str; 7] = [
    "event('Order Completed').within(90 days).sum(property('revenue'))",
    "event('Order Completed').where(property('total') >= 100).within(30 days).count() >= 3\n  AND NOT event('Order Refunded').within(90 days).count() >= 1",
    "event('Checkout Started').where(event('Order Completed').within(parent: 7 days).count() = 0).within(7 days).count() >= 1",
    "event('Product Viewed').where(event('Order Completed').where(property('product_id') = property(parent: 'product_id')).within(parent: 2 days).count() = 0).count() >= 1",
    "trait('total_revenue') > 500 AND trait('big_spenders') = true",
    "event('Page Viewed').between(30 days, 90 days).count() >= 1 AND event('Page Viewed').within(30 days).count() = 0",
    "ANY event('Login').within(30 days).count() >= 1          -- account-level: ANY / ALL / NOT ANY users",
];

#[test]
fn every_design_example_parses_with_sound_spans() {
    for text in DESIGN_EXAMPLES {
        let e = p(text);
        check_spans(text, &e, Span::new(0, text.len()));
    }
    // The first is a computed trait, the rest are conditions.
    parse_trait_query(DESIGN_EXAMPLES[0]).unwrap();
    for text in &DESIGN_EXAMPLES[1..6] {
        parse_audience_query(text, EntityType::Users).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    }
    parse_audience_query(DESIGN_EXAMPLES[6], EntityType::Accounts).unwrap();
}

#[test]
fn design_example_trait_has_the_expected_tree() {
    let text = DESIGN_EXAMPLES[0];
    let expected = Expr::Value {
        value: Operand::Event(EventChain {
            name: "Order Completed".into(),
            name_span: Span::new(6, 23),
            filters: vec![Filter::Within {
                window: days(90),
                span: Span::new(25, 40),
            }],
            reducer: Some(Reducer {
                kind: ReducerKind::Sum,
                arg: Some(Box::new(Operand::Property {
                    path: "revenue".into(),
                    parent: false,
                    span: Span::new(45, 64),
                })),
                min_frequency: None,
                span: Span::new(41, 65),
            }),
            span: Span::new(0, 65),
        }),
        span: Span::new(0, 65),
    };
    assert_eq!(p(text), expected);
    assert_eq!(at(text, Span::new(25, 40)), "within(90 days)");
    assert_eq!(at(text, Span::new(41, 65)), "sum(property('revenue'))");
}

#[test]
fn design_example_refunds_is_and_of_compare_and_not() {
    let e = p(DESIGN_EXAMPLES[1]);
    let Expr::And { items, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(items.len(), 2);
    let (left, op, right) = compare(&items[0]);
    assert_eq!(op, Comparator::Ge);
    assert_eq!(lit(right), &Literal::Int(3));
    let c = chain(left);
    assert_eq!(c.filters.len(), 2);
    let Filter::Where { condition, .. } = &c.filters[0] else {
        panic!()
    };
    let (l, op, r) = compare(condition);
    assert!(matches!(l, Operand::Property { path, parent: false, .. } if path == "total"));
    assert_eq!((op, lit(r)), (Comparator::Ge, &Literal::Int(100)));
    let Expr::Not { expr, .. } = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert_eq!(chain(compare(expr).0).name, "Order Refunded");
}

#[test]
fn design_example_funnels_use_parent() {
    let e = p(DESIGN_EXAMPLES[2]);
    let outer = chain(compare(&e).0);
    let Filter::Where { condition, .. } = &outer.filters[0] else {
        panic!()
    };
    let inner = chain(compare(condition).0);
    assert_eq!(
        inner.filters,
        vec![Filter::Within {
            window: Duration {
                amount: 7,
                unit: TimeUnit::Days,
                parent: true
            },
            span: inner.filters[0].span(),
        }]
    );
    assert_eq!(
        outer.filters[1],
        Filter::Within {
            window: days(7),
            span: outer.filters[1].span()
        }
    );

    let e = p(DESIGN_EXAMPLES[3]);
    let outer = chain(compare(&e).0);
    let Filter::Where { condition, .. } = &outer.filters[0] else {
        panic!()
    };
    let inner = chain(compare(condition).0);
    let Filter::Where { condition, .. } = &inner.filters[0] else {
        panic!()
    };
    let (_, _, right) = compare(condition);
    assert!(
        matches!(right, Some(Operand::Property { path, parent: true, .. }) if path == "product_id")
    );
}

#[test]
fn design_example_between_and_any() {
    let e = p(DESIGN_EXAMPLES[5]);
    let Expr::And { items, .. } = &e else {
        panic!()
    };
    assert!(matches!(
        chain(compare(&items[0]).0).filters[0],
        Filter::Between { from, to, .. } if from == days(30) && to == days(90)
    ));
    let e = p(DESIGN_EXAMPLES[6]);
    let Expr::Quantified {
        quantifier, expr, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*quantifier, Quantifier::Any);
    assert_eq!(chain(compare(expr).0).name, "Login");
    // The comment is not part of the tree.
    assert!(at(DESIGN_EXAMPLES[6], e.span()).ends_with(">= 1"));
}

fn shape(e: &Expr) -> String {
    match e {
        Expr::Or { items, .. } => format!(
            "or({})",
            items.iter().map(shape).collect::<Vec<_>>().join(", ")
        ),
        Expr::And { items, .. } => format!(
            "and({})",
            items.iter().map(shape).collect::<Vec<_>>().join(", ")
        ),
        Expr::Not { expr, .. } => format!("not({})", shape(expr)),
        Expr::Quantified {
            quantifier, expr, ..
        } => format!("{quantifier:?}({})", shape(expr)),
        Expr::Compare { left, .. } | Expr::Value { value: left, .. } => match left {
            Operand::Trait { key, .. } => key.clone(),
            _ => "?".into(),
        },
    }
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_and() {
    let cases = [
        (
            "trait('a') OR trait('b') AND trait('c')",
            "or(a, and(b, c))",
        ),
        (
            "trait('a') AND trait('b') OR trait('c')",
            "or(and(a, b), c)",
        ),
        (
            "trait('a') = 1 or trait('b') = 2 or trait('c') = 3",
            "or(a, b, c)",
        ),
        ("trait('a') and trait('b') And trait('c')", "and(a, b, c)"),
        ("NOT trait('a') AND trait('b')", "and(not(a), b)"),
        ("NOT (trait('a') OR trait('b'))", "not(or(a, b))"),
        ("not not trait('a')", "not(not(a))"),
        (
            "(trait('a') OR trait('b')) AND trait('c')",
            "and(or(a, b), c)",
        ),
        (
            "trait('a') AND (trait('b') OR trait('c'))",
            "and(a, or(b, c))",
        ),
        ("((trait('a')))", "a"),
        ("ANY trait('a') AND trait('b')", "and(Any(a), b)"),
        ("ALL (trait('a') OR trait('b'))", "All(or(a, b))"),
        ("NOT ANY trait('a') > 1", "NotAny(a)"),
        ("not any trait('a')", "NotAny(a)"),
        ("NOT (ANY trait('a'))", "not(Any(a))"),
        ("NOT ALL trait('a')", "not(All(a))"),
    ];
    for (text, expected) in cases {
        let e = p(text);
        assert_eq!(shape(&e), expected, "{text}");
        check_spans(text, &e, Span::new(0, text.len()));
    }
}

#[test]
fn parentheses_are_inside_the_span() {
    let text = "trait('a') AND (trait('b') OR trait('c'))";
    let e = p(text);
    assert_eq!(e.span(), Span::new(0, text.len()));
    let Expr::And { items, .. } = &e else {
        panic!()
    };
    assert_eq!(at(text, items[1].span()), "(trait('b') OR trait('c'))");
    // A parenthesized operand can still be compared.
    let e = p("(trait('a')) >= 2");
    let (l, op, r) = compare(&e);
    assert!(matches!(l, Operand::Trait { key, .. } if key == "a"));
    assert_eq!((op, lit(r)), (Comparator::Ge, &Literal::Int(2)));
}

#[test]
fn every_symbol_and_word_comparator() {
    let cases: [(&str, Comparator, Option<Literal>); 19] = [
        ("trait('a') = 1", Comparator::Eq, Some(Literal::Int(1))),
        ("trait('a') == 1", Comparator::Eq, Some(Literal::Int(1))),
        ("trait('a') != 1", Comparator::Ne, Some(Literal::Int(1))),
        ("trait('a') <> 1", Comparator::Ne, Some(Literal::Int(1))),
        ("trait('a') > 1", Comparator::Gt, Some(Literal::Int(1))),
        ("trait('a') >= 1", Comparator::Ge, Some(Literal::Int(1))),
        ("trait('a') < 1", Comparator::Lt, Some(Literal::Int(1))),
        ("trait('a') <= 1", Comparator::Le, Some(Literal::Int(1))),
        (
            "trait('a') contains 'x'",
            Comparator::Contains,
            Some(Literal::String("x".into())),
        ),
        (
            "trait('a') starts_with 'x'",
            Comparator::StartsWith,
            Some(Literal::String("x".into())),
        ),
        (
            "trait('a') ends_with 'x'",
            Comparator::EndsWith,
            Some(Literal::String("x".into())),
        ),
        (
            "trait('a') one_of ['x', 'y']",
            Comparator::OneOf,
            Some(Literal::List(vec![
                Literal::String("x".into()),
                Literal::String("y".into()),
            ])),
        ),
        (
            "trait('a') none_of ('x', 2)",
            Comparator::NoneOf,
            Some(Literal::List(vec![
                Literal::String("x".into()),
                Literal::Int(2),
            ])),
        ),
        ("trait('a') exists", Comparator::Exists, None),
        ("trait('a') absent", Comparator::Absent, None),
        (
            "trait('a') before_date '2024-01-01'",
            Comparator::BeforeDate,
            Some(Literal::String("2024-01-01".into())),
        ),
        (
            "trait('a') after_date '2024-01-01'",
            Comparator::AfterDate,
            Some(Literal::String("2024-01-01".into())),
        ),
        (
            "trait('a') within_last 7 days",
            Comparator::WithinLast,
            Some(Literal::Duration(days(7))),
        ),
        (
            "trait('a') CONTAINS 'x'",
            Comparator::Contains,
            Some(Literal::String("x".into())),
        ),
    ];
    for (text, op, right) in cases {
        let e = p(text);
        assert_eq!(e.span(), Span::new(0, text.len()), "{text}");
        let (_, got, r) = compare(&e);
        assert_eq!(got, op, "{text}");
        assert_eq!(r.map(|_| lit(r).clone()), right, "{text}");
        parse_audience_query(text, EntityType::Users).unwrap();
    }
}

#[test]
fn method_style_comparators() {
    let cases: [(&str, Comparator, Option<Literal>); 9] = [
        (
            "trait('a').contains('x')",
            Comparator::Contains,
            Some(Literal::String("x".into())),
        ),
        (
            "trait('a').starts_with(\"x\")",
            Comparator::StartsWith,
            Some(Literal::String("x".into())),
        ),
        (
            "trait('a').ends_with('x')",
            Comparator::EndsWith,
            Some(Literal::String("x".into())),
        ),
        ("trait('a').exists()", Comparator::Exists, None),
        ("trait('a').absent()", Comparator::Absent, None),
        (
            "trait('a').one_of('x', 'y')",
            Comparator::OneOf,
            Some(Literal::List(vec![
                Literal::String("x".into()),
                Literal::String("y".into()),
            ])),
        ),
        (
            "trait('a').none_of(['x'])",
            Comparator::NoneOf,
            Some(Literal::List(vec![Literal::String("x".into())])),
        ),
        (
            "trait('a').within_last(2 weeks)",
            Comparator::WithinLast,
            Some(Literal::Duration(Duration {
                amount: 2,
                unit: TimeUnit::Weeks,
                parent: false,
            })),
        ),
        (
            "trait('a').after_date('2024-01-01')",
            Comparator::AfterDate,
            Some(Literal::String("2024-01-01".into())),
        ),
    ];
    for (text, op, right) in cases {
        let e = p(text);
        assert_eq!(e.span(), Span::new(0, text.len()), "{text}");
        let (_, got, r) = compare(&e);
        assert_eq!(got, op, "{text}");
        assert_eq!(r.map(|_| lit(r).clone()), right, "{text}");
    }
    // On an event chain, after its reducer, and inside where.
    let text = "event('Signed Up').where(context('page.path').starts_with('/pricing')).count() > 0";
    let e = p(text);
    check_spans(text, &e, Span::new(0, text.len()));
    let e = p("event('Signed Up').last(property('plan')).one_of('pro', 'team')");
    assert_eq!(compare(&e).1, Comparator::OneOf);
}

#[test]
fn right_operands_may_be_any_operand() {
    let e = p("trait('a') >= trait('b')");
    let (_, _, r) = compare(&e);
    assert!(matches!(r, Some(Operand::Trait { key, .. }) if key == "b"));
    let e = p("trait('a') one_of trait('plans')");
    let (_, _, r) = compare(&e);
    assert!(matches!(r, Some(Operand::Trait { .. })));
    let e = p("trait('a') = literal('x')");
    let (_, _, r) = compare(&e);
    assert_eq!(lit(r), &Literal::String("x".into()));
    let e = p("literal(5) < event('A').count()");
    let (l, _, r) = compare(&e);
    assert!(matches!(
        l,
        Operand::Literal {
            value: Literal::Int(5),
            ..
        }
    ));
    assert_eq!(
        chain(r.unwrap()).reducer.as_ref().unwrap().kind,
        ReducerKind::Count
    );
}

#[test]
fn literals() {
    let right = |text: &str| lit(compare(&p(text)).2).clone();
    assert_eq!(right("trait('a') = 42"), Literal::Int(42));
    assert_eq!(right("trait('a') = -42"), Literal::Int(-42));
    assert_eq!(right("trait('a') = 4.25"), Literal::Float(4.25));
    assert_eq!(right("trait('a') = -0.5"), Literal::Float(-0.5));
    assert_eq!(
        right("trait('a') = 'it\\'s'"),
        Literal::String("it's".into())
    );
    assert_eq!(
        right("trait('a') = \"say \\\"hi\\\"\\n\""),
        Literal::String("say \"hi\"\n".into())
    );
    assert_eq!(
        right("trait('a') = \"it's\""),
        Literal::String("it's".into())
    );
    assert_eq!(
        right("trait('a') = 'back\\\\slash'"),
        Literal::String("back\\slash".into())
    );
    assert_eq!(
        right("trait('a') = 'café ☕'"),
        Literal::String("café ☕".into())
    );
    assert_eq!(right("trait('a') = true"), Literal::Bool(true));
    assert_eq!(right("trait('a') = FALSE"), Literal::Bool(false));
    assert_eq!(right("trait('a') != null"), Literal::Null);
    assert_eq!(right("trait('a') = literal(null)"), Literal::Null);
    assert_eq!(right("trait('a') = literal(-3)"), Literal::Int(-3));
    assert_eq!(
        right("trait('a') one_of [1, 2.5, 'x', true, null,]"),
        Literal::List(vec![
            Literal::Int(1),
            Literal::Float(2.5),
            Literal::String("x".into()),
            Literal::Bool(true),
            Literal::Null
        ])
    );
    assert_eq!(right("trait('a') one_of []"), Literal::List(vec![]));
    assert_eq!(
        right("trait('a') = 3 hours"),
        Literal::Duration(Duration {
            amount: 3,
            unit: TimeUnit::Hours,
            parent: false
        })
    );
}

#[test]
fn a_bare_operand_is_a_value() {
    let text = "trait('vip')";
    assert_eq!(
        p(text),
        Expr::Value {
            value: Operand::Trait {
                key: "vip".into(),
                span: Span::new(0, 12)
            },
            span: Span::new(0, 12)
        }
    );
    let e = p("event('Login').within(7 days) AND NOT trait('churned')");
    let Expr::And { items, .. } = &e else {
        panic!()
    };
    assert!(value_chain(&items[0]).reducer.is_none());
    parse_audience_query(
        "event('Login').within(7 days) AND NOT trait('churned')",
        EntityType::Users,
    )
    .unwrap();
}

#[test]
fn every_reducer() {
    let cases: [(&str, ReducerKind, Option<&str>, Option<u64>); 13] = [
        ("event('A').count()", ReducerKind::Count, None, None),
        (
            "event('A').sum(property('x'))",
            ReducerKind::Sum,
            Some("x"),
            None,
        ),
        (
            "event('A').avg(property('x'))",
            ReducerKind::Avg,
            Some("x"),
            None,
        ),
        (
            "event('A').min(property('x'))",
            ReducerKind::Min,
            Some("x"),
            None,
        ),
        (
            "event('A').max(property('x'))",
            ReducerKind::Max,
            Some("x"),
            None,
        ),
        (
            "event('A').mode(property('x'))",
            ReducerKind::Mode,
            Some("x"),
            None,
        ),
        (
            "event('A').mode(property('plan'), 2)",
            ReducerKind::Mode,
            Some("plan"),
            Some(2),
        ),
        (
            "event('A').first(property('x'))",
            ReducerKind::First,
            Some("x"),
            None,
        ),
        (
            "event('A').last(property('x'))",
            ReducerKind::Last,
            Some("x"),
            None,
        ),
        (
            "event('A').unique(property('x'))",
            ReducerKind::Unique,
            Some("x"),
            None,
        ),
        (
            "event('A').unique(property('x')).count()",
            ReducerKind::UniqueCount,
            Some("x"),
            None,
        ),
        (
            "event('A').within(7 days).unique(context('page.path')).count()",
            ReducerKind::UniqueCount,
            Some("page.path"),
            None,
        ),
        (
            "event('A').last(context('campaign.name'))",
            ReducerKind::Last,
            Some("campaign.name"),
            None,
        ),
    ];
    for (text, kind, arg, min_frequency) in cases {
        let e = parse_trait_query(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let c = value_chain(&e);
        assert_eq!(c.span, Span::new(0, text.len()), "{text}");
        let r = c.reducer.as_ref().unwrap();
        assert_eq!(r.kind, kind, "{text}");
        assert_eq!(r.min_frequency, min_frequency, "{text}");
        assert_eq!(r.span.end, text.len(), "{text}");
        let got = r.arg.as_deref().map(|a| match a {
            Operand::Property { path, .. } | Operand::Context { path, .. } => path.as_str(),
            other => panic!("{other:?}"),
        });
        assert_eq!(got, arg, "{text}");
    }
    let text = "event('A').unique(property('x')).count()";
    let r = value_chain(&p(text)).reducer.clone().unwrap();
    assert_eq!(at(text, r.span), "unique(property('x')).count()");
}

#[test]
fn windows_units_and_filter_order() {
    let units = [
        ("1 minute", 1, TimeUnit::Minutes),
        ("5 minutes", 5, TimeUnit::Minutes),
        ("1 hour", 1, TimeUnit::Hours),
        ("12 hours", 12, TimeUnit::Hours),
        ("1 day", 1, TimeUnit::Days),
        ("90 days", 90, TimeUnit::Days),
        ("1 week", 1, TimeUnit::Weeks),
        ("2 weeks", 2, TimeUnit::Weeks),
        ("3 DAYS", 3, TimeUnit::Days),
    ];
    for (d, amount, unit) in units {
        let text = format!("event('A').within({d}).count()");
        let c = value_chain(&p(&text)).clone();
        assert_eq!(
            c.filters,
            vec![Filter::Within {
                window: Duration {
                    amount,
                    unit,
                    parent: false
                },
                span: Span::new(11, 19 + d.len()),
            }],
            "{text}"
        );
    }
    assert_eq!(
        Duration {
            amount: 2,
            unit: TimeUnit::Weeks,
            parent: false
        }
        .seconds(),
        1_209_600
    );

    // Filters in any order, all kept in the order written.
    let text =
        "event('A').within(30 days).where(property('x') = 1).between(1 day, 2 weeks).count()";
    let c = value_chain(&p(text)).clone();
    let kinds: Vec<&str> = c
        .filters
        .iter()
        .map(|f| match f {
            Filter::Where { .. } => "where",
            Filter::Within { .. } => "within",
            Filter::Between { .. } => "between",
            Filter::Since { .. } => "since",
        })
        .collect();
    assert_eq!(kinds, ["within", "where", "between"]);
    assert_eq!(at(text, c.filters[2].span()), "between(1 day, 2 weeks)");
    assert!(matches!(c.filters[2], Filter::Between { from, to, .. }
        if from == Duration { amount: 1, unit: TimeUnit::Days, parent: false }
        && to == Duration { amount: 2, unit: TimeUnit::Weeks, parent: false }));
    // between(0, N) is within(N).
    p("event('A').between(0 days, 30 days).count()");

    // within(parent: ...) inside where.
    let text = "event('A').where(event('B').within(parent: 3 hours)).count() >= 1";
    let e = parse_audience_query(text, EntityType::Users).unwrap();
    let Filter::Where { condition, .. } = &chain(compare(&e).0).filters[0] else {
        panic!()
    };
    assert_eq!(
        value_chain(condition).filters[0],
        Filter::Within {
            window: Duration {
                amount: 3,
                unit: TimeUnit::Hours,
                parent: true
            },
            span: Span::new(28, 51),
        }
    );
    assert_eq!(at(text, Span::new(28, 51)), "within(parent: 3 hours)");
}

#[test]
fn extractors() {
    let text = "event('A').where(property('a.b') = context('c.d') AND event('B').where(property(parent: 'x') = property('x')).count() = 0).count() >= 1";
    let e = parse_audience_query(text, EntityType::Users).unwrap();
    check_spans(text, &e, Span::new(0, text.len()));
    let Filter::Where { condition, .. } = &chain(compare(&e).0).filters[0] else {
        panic!()
    };
    let Expr::And { items, .. } = &**condition else {
        panic!()
    };
    let (l, _, r) = compare(&items[0]);
    assert_eq!(
        l,
        &Operand::Property {
            path: "a.b".into(),
            parent: false,
            span: Span::new(17, 32)
        }
    );
    assert_eq!(
        r,
        Some(&Operand::Context {
            path: "c.d".into(),
            span: Span::new(35, 49)
        })
    );
    let e = p("trait(\"a b\") = literal(\"q\")");
    let (_, _, r) = compare(&e);
    assert_eq!(lit(r), &Literal::String("q".into()));
    let e = p("event(\"It's\").count() > 0");
    assert_eq!(chain(compare(&e).0).name, "It's");
}

#[test]
fn json_serialization() {
    let e =
        p("trait('total_revenue') > 500 AND event('Order Completed').within(30 days).count() >= 1");
    let json = serde_json::to_value(&e).unwrap();
    let expected = serde_json::json!({
        "kind": "and",
        "items": [
            {
                "kind": "compare",
                "left": {"kind": "trait", "key": "total_revenue", "span": {"start": 0, "end": 22}},
                "op": "gt",
                "right": {"kind": "literal", "value": {"type": "int", "value": 500}, "span": {"start": 25, "end": 28}},
                "span": {"start": 0, "end": 28}
            },
            {
                "kind": "compare",
                "left": {
                    "kind": "event",
                    "name": "Order Completed",
                    "name_span": {"start": 39, "end": 56},
                    "filters": [{
                        "kind": "within",
                        "window": {"amount": 30, "unit": "days", "parent": false},
                        "span": {"start": 58, "end": 73}
                    }],
                    "reducer": {"kind": "count", "arg": null, "min_frequency": null, "span": {"start": 74, "end": 81}},
                    "span": {"start": 33, "end": 81}
                },
                "op": "ge",
                "right": {"kind": "literal", "value": {"type": "int", "value": 1}, "span": {"start": 85, "end": 86}},
                "span": {"start": 33, "end": 86}
            }
        ],
        "span": {"start": 0, "end": 86}
    });
    assert_eq!(
        json,
        expected,
        "{}",
        serde_json::to_string_pretty(&json).unwrap()
    );
}

/// Parse errors: the message, and the text the span covers.
#[test]
fn parse_errors_say_what_was_expected_and_where() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "event('Order Completed'.count()",
            "expected `)` after the event name, found `.`",
            ".",
        ),
        (
            "evnt('Order Completed').count()",
            "unknown function `evnt`",
            "evnt",
        ),
        (
            "event('Order Completed).count()",
            "unterminated string: expected a closing `'`",
            "'",
        ),
        (
            "event('A').within(3 months).count()",
            "unknown time unit `months`",
            "months",
        ),
        (
            "event('A').within(30).count()",
            "expected a time unit (minutes, hours, days or weeks) after `30`, found `)`",
            ")",
        ),
        (
            "event('A').sum('revenue')",
            "expected `property('...')` or `context('...')` as the argument of `.sum(...)`, found a string",
            "'revenue'",
        ),
        (
            "event('A').count(property('x'))",
            "expected `)`: `.count()` takes no argument, found `property`",
            "property",
        ),
        (
            "event('A').sum()",
            "expected a property to reduce in `.sum(...)`, found `)`",
            ")",
        ),
        (
            "event('A').avg(property('x'), 2)",
            "`.avg(...)` takes one argument",
            "2",
        ),
        (
            "event('A').mode(property('x'), 0)",
            "expected the minimum frequency of `.mode(...)`, a whole number of at least 1, found `0`",
            "0",
        ),
        (
            "trait('plan').where(property('x') = 1)",
            "`.where(...)` applies only to `event(...)`, not to `trait(...)`",
            "where",
        ),
        (
            "event('A').count().within(7 days)",
            "`.within(...)` comes after the reducer `.count(...)`",
            "within",
        ),
        (
            "event('A').cnt()",
            "unknown method `.cnt` on `event(...)`",
            "cnt",
        ),
        (
            "trait('a') > 1 trait('b') > 2",
            "expected `AND`, `OR` or the end of the query after the number `1`, found `trait`",
            "trait",
        ),
        (
            "(trait('a') > 1",
            "expected `)` to close the `(`, found the end of the query",
            "",
        ),
        ("trait('a') > 1)", "unmatched `)`: no `(` is open here", ")"),
        (
            "trait('a') >",
            "expected a value after `>`, found the end of the query",
            "",
        ),
        (
            "trait('a') > 1 AND",
            "expected a condition, found the end of the query",
            "",
        ),
        ("trait('a') && trait('b')", "unexpected character `&`", "&"),
        (
            "trait('a') = 'x\\q'",
            "unknown escape `\\q` in a string",
            "\\q",
        ),
        (
            "event('A').between(90 days, 30 days).count()",
            "`.between(A, B)` needs A shorter than B",
            "90 days, 30 days",
        ),
        (
            "event('A').within(1.5 days).count()",
            "a duration is a whole number of units",
            "1.5",
        ),
        (
            "trait('a') containz 'x'",
            "expected `AND`, `OR` or the end of the query after `)`, found `containz`",
            "containz",
        ),
        ("", "the query is empty", ""),
        (
            "event('A').unique(property('x')).sum(property('y'))",
            "`.sum(...)` follows the reducer `.unique(...)`: an event has one reducer",
            "sum",
        ),
        (
            "trait('a') within_last 7",
            "expected a time unit (minutes, hours, days or weeks) after `7`, found the end of the query",
            "",
        ),
        (
            "trait('a') = 99999999999999999999",
            "`99999999999999999999` is too large for a whole number",
            "99999999999999999999",
        ),
    ];
    for (text, message, covered) in cases {
        let e = err(text);
        assert_eq!(e.message, *message, "{text}");
        assert_eq!(at(text, e.span), *covered, "{text}: span {:?}", e.span);
    }
}

#[test]
fn parse_errors_help() {
    let help = |text: &str| err(text).help.unwrap_or_default();
    assert_eq!(help("evnt('A').count()"), "did you mean `event`?");
    assert_eq!(help("Event('A').count()"), "did you mean `event`?");
    assert!(
        help("count('A')").contains("is a method"),
        "{}",
        help("count('A')")
    );
    assert_eq!(
        help("event('A').within(2 dyas).count()"),
        "did you mean `days`?"
    );
    assert!(help("event('A').within(3 months).count()").contains("30 days"));
    assert_eq!(help("event('A').cuont()"), "did you mean `count`?");
    assert_eq!(
        help("event('A').sum('revenue')"),
        "write `property('revenue')`"
    );
    assert_eq!(help("trait('a') containz 'x'"), "did you mean `contains`?");
    assert_eq!(
        help("trait('a') = 1 ADN trait('b') = 2"),
        "did you mean `AND`?"
    );
    assert!(help("trait('a') || trait('b')").contains("OR"));
    assert!(help("event(Order).count()").contains("'Order'"));
    assert!(help("trait('a') = ‘x’").contains("straight quotes"));
    assert!(help("event('A').count(property('x'))").contains("unique"));
}

#[test]
fn trait_shape_is_an_event_with_a_reducer() {
    let cases = [
        ("event('A')", "event('A')"),
        ("event('A').within(7 days)", "event('A').within(7 days)"),
        ("trait('a')", "trait('a')"),
        ("event('A').count() > 1", "event('A').count() > 1"),
        (
            "event('A').count() AND trait('b')",
            "event('A').count() AND trait('b')",
        ),
        ("42", "42"),
    ];
    for (text, covered) in cases {
        let e = parse_trait_query(text).unwrap_err();
        assert_eq!(
            e.message,
            "a computed trait is an event with a reducer, e.g. event('Order Completed').within(90 days).sum(property('revenue'))",
            "{text}"
        );
        assert_eq!(at(text, e.span), covered, "{text}");
    }
    assert!(
        parse_trait_query("event('A')")
            .unwrap_err()
            .help
            .unwrap()
            .contains(".count()")
    );
    // within(parent:) needs a parent event, also in a trait.
    let e = parse_trait_query("event('A').within(parent: 7 days).count()").unwrap_err();
    assert!(e.message.contains("needs a parent event"), "{e:?}");
}

#[test]
fn audience_shape_is_a_condition() {
    let bad: &[(&str, &str, &str)] = &[
        ("42", "a number on its own is not a condition", "42"),
        (
            "event('A').count()",
            "`.count(...)` gives a value, not a condition",
            "event('A').count()",
        ),
        (
            "event('A') >= 1",
            "an event without a reducer is a condition, not a value to compare",
            "event('A')",
        ),
        (
            "property('plan') = 'pro'",
            "`property(...)` is a property of an event, so it belongs inside `.where(...)` or a reducer",
            "property('plan')",
        ),
        (
            "event('A').where(property(parent: 'x') = 1).count() >= 1",
            "`property(parent: ...)` needs a parent event: use it inside the `.where(...)` of an event that is itself inside a `.where(...)`",
            "property(parent: 'x')",
        ),
        (
            "event('A').within(parent: 2 days).count() >= 1",
            "`.within(parent: ...)` needs a parent event: use it on an event inside another event's `.where(...)`",
            "within(parent: 2 days)",
        ),
        (
            "ANY trait('a') = 1",
            "`ANY`, `ALL` and `NOT ANY` are about the users of an account, and this audience is about users",
            "ANY trait('a') = 1",
        ),
        (
            "event('A').where(ANY trait('a')).count() >= 1",
            "`ANY`, `ALL` and `NOT ANY` apply to an account's users and cannot be used inside `.where(...)`",
            "ANY trait('a')",
        ),
    ];
    for (text, message, covered) in bad {
        let e = parse_audience_query(text, EntityType::Users).unwrap_err();
        assert_eq!(e.message, *message, "{text}");
        assert_eq!(at(text, e.span), *covered, "{text}");
    }
    let e = parse_audience_query("ANY ALL trait('a')", EntityType::Accounts).unwrap_err();
    assert!(e.message.contains("cannot nest"), "{e:?}");
    parse_audience_query(
        "trait('plan') = 'pro' AND NOT ANY trait('churned')",
        EntityType::Accounts,
    )
    .unwrap();
    parse_audience_query(
        "event('A').where(property('gift')).count() >= 1",
        EntityType::Users,
    )
    .unwrap();
}

fn loc(line: usize, col: usize) -> Loc {
    Loc {
        file: "traits/x.yaml".into(),
        line,
        col,
        len: 1,
    }
}

#[test]
fn span_loc_maps_quoted_and_block_text() {
    // query: "event('A').cnt()"  -- the text starts at column 9.
    let text = "event('A').cnt()";
    let l = span_loc(&loc(1, 9), text, Span::new(11, 14));
    assert_eq!((l.line, l.col, l.len), (1, 20, 3));
    // Columns count characters, not bytes.
    let text = "event('Café ☕').cnt()";
    let e = err(text);
    let l = span_loc(&loc(2, 9), text, e.span);
    assert_eq!((l.line, l.col, l.len), (2, 9 + 16, 3));
    // query: |
    //   trait('a') > 1
    //     AND event('A').cnt()
    let text = "trait('a') > 1\n  AND event('A').cnt()\n";
    let e = err(text);
    let l = span_loc(&loc(2, 3), text, e.span);
    assert_eq!((l.line, l.col, l.len), (3, 3 + 17, 3));
    // A span over several lines underlines the rest of its first line; the end is 1 wide.
    let l = span_loc(&loc(2, 3), text, Span::new(11, 30));
    assert_eq!((l.line, l.col, l.len), (2, 14, 3));
    let l = span_loc(&loc(2, 3), text, Span::new(text.len(), text.len()));
    assert_eq!((l.line, l.col, l.len), (4, 3, 1));
}

#[test]
fn query_diagnostic_carries_message_help_and_place() {
    let text = "evnt('A').count()";
    let e = err(text);
    let d = query_diagnostic(&loc(1, 9), text, &e);
    assert!(d.is_error());
    assert_eq!(d.message, "unknown function `evnt`");
    assert_eq!(d.help.as_deref(), Some("did you mean `event`?"));
    assert_eq!(
        d.loc,
        Some(Loc {
            len: 4,
            ..loc(1, 9)
        })
    );
}

#[test]
fn parsed_definitions_report_at_their_file() {
    let def = ComputedTraitDef {
        key: "x".into(),
        file: "traits/x.yaml".into(),
        query: "event('A').within(2 fortnights).count()".into(),
        query_loc: loc(1, 9),
        entity: EntityType::Users,
        schedule: None,
        description: None,
        backfill: true,
        first_seen: None,
    };
    let d = parsed_trait(&def).unwrap_err();
    assert_eq!(
        d.to_string(),
        "error: traits/x.yaml:1:29: unknown time unit `fortnights`"
    );
    let ok = ComputedTraitDef {
        query: "event('A').count()".into(),
        ..def
    };
    assert!(parsed_trait(&ok).is_ok());
    let aud = AudienceDef {
        key: "a".into(),
        file: "audiences/a.yaml".into(),
        name: "a".into(),
        query: "trait('x') >= 1".into(),
        query_loc: loc(2, 8),
        entity: EntityType::Users,
        include_anonymous: true,
        destinations: vec![],
        schedule: None,
        description: None,
        backfill: true,
        first_seen: None,
    };
    assert!(parsed_audience(&aud).is_ok());
    let bad = AudienceDef {
        query: "trait('x') >= ".into(),
        ..aud
    };
    let d = parsed_audience(&bad).unwrap_err();
    assert_eq!(d.loc.unwrap().col, 8 + 14);
}
