//! The starter space written by `cohort init` and run by `cohort demo` (examples/spaces/store/).

/// (path relative to the space root, contents) of every file of the starter space.
pub fn init_files() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "space.yaml",
            include_str!("../../examples/spaces/store/space.yaml"),
        ),
        (
            "identity.yaml",
            include_str!("../../examples/spaces/store/identity.yaml"),
        ),
        (
            "traits/total_revenue.yaml",
            include_str!("../../examples/spaces/store/traits/total_revenue.yaml"),
        ),
        (
            "traits/orders_90d.yaml",
            include_str!("../../examples/spaces/store/traits/orders_90d.yaml"),
        ),
        (
            "queries/lifetime_orders.sql",
            include_str!("../../examples/spaces/store/queries/lifetime_orders.sql"),
        ),
        (
            "queries/lifetime_orders.yaml",
            include_str!("../../examples/spaces/store/queries/lifetime_orders.yaml"),
        ),
        (
            "audiences/big_spenders.yaml",
            include_str!("../../examples/spaces/store/audiences/big_spenders.yaml"),
        ),
    ]
}
