//! The fixed vocabulary of the sample store: event names with their typed properties, trait
//! sets, pages, products, people's names, user agents. Everything the generator can say.
//!
//! Files: this one holds the typed schemas of calls (events, traits, pages) and the product
//! catalog; `words.rs` holds the word lists.

use super::rng::{hash, mix};

mod words;

pub(crate) use words::{
    ACCOUNT_PLANS, ADJECTIVES, ANDROID_UAS, BRANDS, CAMPAIGNS, CANCEL_REASONS, CATEGORIES,
    COMPANY_SUFFIXES, COMPANY_WORDS, COUPONS, EMAIL_DOMAINS, FIRST_NAMES, INDUSTRIES, IOS_UAS,
    LAST_NAMES, LOCALES, NOUNS, PAGES, PAID_PLANS, PAYMENT_METHODS, PLACEHOLDERS, PROMOTIONS,
    REFERRERS, REVIEW_BODIES, SEARCH_QUERIES, SHARE_VIA, SIGNUP_METHODS, WEB_DESKTOP_UAS,
    WEB_MOBILE_UAS,
};

/// The type of one property, trait or flattened warehouse column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Int,
    Float,
    Bool,
}

/// One named, typed property of an event (or trait of an identify / group call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prop {
    pub name: &'static str,
    pub ty: Ty,
}

const fn s(name: &'static str) -> Prop {
    Prop { name, ty: Ty::Str }
}
const fn i(name: &'static str) -> Prop {
    Prop { name, ty: Ty::Int }
}
const fn f(name: &'static str) -> Prop {
    Prop {
        name,
        ty: Ty::Float,
    }
}
const fn b(name: &'static str) -> Prop {
    Prop { name, ty: Ty::Bool }
}

/// A track event: its display name, its warehouse table name and its fixed property schema.
#[derive(Debug)]
pub(crate) struct TrackSpec {
    pub name: &'static str,
    pub table: &'static str,
    pub props: &'static [Prop],
}

macro_rules! track_events {
    ($($id:ident = $name:literal, $table:literal, [$($p:expr),* $(,)?];)*) => {
        /// Indexes into [`TRACKS`].
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum T { $($id),* }
        /// Every track event the store emits, in a fixed order.
        pub(crate) const TRACKS: &[TrackSpec] = &[
            $(TrackSpec { name: $name, table: $table, props: &[$($p),*] }),*
        ];
    };
}

track_events! {
    AppInstalled = "Application Installed", "application_installed", [s("version"), i("build")];
    AppOpened = "Application Opened", "application_opened", [s("version"), i("build"), b("from_background")];
    ProductsSearched = "Products Searched", "products_searched", [s("query"), i("results")];
    ProductListViewed = "Product List Viewed", "product_list_viewed", [s("list_id"), s("category")];
    ProductClicked = "Product Clicked", "product_clicked",
        [s("product_id"), s("sku"), s("category"), s("name"), s("brand"), f("price"), i("position")];
    ProductViewed = "Product Viewed", "product_viewed",
        [s("product_id"), s("sku"), s("category"), s("name"), s("brand"), f("price"), s("currency"), f("value")];
    ProductAdded = "Product Added", "product_added",
        [s("cart_id"), s("product_id"), s("sku"), s("category"), s("name"), s("brand"), f("price"), i("quantity")];
    ProductRemoved = "Product Removed", "product_removed",
        [s("cart_id"), s("product_id"), s("sku"), s("category"), s("name"), s("brand"), f("price"), i("quantity")];
    CartViewed = "Cart Viewed", "cart_viewed", [s("cart_id"), i("products"), f("value")];
    CheckoutStarted = "Checkout Started", "checkout_started",
        [s("order_id"), s("checkout_id"), f("value"), f("revenue"), s("currency"), i("products")];
    CheckoutStepViewed = "Checkout Step Viewed", "checkout_step_viewed", [s("checkout_id"), i("step")];
    PaymentInfoEntered = "Payment Info Entered", "payment_info_entered",
        [s("checkout_id"), s("order_id"), i("step"), s("payment_method")];
    CouponEntered = "Coupon Entered", "coupon_entered", [s("order_id"), s("coupon_id")];
    CouponApplied = "Coupon Applied", "coupon_applied",
        [s("order_id"), s("coupon_id"), s("coupon_name"), f("discount")];
    CouponDenied = "Coupon Denied", "coupon_denied", [s("order_id"), s("coupon_id"), s("reason")];
    OrderCompleted = "Order Completed", "order_completed",
        [s("order_id"), s("checkout_id"), f("total"), f("revenue"), f("subtotal"), f("shipping"),
         f("tax"), f("discount"), s("coupon"), s("currency"), i("products"), i("quantity")];
    OrderRefunded = "Order Refunded", "order_refunded", [s("order_id"), f("total"), s("currency")];
    OrderCancelled = "Order Cancelled", "order_cancelled", [s("order_id"), f("total"), s("currency"), s("reason")];
    PromotionViewed = "Promotion Viewed", "promotion_viewed",
        [s("promotion_id"), s("creative"), s("name"), s("position")];
    PromotionClicked = "Promotion Clicked", "promotion_clicked",
        [s("promotion_id"), s("creative"), s("name"), s("position")];
    WishlistAdded = "Wishlist Product Added", "wishlist_product_added",
        [s("wishlist_id"), s("product_id"), s("sku"), s("category"), s("name"), f("price")];
    WishlistRemoved = "Wishlist Product Removed", "wishlist_product_removed",
        [s("wishlist_id"), s("product_id"), s("sku"), s("category"), s("name"), f("price")];
    ProductShared = "Product Shared", "product_shared",
        [s("share_via"), s("product_id"), s("sku"), s("category"), s("name"), f("price")];
    ReviewSubmitted = "Review Submitted", "review_submitted",
        [s("product_id"), s("review_id"), i("rating"), s("review_body")];
    SignedUp = "Signed Up", "signed_up", [s("method"), s("plan")];
    SignedIn = "Signed In", "signed_in", [s("method")];
    SignedOut = "Signed Out", "signed_out", [];
    EmailOpened = "Email Opened", "email_opened", [s("email_id"), s("email_subject"), s("campaign_name")];
    EmailLinkClicked = "Email Link Clicked", "email_link_clicked",
        [s("email_id"), s("campaign_name"), s("link_url")];
    SubscriptionStarted = "Subscription Started", "subscription_started",
        [s("plan"), s("billing_period"), f("amount"), s("currency")];
    SubscriptionCancelled = "Subscription Cancelled", "subscription_cancelled", [s("plan"), s("reason")];
}

