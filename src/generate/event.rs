//! One generated message, independent of the output preset: the generator fills it in place
//! (reusing its buffers), and each preset's sink turns it into rows.

use super::catalog::{MAX_PROPS, NO_PROPS, Prop, TRACKS, Ty};
use super::text;

/// The Segment call type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Identify => "identify",
            Kind::Track => "track",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Group => "group",
            Kind::Alias => "alias",
        }
    }
}

/// A deliberately broken row (the `events` preset only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    None,
    /// `timestamp` is `not-a-date`.
    Timestamp,
    /// `properties` (or `traits`) is not valid JSON.
    Json,
    /// `type` is `bogus`.
    Type,
    /// Neither `user_id` nor `anonymous_id`.
    NoIds,
}

/// A property value. Strings live in the event's scratch buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Str(u32, u32),
    Int(i64),
    /// Cents, written as a float with two decimals.
    Money(i64),
    Bool(bool),
}

/// A reusable optional string.
#[derive(Clone, Debug, Default)]
pub(crate) struct Text {
    buf: String,
    set: bool,
}

impl Text {
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.set = false;
    }

    #[inline]
    pub(crate) fn set(&mut self, s: &str) {
        self.buf.clear();
        self.buf.push_str(s);
        self.set = true;
    }

    /// Clears the value, marks it present and returns the buffer to write it into.
    #[inline]
    pub(crate) fn write(&mut self) -> &mut String {
        self.buf.clear();
        self.set = true;
        &mut self.buf
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<&str> {
        if self.set { Some(&self.buf) } else { None }
    }
}

/// The `context` of a message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Context {
    pub library_name: &'static str,
    pub library_version: &'static str,
    /// `web`, `mobile` or `server` (RudderStack's `channel`).
    pub channel: &'static str,
    pub ip: Text,
    pub user_agent: Option<&'static str>,
    pub locale: Option<&'static str>,
    pub device_id: Text,
    pub device_type: Option<&'static str>,
    pub os_name: Option<&'static str>,
    pub page_path: Text,
    pub page_url: Text,
    pub page_title: Option<&'static str>,
    pub traits_email: Text,
}

/// One message, as Segment's libraries would send it.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub kind: Kind,
    /// Index into [`TRACKS`] for track calls.
    pub track: usize,
    /// The page or screen name.
    pub name: &'static str,
    pub message_id: Text,
    pub user_id: Text,
    pub anonymous_id: Text,
    pub group_id: Text,
    pub previous_id: Text,
    /// When it happened (the corrected `timestamp`), ms since the epoch.
    pub ts_ms: i64,
    pub original_ms: i64,
    pub sent_ms: i64,
    pub received_ms: i64,
    /// The properties (track, page, screen) or traits (identify, group), in schema order.
    pub schema: &'static [Prop],
    pub vals: [Val; MAX_PROPS],
    pub scratch: String,
    pub ctx: Context,
    pub bad: Bad,
}

impl Event {
    /// True when no userId, anonymousId or previousId is left once blanks are trimmed away.
    pub(crate) fn lacks_identifier(&self) -> bool {
        [&self.user_id, &self.anonymous_id, &self.previous_id]
            .iter()
            .all(|t| t.get().is_none_or(|v| v.trim().is_empty()))
    }
}

impl Default for Event {
    fn default() -> Self {
        Event {
            kind: Kind::Track,
            track: 0,
            name: "",
            message_id: Text::default(),
            user_id: Text::default(),
            anonymous_id: Text::default(),
            group_id: Text::default(),
            previous_id: Text::default(),
            ts_ms: 0,
            original_ms: 0,
            sent_ms: 0,
            received_ms: 0,
            schema: NO_PROPS,
            vals: [Val::Null; MAX_PROPS],
            scratch: String::with_capacity(256),
            ctx: Context::default(),
            bad: Bad::None,
        }
    }
}

