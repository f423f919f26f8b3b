//! The console: sessions, CSRF, throttling and roles over plain HTTP, and
//! the whole flow in a real browser (Debian's Chromium over WebDriver):
//! log in, see a docked file appear, acknowledge an alert, find a
//! recording by officer and play it, link it to a case, request an export
//! as one person and approve it as another, find both in the audit, and
//! never see a restricted record without the grant. Screenshots of every
//! screen are saved under `target/console-screenshots/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::Path;
use std::time::Duration;

use browser::*;
use common::*;
use serde_json::json;

const CMS: &str = "cms-token-for-console-tests";
const OPS: &str = "ops-token-for-console-tests";

const PATTERN: &str =
    "pattern = '^(?P<device>[A-Z0-9]+)_(?P<officer>\\d{6})_(?P<start>\\d{14})_(?P<seq>\\d{4})\\.mp4$'\n";

fn tokens() -> String {
    format!(
        "[[api.tokens]]\nname = \"cms\"\nrole = \"case_system\"\ntoken_sha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
        sha256_hex(CMS),
        sha256_hex(OPS)
    )
}

fn harness() -> Harness {
    Harness::new(PATTERN, &tokens())
}

/// A form post with the cookies given; returns the answer.
fn post_form(addr: std::net::SocketAddr, path: &str, cookies: &str, form: &[(&str, &str)]) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    http(
        addr,
        "POST",
        path,
        &[("Cookie", cookies), ("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
}

/// Log in over plain HTTP; returns the `Cookie` header for the session, or
/// the refusal. (Read from the raw answer: a login sets two cookies.)
fn login(addr: std::net::SocketAddr, name: &str, password: &str) -> Result<String, Resp> {
    use std::io::{Read, Write};
    let page = http(addr, "GET", "/console/login", &[], None);
    let login_cookie = page.headers.get("set-cookie").expect("a login cookie").split(';').next().unwrap().to_string();
    let token = login_cookie.split_once('=').unwrap().1.to_string();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("username", name), ("password", password), ("login", &token)])
        .finish();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /console/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {login_cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status: u16 = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if status != 303 {
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.as_bytes().to_vec()).unwrap_or_default();
        return Err(Resp { status, headers: Default::default(), body });
    }
    let line = buf
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie: bodycamd_session="))
        .unwrap_or_else(|| panic!("no session cookie in:\n{buf}"));
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/console"), "{line}");
    Ok(line.split_once(": ").unwrap().1.split(';').next().unwrap().to_string())
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_string()
}

