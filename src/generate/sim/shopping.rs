//! The shopping path of a session: pages, browsing, search, products, promotions, the cart
//! and checkout.

use crate::generate::catalog::{
    CATEGORIES, COUPONS, NO_PROPS, PAGE_PROPS, PAGES, PAYMENT_METHODS, PROMOTIONS, Product,
    REFERRERS, REVIEW_BODIES, SEARCH_QUERIES, SHARE_VIA, T,
};
use crate::generate::event::Kind;
use crate::generate::text::{push_hex, push_u64};

use super::{
    ACCOUNT, Arg, CART, CATEGORY, CHECKOUT, CONFIRMATION, DayGen, HELP, HOME, PRODUCT, SEARCH,
    SITE, Sink, WISHLIST,
};

impl<'a, S: Sink> DayGen<'a, S> {
    pub(super) fn view(&mut self, page: usize, arg: Arg) {
        let (name, path, title) = PAGES[page];
        if !self.s.web {
            self.begin(Kind::Screen);
            self.ev.name = name;
            self.ev.reset_props(NO_PROPS);
            self.send();
            return;
        }
        let mut p = std::mem::take(&mut self.tmp);
        p.clear();
        p.push_str(path);
        match arg {
            Arg::None => {}
            Arg::Category(c) => p.push_str(CATEGORIES[c].1),
            Arg::Product(i) => p.push_str(&self.w.catalog[i].id),
        }
        {
            let ctx = &mut self.ev.ctx;
            ctx.page_path.set(&p);
            let url = ctx.page_url.write();
            url.push_str(SITE);
            url.push_str(&p);
            ctx.page_title = Some(title);
        }
        self.begin(Kind::Page);
        self.ev.name = name;
        self.ev.reset_props(PAGE_PROPS);
        self.ev.set_str("path", &p);
        self.ev.set_with("url", |b| {
            b.push_str(SITE);
            b.push_str(&p);
        });
        self.ev.set_str("title", title);
        if !self.s.prev_url.is_empty() {
            let prev = std::mem::take(&mut self.s.prev_url);
            self.ev.set_str("referrer", &prev);
            self.s.prev_url = prev;
        } else if self.rng.chance(0.6) {
            let r = *self.rng.pick(REFERRERS);
            self.ev.set_str("referrer", r);
        }
        self.s.prev_url.clear();
        self.s.prev_url.push_str(SITE);
        self.s.prev_url.push_str(&p);
        self.tmp = p;
        self.send();
    }

    pub(super) fn shopping(&mut self, onboarding: bool) {
        if !self.s.web {
            if onboarding {
                self.track(T::AppInstalled);
                self.app_version();
                self.send();
            }
            self.track(T::AppOpened);
            self.app_version();
            let bg = self.rng.chance(0.3);
            self.ev.set_bool("from_background", bg);
            self.send();
        }
        self.view(HOME, Arg::None);
        if onboarding {
            let n = self.rng.range(0, 3);
            self.browse(n);
            self.sign_up();
        } else {
            // Logging in on this device, or again after a while.
            let u = &self.s.user;
            let comes_back = u.identifies
                && !self.s.logged_in
                && self.d >= u.signup_day
                && self.rng.chance(0.35);
            if comes_back || (self.s.logged_in && self.rng.chance(0.15)) {
                self.sign_in();
            }
            if self.s.logged_in {
                self.account_chores();
            }
        }
        let steps = 1 + ((-(1.0 - self.rng.f64()).ln()) * 6.0).min(40.0) as u64;
        self.browse(steps);
        if self.s.logged_in && self.rng.chance(0.04) {
            self.track(T::SignedOut);
            self.send();
            self.s.logged_in = false;
            self.s.ctx_email = false;
        }
    }

    fn app_version(&mut self) {
        let (v, b) = if self.s.user_agent_is_new() {
            ("4.12.0", 4120)
        } else {
            ("4.11.2", 4112)
        };
        self.ev.set_str("version", v);
        self.ev.set_int("build", b);
    }

    fn browse(&mut self, steps: u64) {
        for _ in 0..steps {
            if !self.alive() {
                return;
            }
            let r = self.rng.f64();
            if r < 0.16 {
                self.search();
            } else if r < 0.34 {
                self.category();
            } else if r < 0.72 {
                self.product(None);
            } else if r < 0.77 {
                self.promotion();
            } else if r < 0.84 {
                if self.s.cart.is_empty() {
                    self.product(None);
                } else {
                    self.cart();
                }
            } else if r < 0.87 {
                let page = *self.rng.pick(&[ACCOUNT, HELP, WISHLIST]);
                self.view(page, Arg::None);
            } else if r < 0.93 && !self.s.cart.is_empty() {
                self.checkout();
                return;
            } else {
                self.product(None);
            }
        }
        if !self.s.cart.is_empty() && self.rng.chance(0.1) {
            self.checkout();
        }
    }