impl Event {
    /// The track event's display name (`Order Completed`).
    pub(crate) fn event_text(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Track => Some(TRACKS[self.track].name),
            Kind::Page | Kind::Screen => Some(self.name),
            _ => None,
        }
    }

    /// Starts a new set of properties or traits.
    #[inline]
    pub(crate) fn reset_props(&mut self, schema: &'static [Prop]) {
        self.schema = schema;
        self.vals = [Val::Null; MAX_PROPS];
        self.scratch.clear();
    }

    #[inline]
    fn slot(&self, name: &str, ty: Ty) -> Option<usize> {
        let i = self.schema.iter().position(|p| p.name == name)?;
        debug_assert_eq!(self.schema[i].ty, ty, "property {name} has another type");
        Some(i)
    }

    /// Sets a string property if the schema has it.
    #[inline]
    pub(crate) fn set_str(&mut self, name: &str, v: &str) {
        if let Some(i) = self.slot(name, Ty::Str) {
            let start = self.scratch.len() as u32;
            self.scratch.push_str(v);
            self.vals[i] = Val::Str(start, self.scratch.len() as u32);
        }
    }

    /// Sets a string property written by `f` into the scratch buffer.
    #[inline]
    pub(crate) fn set_with(&mut self, name: &str, f: impl FnOnce(&mut String)) {
        if let Some(i) = self.slot(name, Ty::Str) {
            let start = self.scratch.len() as u32;
            f(&mut self.scratch);
            self.vals[i] = Val::Str(start, self.scratch.len() as u32);
        }
    }

    #[inline]
    pub(crate) fn set_int(&mut self, name: &str, v: i64) {
        if let Some(i) = self.slot(name, Ty::Int) {
            self.vals[i] = Val::Int(v);
        }
    }

    #[inline]
    pub(crate) fn set_money(&mut self, name: &str, cents: i64) {
        if let Some(i) = self.slot(name, Ty::Float) {
            self.vals[i] = Val::Money(cents);
        }
    }

    #[inline]
    pub(crate) fn set_bool(&mut self, name: &str, v: bool) {
        if let Some(i) = self.slot(name, Ty::Bool) {
            self.vals[i] = Val::Bool(v);
        }
    }

    /// The string behind a [`Val::Str`].
    #[inline]
    pub(crate) fn str_of(&self, v: Val) -> Option<&str> {
        match v {
            Val::Str(a, b) => Some(&self.scratch[a as usize..b as usize]),
            _ => None,
        }
    }

    /// Appends the properties / traits as a JSON object (absent values are left out).
    pub(crate) fn push_props_json(&self, buf: &mut String) {
        buf.push('{');
        let mut first = true;
        for (p, v) in self.schema.iter().zip(self.vals.iter()) {
            if *v == Val::Null {
                continue;
            }
            if !first {
                buf.push(',');
            }
            first = false;
            text::push_json_str(buf, p.name);
            buf.push(':');
            match *v {
                Val::Null => {}
                Val::Str(a, b) => text::push_json_str(buf, &self.scratch[a as usize..b as usize]),
                Val::Int(i) => text::push_i64(buf, i),
                Val::Money(c) => text::push_money(buf, c),
                Val::Bool(b) => buf.push_str(if b { "true" } else { "false" }),
            }
        }
        buf.push('}');
    }

    /// Appends the context as a JSON object, in analytics.js's shape.
    pub(crate) fn push_context_json(&self, buf: &mut String) {
        let c = &self.ctx;
        buf.push_str("{\"library\":{\"name\":");
        text::push_json_str(buf, c.library_name);
        buf.push_str(",\"version\":");
        text::push_json_str(buf, c.library_version);
        buf.push('}');
        if let Some(ip) = c.ip.get() {
            buf.push_str(",\"ip\":");
            text::push_json_str(buf, ip);
        }
        if let Some(ua) = c.user_agent {
            buf.push_str(",\"userAgent\":");
            text::push_json_str(buf, ua);
        }
        if let Some(l) = c.locale {
            buf.push_str(",\"locale\":");
            text::push_json_str(buf, l);
        }
        if c.device_id.get().is_some() || c.device_type.is_some() {
            buf.push_str(",\"device\":{");
            let mut sep = "";
            if let Some(id) = c.device_id.get() {
                buf.push_str("\"id\":");
                text::push_json_str(buf, id);
                sep = ",";
            }
            if let Some(t) = c.device_type {
                buf.push_str(sep);
                buf.push_str("\"type\":");
                text::push_json_str(buf, t);
            }
            buf.push('}');
        }
        if let Some(os) = c.os_name {
            buf.push_str(",\"os\":{\"name\":");
            text::push_json_str(buf, os);
            buf.push('}');
        }
        if let Some(path) = c.page_path.get() {
            buf.push_str(",\"page\":{\"path\":");
            text::push_json_str(buf, path);
            if let Some(url) = c.page_url.get() {
                buf.push_str(",\"url\":");
                text::push_json_str(buf, url);
            }
            if let Some(t) = c.page_title {
                buf.push_str(",\"title\":");
                text::push_json_str(buf, t);
            }
            buf.push('}');
        }
        if let Some(e) = c.traits_email.get() {
            buf.push_str(",\"traits\":{\"email\":");
            text::push_json_str(buf, e);
            buf.push('}');
        }
        buf.push('}');
    }
}
