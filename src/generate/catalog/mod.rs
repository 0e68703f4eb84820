//! The fixed vocabulary of the sample store: event names with their typed properties, trait
//! sets, pages, products, people's names, user agents. Everything the generator can say.

use super::rng::{hash, mix};

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

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Ava",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Levi",
    "Charlotte",
    "Ezra",
    "Harper",
    "Asher",
    "Luna",
    "James",
    "Aisha",
    "Wei",
    "Priya",
    "Kenji",
    "Fatima",
    "Diego",
    "Chloé",
    "Björn",
    "Zoë",
    "Omar",
    "Yuki",
    "Ingrid",
    "Rahul",
    "Sofía",
    "Malik",
    "Hana",
    "Pierre",
    "Leila",
    "Tomás",
    "Grace",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Nguyen",
    "Patel",
    "Kim",
    "Müller",
    "O'Brien",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Kowalski",
    "Silva",
    "Chen",
    "Singh",
    "Novak",
    "Haddad",
    "Larsen",
    "Costa",
    "Ivanova",
];

pub(crate) const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
    "fastmail.com",
    "example.org",
];

/// (country, locale) pairs.
pub(crate) const LOCALES: &[(&str, &str)] = &[
    ("US", "en-US"),
    ("US", "en-US"),
    ("US", "en-US"),
    ("US", "es-US"),
    ("GB", "en-GB"),
    ("GB", "en-GB"),
    ("CA", "en-CA"),
    ("CA", "fr-CA"),
    ("DE", "de-DE"),
    ("FR", "fr-FR"),
    ("ES", "es-ES"),
    ("NL", "nl-NL"),
    ("BR", "pt-BR"),
    ("JP", "ja-JP"),
    ("IN", "en-IN"),
    ("AU", "en-AU"),
];

pub(crate) const PAID_PLANS: &[&str] = &["plus", "pro"];

pub(crate) const CATEGORIES: &[(&str, &str, u32, u32)] = &[
    // (name, url slug, min price cents, max price cents)
    ("Kitchen", "kitchen", 599, 24_999),
    ("Home Decor", "home-decor", 999, 39_999),
    ("Electronics", "electronics", 1_499, 149_999),
    ("Books", "books", 499, 5_999),
    ("Outdoor", "outdoor", 1_999, 59_999),
    ("Apparel", "apparel", 1_299, 19_999),
    ("Shoes", "shoes", 3_999, 24_999),
    ("Beauty", "beauty", 499, 9_999),
    ("Toys", "toys", 799, 12_999),
    ("Grocery", "grocery", 199, 4_999),
    ("Sports", "sports", 999, 49_999),
    ("Pets", "pets", 399, 14_999),
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "Classic",
    "Organic",
    "Compact",
    "Deluxe",
    "Everyday",
    "Smart",
    "Vintage",
    "Ultralight",
    "Recycled",
    "Premium",
    "Essential",
    "Handmade",
    "Nordic",
    "Rustic",
    "Pro",
    "Mini",
];

pub(crate) const NOUNS: &[&[&str]] = &[
    &[
        "Chef's Knife",
        "Cast Iron Skillet",
        "Pour-Over Kettle",
        "Cutting Board",
        "Spice Rack",
    ],
    &[
        "Throw Pillow",
        "Table Lamp",
        "Wall Clock",
        "Ceramic Vase",
        "Area Rug",
    ],
    &[
        "Wireless Earbuds",
        "USB-C Charger",
        "Smart Speaker",
        "4K Monitor",
        "Mechanical Keyboard",
    ],
    &[
        "Cookbook",
        "Mystery Novel",
        "Travel Guide",
        "Poetry Collection",
        "Field Journal",
    ],
    &[
        "Camping Tent",
        "Sleeping Bag",
        "Trail Backpack",
        "Headlamp",
        "Water Filter",
    ],
    &[
        "Hoodie",
        "Rain Jacket",
        "Linen Shirt",
        "Wool Socks",
        "Denim Jeans",
    ],
    &[
        "Running Shoes",
        "Hiking Boots",
        "Sneakers",
        "Sandals",
        "Loafers",
    ],
    &[
        "Face Serum",
        "Lip Balm",
        "Shampoo Bar",
        "Sunscreen",
        "Hand Cream",
    ],
    &[
        "Building Blocks",
        "Puzzle",
        "Plush Bear",
        "Board Game",
        "Kite",
    ],
    &[
        "Coffee Beans",
        "Olive Oil",
        "Dark Chocolate",
        "Green Tea",
        "Granola",
    ],
    &[
        "Yoga Mat",
        "Dumbbell Set",
        "Tennis Racket",
        "Bike Helmet",
        "Jump Rope",
    ],
    &["Dog Bed", "Cat Tree", "Chew Toy", "Pet Bowl", "Leash"],
];

pub(crate) const BRANDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Lumen & Co",
    "Fjord",
    "Basecamp",
    "Kōji",
    "Maison Verte",
    "Parcel",
    "Tidewater",
    "Quarry",
    "Sol",
    "Hearth",
];