    fn pick_product(&mut self) -> usize {
        let x = self.rng.f64();
        ((self.w.catalog.len() as f64) * x * x) as usize
    }

    fn product_props(&mut self, p: usize, qty: i64) {
        let prod: &Product = &self.w.catalog[p];
        let ev = &mut self.ev;
        ev.set_str("product_id", &prod.id);
        ev.set_str("sku", &prod.sku);
        ev.set_str("category", CATEGORIES[prod.category].0);
        ev.set_str("name", &prod.name);
        ev.set_str("brand", prod.brand);
        ev.set_money("price", prod.price_cents as i64);
        ev.set_int("quantity", qty);
    }

    fn product(&mut self, clicked: Option<usize>) {
        let p = clicked.unwrap_or_else(|| self.pick_product());
        self.view(PRODUCT, Arg::Product(p));
        self.track(T::ProductViewed);
        self.product_props(p, 1);
        let currency = self.s.user.currency();
        self.ev.set_str("currency", currency);
        self.ev
            .set_money("value", self.w.catalog[p].price_cents as i64);
        self.send();
        if self.rng.chance(0.3) && self.s.cart.len() < 8 {
            let qty = if self.rng.chance(0.8) {
                1
            } else {
                self.rng.range(2, 4) as i64
            };
            self.track(T::ProductAdded);
            self.product_props(p, qty);
            let cart_id = std::mem::take(&mut self.s.cart_id);
            self.ev.set_str("cart_id", &cart_id);
            self.s.cart_id = cart_id;
            self.send();
            self.s.cart.push((p, qty));
        }
        if self.s.logged_in && self.rng.chance(0.03) {
            self.track(T::WishlistAdded);
            self.product_props(p, 1);
            self.wishlist_id();
            self.send();
        }
        if self.rng.chance(0.02) {
            self.track(T::ProductShared);
            self.product_props(p, 1);
            let via = *self.rng.pick(SHARE_VIA);
            self.ev.set_str("share_via", via);
            self.send();
        }
        if self.s.logged_in && self.rng.chance(0.015) {
            self.track(T::ReviewSubmitted);
            self.product_props(p, 1);
            let id = self.rng.next_u64();
            self.ev.set_with("review_id", |b| {
                b.push_str("rev_");
                push_hex(b, id, 12);
            });
            let rating = [5, 5, 5, 4, 4, 3, 2, 1][self.rng.below(8) as usize];
            self.ev.set_int("rating", rating);
            let body = *self.rng.pick(REVIEW_BODIES);
            self.ev.set_str("review_body", body);
            self.send();
        }
        if self.s.logged_in && self.rng.chance(0.008) {
            self.track(T::WishlistRemoved);
            self.product_props(p, 1);
            self.wishlist_id();
            self.send();
        }
    }

    fn wishlist_id(&mut self) {
        let idx = self.s.user.idx;
        self.ev.set_with("wishlist_id", |b| {
            b.push_str("wl_");
            push_u64(b, idx);
        });
    }

    fn search(&mut self) {
        let q = *self.rng.pick(SEARCH_QUERIES);
        self.view(SEARCH, Arg::None);
        self.track(T::ProductsSearched);
        self.ev.set_str("query", q);
        let results = self.rng.below(120) as i64;
        self.ev.set_int("results", results);
        self.send();
        if results > 0 && self.rng.chance(0.5) {
            let p = self.pick_product();
            self.click(p);
        }
    }

    fn click(&mut self, p: usize) {
        self.track(T::ProductClicked);
        self.product_props(p, 1);
        let pos = 1 + self.rng.below(24) as i64;
        self.ev.set_int("position", pos);
        self.send();
        self.product(Some(p));
    }