fn page(addr: std::net::SocketAddr, path: &str, cookie: &str) -> (u16, String) {
    let r = http(addr, "GET", path, &[("Cookie", cookie)], None);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn audit_actions(h: &Harness, actor: &str) -> Vec<(String, String)> {
    let db = h.db();
    db.query_all(
        "SELECT action, outcome FROM audit WHERE actor = ?1 ORDER BY id",
        [&actor as &dyn bodycamd::index::db::ToValue],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn sessions_csrf_throttling_and_roles_hold() {
    let h = harness();
    add_user(&h, "ann", "admin", false);
    add_user(&h, "sam", "approver", false);
    // Bad user commands say what is wrong.
    let out = h.cmd(&["user", "add", "cms2", "--role", "case_system", "--password-stdin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("case systems use API tokens"));
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();

    // No session: pages go to the login page; the login page loads nothing
    // from elsewhere.
    let r = http(addr, "GET", "/console/alerts?state=all", &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/console/login?next=%2Fconsole%2Falerts%3Fstate%3Dall");
    let login_page = http(addr, "GET", "/console/login", &[], None);
    let csp = &login_page.headers["content-security-policy"];
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        !String::from_utf8_lossy(&login_page.body).contains("http://")
            && !String::from_utf8_lossy(&login_page.body).contains("https://")
    );

    // A wrong password is refused, and audited without naming anyone.
    assert_eq!(login(addr, "ann", "not the password").unwrap_err().status, 401);
    assert_eq!(login(addr, "nobody", PASSWORD).unwrap_err().status, 401);
    let cookie = login(addr, "ann", PASSWORD).unwrap();

    // Pages render for the role; another role's page is refused.
    let (st, board) = page(addr, "/console/board", &cookie);
    assert_eq!(st, 200, "{board}");
    assert!(board.contains("files waiting on the docks"));
    assert_eq!(page(addr, "/console/audit", &cookie).0, 403);
    // A change without the CSRF token is refused; with it, it is done.
    let r = post_form(addr, "/console/renditions/retry", &cookie, &[]);
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("CSRF"));
    let csrf = csrf_of(&board);
    let r = post_form(addr, "/console/renditions/retry", &cookie, &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    // Every page view and action is audited as the person.
    let ann = audit_actions(&h, "ann");
    for want in ["console.login", "console.view.board", "console.view.audit", "console.renditions.retry"] {
        assert!(ann.iter().any(|(a, _)| a == want), "no {want} in {ann:?}");
    }
    assert!(ann.iter().any(|(a, o)| a == "console.view.audit" && o == "denied"));
    assert!(ann.iter().any(|(a, o)| a == "console.renditions.retry" && o == "denied"), "the refused change too");

    // Logging out ends the session for good.
    let r = post_form(addr, "/console/logout", &cookie, &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(page(addr, "/console/board", &cookie).0, 303, "the old cookie is dead");

    // Five failures lock the name (and the address) for the window.
    for _ in 0..5 {
        assert_eq!(login(addr, "sam", "wrong wrong wrong").unwrap_err().status, 401);
    }
    let r = login(addr, "sam", PASSWORD).unwrap_err();
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("too many failed logins"));

    // Disabling a person ends their sessions at once.
    d.stop();
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let cookie = login(addr, "ann", PASSWORD).unwrap();
    assert_eq!(page(addr, "/console/stations", &cookie).0, 200);
    let out = h.cmd(&["user", "disable", "ann"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(page(addr, "/console/stations", &cookie).0, 303);
    assert_eq!(login(addr, "ann", PASSWORD).unwrap_err().status, 401);
    d.stop();
}

/// The `<tr>` rows of the table with this id.
fn rows_of(html: &str, table: &str) -> Vec<String> {
    let Some(start) = html.find(&format!("<table id=\"{table}\"")) else { return Vec::new() };
    let body = &html[start..];
    let body = &body[..body.find("</table>").unwrap()];
    body.split("<tr").skip(2).map(|r| r.to_string()).collect()
}

/// The `href` of the page's "next page" link, unescaped.
fn next_href(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\" href=\"")? + 17;
    Some(html[at..].split('"').next()?.replace("&amp;", "&"))
}

/// The `href` of the next-page link of one list of a page (`data-list`:
/// `after`, or the key of a second list), unescaped.
fn list_next(html: &str, key: &str) -> Option<String> {
    let at = html.find(&format!("data-list=\"{key}\""))?;
    Some(html[..at].rsplit("href=\"").next()?.split('"').next()?.replace("&amp;", "&"))
}

/// Every list is a page of an index: 130 files a station refuses (symbolic
/// links) fill two pages of ingest problems and two of alerts, with no file
/// shown twice; an alert's own page shows its history; a case's page shows
/// the holds on its recordings and when its file is due for archiving.
#[test]
fn lists_are_paged_and_alerts_and_cases_show_their_history() {
    let h = harness();
    h.write_config(PATTERN, &format!("{}[alerts]\nevaluate_every = \"1s\"\n", tokens()));
    add_user(&h, "ann", "admin", false);
    for i in 0..130 {
        std::os::unix::fs::symlink("/etc/hostname", h.dock.join(format!("link-{i:03}.mp4"))).unwrap();
    }
    let clip = clip(h.dir.path(), 3);
    std::fs::write(h.dock.join("CAM9_004711_20261130080000_0001.mp4"), &clip).unwrap();
    let id = blake3_hex(&clip);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let db = h.db();
    let count =
        |sql: &str| db.query_all(sql, [] as [&dyn bodycamd::index::db::ToValue; 0], |r| r.get::<_, i64>(0)).unwrap()[0];
    wait_until("130 refused files, their alerts and the clip", Duration::from_secs(60), || {
        count("SELECT count(*) FROM pending WHERE state = 'rejected'") == 130
            && count("SELECT count(*) FROM alerts WHERE kind = 'ingest_rejected' AND resolved_at IS NULL") == 130
            && count("SELECT count(*) FROM originals") == 1
    });
    let cookie = login(addr, "ann", PASSWORD).unwrap();

    // Problems: 100, then the other 30, each file once.
    let mut seen = std::collections::BTreeSet::new();
    let (st, first) = page(addr, "/console/problems", &cookie);
    assert_eq!(st, 200, "{first}");
    let rows = rows_of(&first, "problems");
    assert_eq!(rows.len(), 100);
    let next = next_href(&first).expect("a next page of problems");
    let (_, second) = page(addr, &next, &cookie);
    let rows2 = rows_of(&second, "problems");
    assert_eq!(rows2.len(), 30, "{second}");
    assert!(next_href(&second).is_none(), "no third page");
    for r in rows.iter().chain(&rows2) {
        let name = r.split("link-").nth(1).expect("a refused link").get(..3).unwrap().to_string();
        assert!(seen.insert(name), "a file shown twice");
        assert!(r.contains("symbolic link"), "the reason in words: {r}");
    }
    assert_eq!(seen.len(), 130);

    // Alerts of one kind: the same.
    let (_, first) = page(addr, "/console/alerts?kind=ingest_rejected", &cookie);
    let alerts = rows_of(&first, "alerts");
    assert_eq!(alerts.len(), 100, "{first}");
    let next = next_href(&first).expect("a next page of alerts");
    assert!(next.contains("kind=ingest_rejected") && next.contains("state=open"), "{next}");
    let (_, second) = page(addr, &next, &cookie);
    assert_eq!(rows_of(&second, "alerts").len(), 30);
    assert_eq!(page(addr, "/console/alerts?after=nonsense", &cookie).0, 400);

    // One alert's history: opened, then acknowledged by ann with her note.
    let alert: i64 = alerts[0].split("data-alert=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    let (st, one) = page(addr, &format!("/console/alerts/{alert}"), &cookie);
    assert_eq!(st, 200, "{one}");
    assert_eq!(rows_of(&one, "history").len(), 1, "{one}");
    assert!(rows_of(&one, "history")[0].contains("opened"));
    let r = post_form(
        addr,
        &format!("/console/alerts/{alert}/ack"),
        &cookie,
        &[("csrf", &csrf_of(&one)), ("note", "link removed by the site")],
    );
    assert_eq!(r.status, 303);
    let (_, one) = page(addr, &format!("/console/alerts/{alert}"), &cookie);
    let history = rows_of(&one, "history");
    assert_eq!(history.len(), 2, "{one}");
    assert!(
        history[1].contains("acknowledged")
            && history[1].contains("ann")
            && history[1].contains("link removed by the site"),
        "{one}"
    );
    assert_eq!(page(addr, "/console/alerts/999999", &cookie).0, 404);

    // A closed case with a recording on hold.
    let r = call(
        addr,
        "PUT",
        "/api/v1/cases/K-9",
        &format!("Bearer {CMS}"),
        Some(json!({"title": "Closed burglary", "status": "closed", "closed_at": "2026-11-01T00:00:00Z",
            "officers": ["000001"], "windows": [{"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}]})),
    );
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let (_, case) = page(addr, "/console/cases/K-9", &cookie);
    assert!(case.contains("due 2026-12-01"), "30 days after closing (cases.archive_days): {case}");
    assert!(case.contains("No legal hold"), "{case}");
    let csrf = csrf_of(&case);
    let r = post_form(addr, "/console/cases/K-9/link", &cookie, &[("csrf", &csrf), ("media_id", &id)]);
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    let r = post_form(
        addr,
        &format!("/console/media/{id}/holds"),
        &cookie,
        &[("csrf", &csrf), ("reason", "appeal pending")],
    );
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    let (_, case) = page(addr, "/console/cases/K-9", &cookie);
    let holds = rows_of(&case, "case-holds");
    assert_eq!(holds.len(), 1, "{case}");
    assert!(holds[0].contains("appeal pending") && holds[0].contains("ann") && holds[0].contains(&id[..16]), "{case}");
    d.stop();
}

/// A case's recordings are a list like any other: 55 linked recordings show
/// 50 and a next page with the other 5, each once, under a count of all of
/// them; a person without the grant sees neither a restricted one nor it in
/// the count. The holds on them page the same way, on the case's page and
/// on the retention screen.
#[test]
fn a_cases_recordings_are_paged_and_counted_as_each_person_may_see_them() {
    let h = harness();
    h.write_config(PATTERN, &tokens());
    add_user(&h, "ann", "admin", false);
    add_user(&h, "rex", "admin", true);
    let mut ids = Vec::new();
    for i in 0..55 {
        let bytes = format!("recording {i} of a busy case").into_bytes();
        ids.push(blake3_hex(&bytes));
        std::fs::write(h.dock.join(format!("CAM1_000777_202611300{}{:02}00_{:04}.mp4", i / 60, i % 60, i + 1)), bytes)
            .unwrap();
    }
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let db = h.db();
    wait_until("55 originals", Duration::from_secs(60), || {
        db.query_all("SELECT count(*) FROM originals", [] as [&dyn bodycamd::index::db::ToValue; 0], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()[0]
            == 55
    });
    let r = call(
        addr,
        "PUT",
        "/api/v1/cases/K-55",
        &format!("Bearer {CMS}"),
        Some(json!({"title": "Busy", "status": "open", "officers": ["000123"]})),
    );
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    for id in &ids {
        let r = call(addr, "POST", "/api/v1/cases/K-55/media", &format!("Bearer {CMS}"), Some(json!({"media_id": id})));
        assert_eq!(r.status, 201, "{r:?}");
        let hold = json!({"reason": "appeal pending"});
        let r = call(addr, "POST", &format!("/api/v1/media/{id}/holds"), &format!("Bearer {OPS}"), Some(hold));
        assert_eq!(r.status, 201, "{r:?}");
    }
    let secret = &ids[52];
    restrict_media(addr, &format!("Bearer {OPS}"), secret);

    let walk = |who: &str| -> (String, Vec<String>) {
        let cookie = login(addr, who, PASSWORD).unwrap();
        let (st, first) = page(addr, "/console/cases/K-55", &cookie);
        assert_eq!(st, 200, "{first}");
        let rows = rows_of(&first, "case-media");
        assert_eq!(rows.len(), 50, "{first}");
        let next = list_next(&first, "after").expect("a next page of the case's recordings");
        let (st, second) = page(addr, &next, &cookie);
        assert_eq!(st, 200, "{second}");
        assert!(list_next(&second, "after").is_none(), "no third page");
        let shown: Vec<String> = rows
            .iter()
            .chain(&rows_of(&second, "case-media"))
            .map(|r| r.split("data-media=\"").nth(1).unwrap()[..64].to_string())
            .collect();
        (first, shown)
    };
    // The holds in force, on the retention screen and on the case's page:
    // the same, a page of them at a time beside the other lists there.
    let holds = |who: &str, path: &str, table: &str| -> Vec<String> {
        let cookie = login(addr, who, PASSWORD).unwrap();
        let (st, first) = page(addr, path, &cookie);
        assert_eq!(st, 200, "{first}");
        let rows = rows_of(&first, table);
        assert_eq!(rows.len(), 50, "{first}");
        let href = list_next(&first, "holds_before").expect("a next page of holds");
        let (st, second) = page(addr, &href, &cookie);
        assert_eq!(st, 200, "{second}");
        assert!(list_next(&second, "holds_before").is_none(), "no third page of holds");
        rows.iter()
            .chain(&rows_of(&second, table))
            .map(|r| r.split("/console/media/").nth(1).unwrap()[..64].to_string())
            .collect()
    };
    for (path, table) in [("/console/retention", "holds"), ("/console/cases/K-55", "case-holds")] {
        let ann_holds = holds("ann", path, table);
        assert_eq!(ann_holds.len(), 54, "{path}: {ann_holds:?}");
        assert!(!ann_holds.contains(secret), "{path}: a restricted recording's hold is as hidden as the recording");
        let rex_holds: std::collections::BTreeSet<_> = holds("rex", path, table).into_iter().collect();
        assert_eq!(rex_holds, ids.iter().cloned().collect(), "{path}: every hold once");
    }

    let (first, shown) = walk("ann");
    assert!(first.contains("Recordings (54)"), "the count leaves the restricted one out: {first}");
    assert!(first.contains("Holds on its recordings (54)"), "{first}");
    assert_eq!(shown.len(), 54);
    assert!(!shown.contains(secret), "ann has no grant");
    let (first, shown) = walk("rex");
    assert!(first.contains("Recordings (55)") && first.contains("Holds on its recordings (55)"), "{first}");
    let unique: std::collections::BTreeSet<_> = shown.iter().collect();
    assert_eq!((shown.len(), unique.len()), (55, 55), "each recording once");
    assert_eq!(unique, ids.iter().collect(), "every linked recording");
    assert!(first.contains("manual by cms"), "how each was linked: {first}");
    d.stop();
}

// ---------------------------------------------------------------- browser

/// A 3-second clip (long enough to play and seek in a page).
fn long_clip(dir: &Path, seed: u64) -> Vec<u8> {
    use bodycamd::media::encode::*;
    let spec = ClipSpec {
        format: "mp4",
        video: Some(VideoSpec { codec: VideoCodec::H264, width: 160, height: 120, fps: 10 }),
        audio: Some(AudioSpec { codec: AudioCodec::Aac, sample_rate: 16_000 }),
        duration_secs: 3.0,
        creation_time: Some("2026-11-30T08:00:00Z".parse().unwrap()),
        seed,
    };
    bodycamd::simulate::clip_bytes(dir, &spec, "mp4").unwrap()
}

#[test]
fn the_console_works_in_a_real_browser() {
    let Some(driver) = chromedriver() else { return };
    let h = harness();
    // A second station whose files wait (an hour to settle): the board
    // shows them by time left, one fine, one at risk, one overdue.
    let dock2 = h.dir.path().join("docks/dock-02");
    std::fs::create_dir_all(&dock2).unwrap();
    let dock2_cfg =
        format!("[[stations]]\nid = \"dock-02\"\npath = \"{}\"\nsettle_secs = 3600\n{PATTERN}", dock2.display());
    h.write_config(PATTERN, &format!("{}{dock2_cfg}", tokens()));
    let now = chrono::Utc::now();
    for (hours_ago, seq) in [(2, 1), (23, 2), (26, 3)] {
        let start = (now - chrono::Duration::hours(hours_ago)).format("%Y%m%d%H%M%S");
        std::fs::write(dock2.join(format!("CAM5_000777_{start}_000{seq}.mp4")), b"still being copied").unwrap();
    }
    for (name, role, grant) in [
        ("ann", "admin", false),
        ("rex", "admin", true),
        ("sam", "approver", false),
        ("pat", "approver", false),
        ("aud", "auditor", false),
    ] {
        add_user(&h, name, role, grant);
    }
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let b = Browser::start(&driver, addr).await;
        b.go("/console/").await;
        assert!(b.c.current_url().await.unwrap().path().ends_with("/console/login"));
        b.shot("00-login").await;
        b.login("ann").await;

        // A file docked now appears.
        let clip = long_clip(h.dir.path(), 7);
        std::fs::write(h.dock.join("CAM9_004711_20261130080000_0001.mp4"), &clip).unwrap();
        let id = blake3_hex(&clip);
        let src = b
            .until("the docked file", "/console/media?officer=004711", Duration::from_secs(60), |s| s.contains(&id))
            .await;
        assert!(src.contains("CAM9"));
        b.shot("06-media").await;
        b.go("/console/stations").await;
        assert!(b.source().await.contains("dock-01"));
        b.shot("01-stations").await;
        let src = b
            .until("the waiting files", "/console/board", Duration::from_secs(30), |s| {
                s.matches("CAM5_000777").count() == 3
            })
            .await;
        assert!(
            src.contains("<b class=\"state-at_risk\">1</b>") && src.contains("<b class=\"state-overdue\">1</b>"),
            "{src}"
        );
        b.shot("02-board").await;

        // An unreadable file raises an alert: acknowledge it with a note.
        std::fs::write(h.dock.join("CAM9_004711_20261130090000_0002.mp4"), b"not a video at all").unwrap();
        b.until("the alert", "/console/alerts", Duration::from_secs(60), |s| s.contains("media_unreadable")).await;
        b.fill("#alerts tr[data-alert] input[name=note]", "camera sent for repair").await;
        b.click("#alerts tr[data-alert] button").await;
        b.settle("the acknowledgement", |s| s.contains("acknowledged.")).await;
        b.go("/console/alerts?state=acked").await;
        let src = b.source().await;
        assert!(src.contains("by ann") && src.contains("camera sent for repair"), "{src}");
        b.shot("03-alerts").await;
        b.go("/console/problems").await;
        b.shot("04-problems").await;
        b.go("/console/compliance").await;
        assert!(b.source().await.contains("Compliance"));
        b.shot("05-compliance").await;

        // Find the recording by officer and play its rendition in the page.
        b.go("/console/media").await;
        b.fill("input[name=officer]", "004711").await;
        b.click("form.filters button").await;
        b.settle("the search", |s| s.contains(&format!("data-media=\"{id}\""))).await;
        b.click(&format!("tr[data-media='{id}'] a")).await;
        let src = b
            .until("the playable rendition", &format!("/console/media/{id}"), Duration::from_secs(90), |s| {
                s.contains("id=\"player\"")
            })
            .await;
        assert!(src.contains(&id));
        let played =
            b.c.execute_async(
                "const done = arguments[arguments.length - 1]; const v = document.getElementById('player');
                 v.muted = true;
                 v.play().then(() => setTimeout(() => done({t: v.currentTime, seekable: v.seekable.length}), 1500))
                         .catch(e => done({error: String(e)}));",
                vec![],
            )
            .await
            .unwrap();
        assert!(played["t"].as_f64().unwrap_or(0.0) > 0.2, "the video did not play: {played}");
        assert!(played["seekable"].as_u64().unwrap_or(0) >= 1, "not seekable (no ranged requests?): {played}");
        let seeked =
            b.c.execute_async(
                "const done = arguments[arguments.length - 1]; const v = document.getElementById('player');
                 v.addEventListener('seeked', () => done(v.currentTime), {once: true}); v.currentTime = 1.0;",
                vec![],
            )
            .await
            .unwrap();
        assert!(seeked.as_f64().unwrap_or(0.0) >= 0.9, "seeking failed: {seeked}");
        b.shot("07-media-one").await;

        // Link it to a case (registered by the case system).
        let r = call(
            addr,
            "PUT",
            "/api/v1/cases/K-77",
            &format!("Bearer {CMS}"),
            Some(json!({"title": "Burglary, Elm St", "officers": ["000001"],
            "windows": [{"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}]})),
        );
        assert!(r.status == 200 || r.status == 201, "{r:?}");
        b.fill("input[name=case_id]", "K-77").await;
        b.click("form[action='/console/cases/link'] button").await;
        let src = b.settle("the link", |s| s.contains("linked to case K-77")).await;
        assert!(src.contains(&format!("data-media=\"{id}\"")), "{src}");
        b.shot("08-case").await;
        b.go("/console/cases").await;
        b.shot("09-cases").await;
        b.go("/console/retention").await;
        b.shot("10-retention").await;
        b.go("/console/renditions").await;
        b.shot("13-renditions").await;

        // A restricted record is invisible to a person without the grant.
        let other = long_clip(h.dir.path(), 8);
        std::fs::write(h.dock.join("CAM9_004711_20261130100000_0003.mp4"), &other).unwrap();
        let secret = blake3_hex(&other);
        b.until("the second file", "/console/media?officer=004711", Duration::from_secs(60), |s| s.contains(&secret))
            .await;
        restrict_media(addr, &format!("Bearer {OPS}"), &secret);
        b.logout().await;
        b.login("ann").await;
        for path in [
            "/console/media?officer=004711",
            "/console/media",
            "/console/retention",
            "/console/alerts?state=all",
            "/console/board",
        ] {
            b.go(path).await;
            let src = b.source().await;
            assert!(!src.contains(&secret), "{path} shows the restricted record to ann");
        }
        b.go(&format!("/console/media/{secret}")).await;
        assert!(b.source().await.contains("404"), "the record's page must not exist for ann");
        // Nor is it counted: the compliance report is one file short for her.
        // (Placed by the name's day, or by today's first sight.)
        let today = chrono::Utc::now().date_naive();
        let named = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (from, to) = (today.min(named) - chrono::Days::new(1), today.max(named) + chrono::Days::new(2));
        let period = format!("/console/compliance?from={from}&to={to}&by=officer");
        b.go(&period).await;
        let ann_counted = counted(&b.source().await);
        b.logout().await;
        b.login("rex").await;
        b.go("/console/media?officer=004711").await;
        assert!(b.source().await.contains(&secret), "rex has the grant");
        b.go(&period).await;
        assert_eq!(counted(&b.source().await), ann_counted + 1, "rex counts the restricted record, ann does not");
        b.logout().await;

        // An export requested by one approver, approved by another.
        b.login("sam").await;
        b.go("/console/exports").await;
        b.fill("input[name=case_id]", "K-77").await;
        b.fill("input[name=reason]", "prosecutor's office, file 2026-114").await;
        b.click("form[action='/console/exports/request'] button").await;
        let src = b.settle("the request", |s| s.contains("Export requested")).await;
        assert!(src.contains("awaiting another approver"), "{src}");
        assert!(!src.contains(">Approve<"), "nobody approves their own request");
        b.logout().await;
        b.login("pat").await;
        b.go("/console/exports?pending=1").await;
        b.fill("#exports input[name=note]", "checked against the case file").await;
        b.click("form[action$='/approve'] button").await;
        let src = b.settle("the approval", |s| s.contains("approved.")).await;
        assert!(src.contains("by pat"), "{src}");
        b.shot("12-exports").await;
        b.logout().await;

        // Both actions are in the audit, naming the people.
        b.login("aud").await;
        b.go("/console/audit?action=console.exports.request").await;
        let src = b.source().await;
        assert!(src.contains("sam") && src.contains("console.exports.request"), "{src}");
        b.go("/console/audit?action=console.exports.approve").await;
        let src = b.source().await;
        assert!(src.contains("pat") && src.contains("console.exports.approve"), "{src}");
        b.go("/console/audit?actor=ann").await;
        let src = b.source().await;
        assert!(src.contains("console.cases.link") && src.contains("console.alerts.ack"), "{src}");
        assert!(!src.contains(&secret), "the auditor has no grant: the restricted record's entries are hidden");
        b.click("form[action='/console/audit/verify'] button").await;
        b.settle("the verification", |s| s.contains("chain intact")).await;
        b.shot("11-audit").await;
        b.c.close().await.unwrap();
    });
    d.stop();
}

/// The recordings a compliance page counts: the total's files plus those not
/// assessed yet (a description may finish between two views).
fn counted(page: &str) -> u64 {
    let number = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().ok();
    let files = page
        .split("<td>TOTAL</td><td class=\"num\">")
        .nth(1)
        .and_then(number)
        .unwrap_or_else(|| panic!("no total on the compliance page: {page}"));
    let unassessed = page
        .split("<p class=\"muted\">")
        .find_map(|p| p.contains("not assessed yet").then(|| number(p)).flatten())
        .unwrap_or(0);
    files + unassessed
}