/// The traits of identify calls (Segment's `identifies` table flattens them into these columns).
pub(crate) const USER_TRAITS: &[Prop] = &[
    s("email"),
    s("name"),
    s("first_name"),
    s("last_name"),
    s("plan"),
    s("created_at"),
    s("country"),
];

/// The traits of group calls (the `groups` table's extra columns besides `group_id`).
pub(crate) const ACCOUNT_TRAITS: &[Prop] = &[
    s("name"),
    s("industry"),
    i("employees"),
    s("plan"),
    s("website"),
];

/// The properties of page calls (the `pages` table's extra columns besides `name`).
pub(crate) const PAGE_PROPS: &[Prop] = &[s("path"), s("url"), s("title"), s("referrer")];

/// Screen calls carry only their name.
pub(crate) const NO_PROPS: &[Prop] = &[];

/// The largest number of properties any call carries.
pub(crate) const MAX_PROPS: usize = 12;

/// One product of the catalog.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub id: String,
    pub sku: String,
    pub category: usize,
    pub name: String,
    pub brand: &'static str,
    pub price_cents: u64,
}

/// How many products the store sells.
pub(crate) const CATALOG_SIZE: u64 = 1_500;

/// The store's catalog, fixed by the seed.
pub(crate) fn catalog(seed: u64) -> Vec<Product> {
    (0..CATALOG_SIZE)
        .map(|p| {
            let h = hash(seed, 0xCA7A, p, 0);
            let category = (h % CATEGORIES.len() as u64) as usize;
            let (cat, _, lo, hi) = CATEGORIES[category];
            let nouns = NOUNS[category];
            let h2 = mix(h);
            let adj = ADJECTIVES[(h2 % ADJECTIVES.len() as u64) as usize];
            let noun = nouns[((h2 >> 16) % nouns.len() as u64) as usize];
            let brand = BRANDS[((h2 >> 32) % BRANDS.len() as u64) as usize];
            // Prices skew low inside the category's range and end in .99 or .49.
            let x = super::rng::unit(mix(h2));
            let cents = lo as f64 + (hi - lo) as f64 * x * x;
            let dollars = (cents / 100.0) as u64;
            let price_cents = dollars * 100 + if h2 & 1 == 0 { 99 } else { 49 };
            Product {
                id: format!("prod_{:05}", p + 10_001),
                sku: format!("{}-{:04}", &cat[..3].to_ascii_uppercase(), p + 1),
                category,
                name: format!("{adj} {noun}"),
                brand,
                price_cents,
            }
        })
        .collect()
}

/// Segment's table name for an event name: snake_case of its words.
#[cfg(test)]
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_snake_case_of_event_names() {
        assert!(TRACKS.len() >= 30);
        for t in TRACKS {
            assert_eq!(t.table, snake_case(t.name), "{}", t.name);
            assert!(t.props.len() <= MAX_PROPS);
        }
        let mut names: Vec<_> = TRACKS.iter().map(|t| t.table).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TRACKS.len());
        assert_eq!(TRACKS[T::OrderCompleted as usize].name, "Order Completed");
    }

    #[test]
    fn catalog_is_fixed_by_seed() {
        let a = catalog(1);
        assert_eq!(a.len() as u64, CATALOG_SIZE);
        assert_eq!(a[7].name, catalog(1)[7].name);
        assert!(
            a.iter()
                .all(|p| p.price_cents % 100 == 99 || p.price_cents % 100 == 49)
        );
    }
}
