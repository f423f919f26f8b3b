//! The layout every page shares, the embedded assets (nothing is fetched
//! from elsewhere), and small pieces: times, durations, pagers.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Person;
use crate::config::Role;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

/// The screens, in the order of the menu, and who sees them.
const SCREENS: &[(&str, &str, &[Role], Option<&str>)] = &[
    ("stations", "Stations", super::ADMIN, None),
    ("board", "24-hour board", super::ADMIN, Some("board")),
    ("alerts", "Alerts", super::ADMIN, Some("alerts")),
    ("problems", "Ingest problems", super::ADMIN, Some("problems")),
    ("compliance", "Compliance", super::OVERSIGHT, None),
    ("media", "Media", super::EVERYONE, None),
    ("cases", "Cases", super::EVERYONE, None),
    ("retention", "Retention", super::ADMIN, None),
    ("audit", "Audit", super::AUDITOR, None),
    ("exports", "Exports", super::EXPORTS, Some("exports")),
    ("renditions", "Renditions", super::ADMIN, Some("renditions")),
];

/// A page without the menu (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body { (body) }
        }
    }
}

/// A page of the console: the menu for the person's role, a message after
/// an action, the body.
pub fn page(p: &Person, screen: &str, title: &str, msg: Option<&str>, body: Markup) -> Response {
    let m = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · bodycamd" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/" { "bodycamd" }
                    nav {
                        @for (id, label, roles, badge) in SCREENS {
                            @if roles.contains(&p.role) {
                                a href={ "/console/" (id) } class=[(*id == screen).then_some("here")] {
                                    (label)
                                    @if let Some(b) = badge { " " span.badge data-live=(b) {} }
                                }
                            }
                        }
                    }
                    form.who method="post" action="/console/logout" {
                        span { (p.name) " · " (p.role.as_str()) @if p.restricted { " · restricted grant" } }
                        input type="hidden" name="csrf" value=(p.csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(m) = msg { p.flash role="status" { (m) } }
                    (body)
                }
            }
        }
    };
    m.into_response()
}

/// A hidden CSRF field for a form.
pub fn csrf(p: &Person) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf); }
}

/// An instant as UTC, to the second.
pub fn at(ms: i64) -> String {
    crate::clock::from_ms(ms).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn at_opt(ms: Option<i64>) -> String {
    ms.map(at).unwrap_or_else(|| "—".into())
}

/// A span of time in words: `3h 05m`, `-1h 10m` when past.
pub fn span(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let m = ms.unsigned_abs() / 60_000;
    if m >= 48 * 60 {
        format!("{sign}{}d {:02}h", m / 1440, (m % 1440) / 60)
    } else {
        format!("{sign}{}h {:02}m", m / 60, m % 60)
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A link to the next page of a list, keeping the other parameters.
pub fn next_link(path: &str, params: &[(&str, Option<String>)], after: Option<String>) -> Markup {
    next_link_as(path, params, "after", after, "Next page →")
}

/// The same for one of several lists on a page: its cursor goes in `key`,
/// and the link says which list it pages.
pub fn next_link_as(
    path: &str,
    params: &[(&str, Option<String>)],
    key: &str,
    after: Option<String>,
    label: &str,
) -> Markup {
    let Some(after) = after else { return html! {} };
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    q.append_pair(key, &after);
    html! { p.pager { a rel="next" href={ (path) "?" (q.finish()) } data-list=(key) { (label) } } }
}

/// A bar chart of percentages (inline SVG: no script, no library).
pub fn bars(rows: &[(String, f64)]) -> Markup {
    let h = 22 * rows.len() + 8;
    html! {
        svg.chart role="img" aria-label="On-time share by group" viewBox={ "0 0 640 " (h) } width="640" height=(h) {
            @for (i, (label, pct)) in rows.iter().enumerate() {
                @let y = 4 + i * 22;
                @let w = (pct.clamp(0.0, 100.0) * 4.0).round();
                text x="0" y=(y + 15) class="label" { (label) }
                rect x="180" y=(y) width=(w) height="16" class=(if *pct >= 95.0 { "good" } else if *pct >= 80.0 { "fair" } else { "poor" }) {}
                text x=(186.0 + w) y=(y + 13) class="value" { (format!("{pct:.1}%")) }
            }
        }
    }
}

/// Text that is safe in HTML already (constants only).
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_read_well() {
        assert_eq!(span(3 * 3_600_000 + 5 * 60_000), "3h 05m");
        assert_eq!(span(-70 * 60_000), "-1h 10m");
        assert_eq!(span(3 * 86_400_000), "3d 00h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn markup_escapes_what_it_is_given() {
        let m = html! { p { ("<script>alert(1)</script>") } };
        assert_eq!(m.into_string(), "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    }
}