    fn category(&mut self) {
        let c = self.rng.below(CATEGORIES.len() as u64) as usize;
        self.view(CATEGORY, Arg::Category(c));
        self.track(T::ProductListViewed);
        self.ev.set_with("list_id", |b| {
            b.push_str(CATEGORIES[c].1);
            b.push_str("-grid");
        });
        self.ev.set_str("category", CATEGORIES[c].0);
        self.send();
        if self.rng.chance(0.45) {
            let n = self.w.catalog.len();
            let start = self.pick_product();
            let p = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| self.w.catalog[i].category == c);
            if let Some(p) = p {
                self.click(p);
            }
        }
    }

    fn promotion(&mut self) {
        let (id, creative, name) = *self.rng.pick(PROMOTIONS);
        let position = *self.rng.pick(&["home_top", "home_middle", "sidebar"]);
        for t in [T::PromotionViewed, T::PromotionClicked] {
            self.track(t);
            self.ev.set_str("promotion_id", id);
            self.ev.set_str("creative", creative);
            self.ev.set_str("name", name);
            self.ev.set_str("position", position);
            self.send();
            if !self.rng.chance(0.25) {
                break;
            }
        }
    }

    fn cart_value(&self) -> i64 {
        self.s
            .cart
            .iter()
            .map(|&(p, q)| self.w.catalog[p].price_cents as i64 * q)
            .sum()
    }

    fn cart(&mut self) {
        self.view(CART, Arg::None);
        self.track(T::CartViewed);
        let cart_id = std::mem::take(&mut self.s.cart_id);
        self.ev.set_str("cart_id", &cart_id);
        self.ev.set_int("products", self.s.cart.len() as i64);
        let v = self.cart_value();
        self.ev.set_money("value", v);
        self.send();
        if self.rng.chance(0.2)
            && let Some((p, q)) = self.s.cart.pop()
        {
            self.track(T::ProductRemoved);
            self.product_props(p, q);
            self.ev.set_str("cart_id", &cart_id);
            self.send();
        }
        self.s.cart_id = cart_id;
    }

    fn checkout(&mut self) {
        if self.s.cart.is_empty() {
            return;
        }
        let subtotal = self.cart_value();
        let products = self.s.cart.len() as i64;
        let quantity: i64 = self.s.cart.iter().map(|c| c.1).sum();
        let (oa, ca) = (self.rng.next_u64(), self.rng.next_u64());
        let order = |b: &mut String| {
            b.push_str("ord_");
            push_hex(b, oa, 14);
        };
        let checkout = |b: &mut String| {
            b.push_str("chk_");
            push_hex(b, ca, 14);
        };
        let currency = self.s.user.currency();
        self.view(CHECKOUT, Arg::None);
        self.track(T::CheckoutStarted);
        self.ev.set_with("order_id", order);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_money("value", subtotal);
        self.ev.set_money("revenue", subtotal);
        self.ev.set_str("currency", currency);
        self.ev.set_int("products", products);
        self.send();
        self.track(T::CheckoutStepViewed);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_int("step", 1);
        self.send();
        // Logging in (or leaving an email as a guest) at checkout.
        let u = &self.s.user;
        if !self.s.logged_in && u.identifies && self.d >= u.signup_day && self.rng.chance(0.5) {
            self.sign_in();
        } else if !self.s.logged_in && (u.identifies || u.newsletter) && self.rng.chance(0.4) {
            self.identify_email_only();
        }
        let mut discount = 0;
        let mut coupon = None;
        if self.rng.chance(0.15) {
            let (cid, cname, pct) = *self.rng.pick(COUPONS);
            self.track(T::CouponEntered);
            self.ev.set_with("order_id", order);
            self.ev.set_str("coupon_id", cid);
            self.send();
            if self.rng.chance(0.75) {
                discount = subtotal * pct as i64 / 100;
                coupon = Some(cid);
                self.track(T::CouponApplied);
                self.ev.set_with("order_id", order);
                self.ev.set_str("coupon_id", cid);
                self.ev.set_str("coupon_name", cname);
                self.ev.set_money("discount", discount);
            } else {
                self.track(T::CouponDenied);
                self.ev.set_with("order_id", order);
                self.ev.set_str("coupon_id", cid);
                let reason = *self.rng.pick(&["expired", "invalid", "minimum_not_met"]);
                self.ev.set_str("reason", reason);
            }
            self.send();
        }
        self.track(T::PaymentInfoEntered);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_with("order_id", order);
        self.ev.set_int("step", 2);
        let method = *self.rng.pick(PAYMENT_METHODS);
        self.ev.set_str("payment_method", method);
        self.send();
        if !self.rng.chance(0.72) {
            return;
        }
        let revenue = subtotal - discount;
        let shipping = if subtotal >= 5_000 { 0 } else { 599 };
        let tax = revenue * 8 / 100;
        self.view(CONFIRMATION, Arg::None);
        self.track(T::OrderCompleted);
        self.ev.set_with("order_id", order);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_money("total", revenue + shipping + tax);
        self.ev.set_money("revenue", revenue);
        self.ev.set_money("subtotal", subtotal);
        self.ev.set_money("shipping", shipping);
        self.ev.set_money("tax", tax);
        self.ev.set_money("discount", discount);
        if let Some(c) = coupon {
            self.ev.set_str("coupon", c);
        }
        self.ev.set_str("currency", currency);
        self.ev.set_int("products", products);
        self.ev.set_int("quantity", quantity);
        self.send();
        self.s.cart.clear();
        self.new_cart();
    }
}