pub(crate) const SEARCH_QUERIES: &[&str] = &[
    "running shoes",
    "coffee",
    "gift for dad",
    "usb c charger",
    "yoga mat",
    "tent 4 person",
    "12\" skillet",
    "café mug",
    "wireless earbuds",
    "dog bed large",
    "sunscreen spf 50",
    "board games",
    "rain jacket women",
    "mechanical keyboard",
    "olive oil",
    "black friday deals",
    "puzzle 1000 pieces",
    "hiking boots",
    "face serum",
    "kids toys",
    "lamp",
    "socks",
    "back\\slash test",
    "organic granola",
    "4k monitor",
    "bike helmet",
    "green tea",
    "loafers",
];

/// Pages (web) and screens (apps) share these names.
pub(crate) const PAGES: &[(&str, &str, &str)] = &[
    // (name, path, title)
    ("Home", "/", "Shop — Home"),
    ("Category", "/c/", "Shop — Category"),
    ("Search", "/search", "Shop — Search results"),
    ("Product", "/p/", "Shop — Product"),
    ("Cart", "/cart", "Shop — Your cart"),
    ("Checkout", "/checkout", "Shop — Checkout"),
    (
        "Order Confirmation",
        "/checkout/thank-you",
        "Shop — Thank you",
    ),
    ("Account", "/account", "Shop — Your account"),
    ("Sign Up", "/signup", "Shop — Create an account"),
    ("Login", "/login", "Shop — Sign in"),
    ("Wishlist", "/account/wishlist", "Shop — Wishlist"),
    ("Help", "/help", "Shop — Help center"),
];

pub(crate) const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.instagram.com/",
    "https://t.co/abc123",
    "https://www.facebook.com/",
    "https://news.ycombinator.com/",
    "https://mail.example.org/",
];

pub(crate) const WEB_DESKTOP_UAS: &[(&str, &str)] = &[
    // (user agent, os name)
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Mac OS X",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Windows",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
        "Linux",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mac OS X",
    ),
];

pub(crate) const WEB_MOBILE_UAS: &[(&str, &str)] = &[
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "iOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Android",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36",
        "Android",
    ),
];

pub(crate) const IOS_UAS: &[&str] = &[
    "Shop/4.12.0 (com.example.shop; build:4120; iOS 17.4.1) Alamofire/5.8.0",
    "Shop/4.11.2 (com.example.shop; build:4112; iOS 16.7.5) Alamofire/5.8.0",
];

pub(crate) const ANDROID_UAS: &[&str] = &[
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP1A.240405.002)",
    "Dalvik/2.1.0 (Linux; U; Android 13; SM-S911B Build/TP1A.220624.014)",
];

pub(crate) const INDUSTRIES: &[&str] = &[
    "Retail",
    "Hospitality",
    "Software",
    "Healthcare",
    "Education",
    "Manufacturing",
    "Media",
    "Logistics",
    "Finance",
    "Non-profit",
];

pub(crate) const COMPANY_WORDS: &[&str] = &[
    "Blue", "River", "Summit", "Oak", "Harbor", "Pixel", "Copper", "Meadow", "Atlas", "Nova",
    "Cedar", "Falcon", "Granite", "Willow", "Orbit", "Ember",
];

pub(crate) const COMPANY_SUFFIXES: &[&str] = &[
    "Labs",
    "Supply",
    "Group",
    "Studios",
    "Partners",
    "Works",
    "Collective",
    "GmbH",
    "Inc.",
];

pub(crate) const ACCOUNT_PLANS: &[&str] = &["starter", "business", "enterprise"];

pub(crate) const PAYMENT_METHODS: &[&str] = &[
    "card",
    "card",
    "card",
    "paypal",
    "apple_pay",
    "google_pay",
    "klarna",
];

pub(crate) const COUPONS: &[(&str, &str, u32)] = &[
    // (coupon id, name, percent off)
    ("WELCOME10", "Welcome 10%", 10),
    ("SPRING20", "Spring sale", 20),
    ("FREESHIP", "Free shipping", 5),
    ("VIP25", "VIP 25%", 25),
];

pub(crate) const PROMOTIONS: &[(&str, &str, &str)] = &[
    // (id, creative, name)
    ("promo_spring", "hero_banner_spring", "Spring Collection"),
    (
        "promo_ship",
        "top_strip_free_shipping",
        "Free Shipping Over $50",
    ),
    ("promo_bf", "hero_banner_black_friday", "Black Friday"),
    ("promo_new", "sidebar_new_arrivals", "New Arrivals"),
];

pub(crate) const CAMPAIGNS: &[(&str, &str)] = &[
    // (campaign, subject)
    ("weekly_digest", "This week's picks for you"),
    ("abandoned_cart", "You left something in your cart"),
    ("winback_30d", "We miss you — here's 10% off"),
    ("order_shipped", "Your order is on its way"),
    ("new_arrivals", "Fresh in: new arrivals"),
];

pub(crate) const SIGNUP_METHODS: &[&str] = &["email", "email", "google", "apple"];
pub(crate) const SHARE_VIA: &[&str] = &["link", "email", "whatsapp", "pinterest"];
pub(crate) const CANCEL_REASONS: &[&str] =
    &["too_expensive", "not_using", "found_alternative", "other"];
pub(crate) const REVIEW_BODIES: &[&str] = &[
    "Great quality, would buy again.",
    "Arrived late but works fine.",
    "Not what I expected.",
    "Five stars — \"perfect\" gift!",
    "Decent for the price.",
];

/// Placeholder ids that buggy clients send and that identity resolution must block.
pub(crate) const PLACEHOLDERS: &[&str] = &["null", "0", "anonymous", "", "-1"];

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
