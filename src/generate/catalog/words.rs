//! The store's word lists: people's names, e-mail domains, locales, plans, product categories
//! and words, search queries, pages, referrers, user agents, companies, payment, coupons,
//! promotions, campaigns and the placeholder ids buggy clients send.

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
